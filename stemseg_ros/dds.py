"""The Fast DDS profile shipped for large camera images (config/fastdds_large_images.xml).

Without it, best-effort 720p/1080p images between processes are mostly lost (measured: 3 of 90
1280x720 frames arrived at 15 Hz; with the profile in both processes, 90 of 90, and 179 of 180
1920x1080 frames at 30 Hz). The node applies it to itself when the user has not chosen a profile;
the camera's process needs it as well (docs/node.md, "No output?").
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

PROFILE = "fastdds_large_images.xml"
#: The variable Fast DDS reads (FASTRTPS_DEFAULT_PROFILES_FILE is its deprecated older name).
PROFILE_VARIABLE = "FASTDDS_DEFAULT_PROFILES_FILE"
_USER_VARIABLES = (PROFILE_VARIABLE, "FASTRTPS_DEFAULT_PROFILES_FILE")


def profile_path(share_dir: str | None = None) -> str | None:
    """The shipped profile: in the package share directory, else in the source tree."""
    candidates = [Path(share_dir) / "config" / PROFILE] if share_dir else []
    candidates.append(Path(__file__).resolve().parents[1] / "config" / PROFILE)
    return next((str(p) for p in candidates if p.is_file()), None)


def environment(environ: Mapping[str, str], share_dir: str | None = None) -> dict[str, str]:
    """Variables to add to `environ` so that Fast DDS uses the shipped profile: none when the
    user has chosen a profile already (or the file is missing)."""
    if any(environ.get(v) for v in _USER_VARIABLES):
        return {}
    path = profile_path(share_dir)
    return {PROFILE_VARIABLE: path} if path else {}
