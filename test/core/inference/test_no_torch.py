"""The tracker's inference path imports no torch (issue 37): preprocessing, clustering,
stitching, post-processing, mask refinement, flip averaging and the backend runner are numpy."""
from __future__ import annotations

import subprocess
import sys

MODULES = ["stemseg_core.inference." + m for m in (
    "tracker", "clustering", "preprocess", "postprocess", "stitching", "mask_refinement",
    "output_masks", "flip_average", "clip_schedule", "clip_input", "types", "stream_policy",
    "batched_clips", "tracker_group")] + [
    "stemseg_core.backends.runner"]


def test_inference_path_imports_no_torch():
    code = ("import sys\n"
            + "".join(f"import {m}\n" for m in MODULES)
            + "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"torch imported by the inference path: {out.stdout}"


def test_the_check_sees_torch_when_it_is_imported():
    """The test above can fail: importing the network's graphs does show torch (the torch
    backends import it on first use only, backends/lazy_torch.py)."""
    out = subprocess.run([sys.executable, "-c", "import sys\nimport stemseg_core.export."
                          "split\nprint('torch' in sys.modules)"],
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "True", out.stderr
