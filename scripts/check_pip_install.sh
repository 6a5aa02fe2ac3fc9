#!/usr/bin/env bash
# The library installs with plain pip in fresh venvs, without ROS:
#  1. `pip install .[runtime]`: no torch (importing it fails), yet the tracker and the OpenVINO /
#     ONNX Runtime backends import and the CLI works;
#  2. `pip install .[train]`: the full library (torch); its CLI works.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
PY="${PYTHON:-python3.11}"

no_ros() {  # $1 = venv
  local ros
  ros=$("$1/bin/python" -m pip list 2>/dev/null | grep -ciE "^(ros-|rclpy)" || true)
  [ "$ros" = "0" ] || { echo "pip install $2 pulled in $ros ROS packages"; exit 1; }
}

# 1. runtime: no torch
RT="$TMP/runtime"
"$PY" -m venv "$RT"
(cd /tmp && "$RT/bin/python" -m pip install -q --disable-pip-version-check "$ROOT[runtime]")
if "$RT/bin/python" -c "import torch" 2>/dev/null; then
  echo "pip install .[runtime] installed torch"; exit 1
fi
(cd /tmp && "$RT/bin/python" -c "
import sys
import stemseg_core.inference.tracker, stemseg_core.inference.runtime_loading
import stemseg_core.backends.openvino.backend, stemseg_core.backends.onnxruntime_backend
from stemseg_core.registry import BACKENDS
assert {'openvino', 'onnxruntime', 'torch'} <= set(BACKENDS.names()), BACKENDS.names()
assert 'torch' not in sys.modules
") || { echo "pip install .[runtime]: the torch-free runtime does not import"; exit 1; }
(cd /tmp && "$RT/bin/stemseg" --help | grep -q "infer") || { echo "runtime: stemseg --help failed"; exit 1; }
(cd /tmp && "$RT/bin/stemseg" infer --help > /dev/null)
no_ros "$RT" ".[runtime]"
echo "pip install .[runtime]: no torch; tracker, openvino and onnxruntime backends and stemseg infer import"

# 2. train: the whole library
FULL="$TMP/train"
"$PY" -m venv "$FULL"
(cd /tmp && "$FULL/bin/python" -m pip install -q --disable-pip-version-check "$ROOT[train]")
(cd /tmp && "$FULL/bin/stemseg" --help | grep -q "synth") || { echo "stemseg --help failed"; exit 1; }
(cd /tmp && "$FULL/bin/stemseg" synth --help > /dev/null)
# `stemseg bag eval` comes with the ROS 2 package: without it the command says how to get it.
hint=$(cd /tmp && "$FULL/bin/stemseg" bag eval --bag x.mcap --out o 2>&1 || true)
echo "$hint" | grep -q "make setup" || { echo "stemseg bag eval without ROS: $hint"; exit 1; }
no_ros "$FULL" ".[train]"
"$FULL/bin/python" -c "import torch, stemseg_core, sys; from stemseg_core.data.rle import mask_to_counts; \
import importlib.util as u; sys.exit(1 if u.find_spec('rclpy') else 0)"
echo "pip install .[train] (no ROS): stemseg --help works, bag eval says how to get it, no ROS packages installed"
