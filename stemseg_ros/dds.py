"""The Fast DDS profiles shipped for camera images: config/fastdds_large_images.xml for the
camera's process, config/fastdds_node.xml for the node's own.

Without a larger shared-memory segment in the *publishing* process, best-effort 720p/1080p
images between processes are mostly lost (measured: 3 of 90 1280x720 frames arrived at 15 Hz;
with the large-image profile in both processes, 90 of 90, and 179 of 180 1920x1080 frames at
30 Hz; in the camera's process alone, 1080p at 30 Hz, 90 of 90). A segment holds what its process
sends and Fast DDS makes all of it resident at start, so the node, which only sends results, runs
with a 16 MiB segment instead of 64 MiB (48 MiB less resident memory). The node applies its
profile to itself when the user has not chosen one; the camera's process needs the large one
(docs/node.md, "No output?").
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

#: The profile for the camera's process (large images sent).
PROFILE = "fastdds_large_images.xml"
#: The profile of the node's own process (results sent; a smaller segment).
NODE_PROFILE = "fastdds_node.xml"
#: The variable Fast DDS reads (FASTRTPS_DEFAULT_PROFILES_FILE is its deprecated older name).
PROFILE_VARIABLE = "FASTDDS_DEFAULT_PROFILES_FILE"
_USER_VARIABLES = (PROFILE_VARIABLE, "FASTRTPS_DEFAULT_PROFILES_FILE")


def _candidates(share_dir: str | None, name: str) -> list[Path]:
    """Where a shipped profile may be: the package share directory, the source tree."""
    found = [Path(share_dir) / "config" / name] if share_dir else []
    found.append(Path(__file__).resolve().parents[1] / "config" / name)
    return [p for p in found if p.is_file()]


def profile_path(share_dir: str | None = None, name: str = PROFILE) -> str | None:
    """A shipped profile: in the package share directory, else in the source tree."""
    found = _candidates(share_dir, name)
    return str(found[0]) if found else None


def _is_shipped(path: str, name: str, share_dir: str | None) -> bool:
    """Whether `path` is the shipped profile `name` itself (not a user's file of that name)."""
    try:
        return any(Path(path).resolve() == p.resolve() for p in _candidates(share_dir, name))
    except OSError:
        return False


def _other_role(name: str) -> str:
    return PROFILE if name == NODE_PROFILE else NODE_PROFILE


def environment(environ: Mapping[str, str], share_dir: str | None = None,
                name: str = PROFILE) -> dict[str, str]:
    """Variables to add to `environ` so that Fast DDS uses the shipped profile ``name``
    (PROFILE for a process that sends images: a camera, a bag player; NODE_PROFILE for the
    node): none when the user has chosen a profile already (or the file is missing).

    The shipped profile of the other role is not a choice: a bag player sets the camera's
    profile in its own environment, and the node it starts must still get its own (with the
    camera's, the node held a 64 MiB segment instead of 16)."""
    chosen = [environ[v] for v in _USER_VARIABLES if environ.get(v)]
    if any(not _is_shipped(c, _other_role(name), share_dir) for c in chosen):
        return {}
    path = profile_path(share_dir, name)
    return {PROFILE_VARIABLE: path} if path else {}


def camera_profile(environ: Mapping[str, str], share_dir: str | None = None) -> str:
    """The profile to name for a camera's process: the user's own choice, else the shipped
    large-image one (never the node's own)."""
    chosen = environ.get(PROFILE_VARIABLE)
    if chosen and not _is_shipped(chosen, NODE_PROFILE, share_dir):
        return chosen
    return profile_path(share_dir) or PROFILE
