#!/usr/bin/env bash
# The library installs with plain pip in a fresh venv, without ROS, and its CLI works.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$(mktemp -d)/venv"
trap 'rm -rf "$(dirname "$VENV")"' EXIT
"${PYTHON:-python3.11}" -m venv "$VENV"
(cd /tmp && "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$ROOT")
(cd /tmp && "$VENV/bin/stemseg" --help | grep -q "synth") || { echo "stemseg --help failed"; exit 1; }
(cd /tmp && "$VENV/bin/stemseg" synth --help > /dev/null)
# `stemseg bag eval` comes with the ROS 2 package: without it the command says how to get it.
hint=$(cd /tmp && "$VENV/bin/stemseg" bag eval --bag x.mcap --out o 2>&1 || true)
echo "$hint" | grep -q "make setup" || { echo "stemseg bag eval without ROS: $hint"; exit 1; }
ros=$("$VENV/bin/python" -m pip list 2>/dev/null | grep -ciE "^(ros-|rclpy)" || true)
[ "$ros" = "0" ] || { echo "pip install . pulled in $ros ROS packages"; exit 1; }
"$VENV/bin/python" -c "import stemseg_core, sys; from stemseg_core.data.rle import mask_to_counts; \
import importlib.util as u; sys.exit(1 if u.find_spec('rclpy') else 0)"
echo "pip install . (no ROS): stemseg --help works, bag eval says how to get it, no ROS packages installed"
