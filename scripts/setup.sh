#!/usr/bin/env bash
# One-command environment: .venv with every pinned dependency + the colcon-built ROS 2 package.
# Idempotent: each step is skipped when its inputs did not change since the last run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3.11}"
stamp_ok() { [ -f "$VENV/.stamp-$1" ] && [ "$(cat "$VENV/.stamp-$1")" = "$2" ]; }
stamp_set() { echo "$2" > "$VENV/.stamp-$1"; }
say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
  command -v "$PY" >/dev/null || { echo "error: $PY not found; install Python 3.11 or set PYTHON=/path/to/python3.11" >&2; exit 1; }
  say "creating $VENV"
  "$PY" -m venv "$VENV"
fi
# shellcheck disable=SC1091
set +u; . "$VENV/bin/activate"; set -u

h=$(cat requirements.lock | sha256sum | cut -c1-16)
if ! stamp_ok deps "$h"; then
  say "installing pinned dependencies (torch, ROS 2 Kilted wheels, ...) - a few minutes the first time"
  python -m pip install -q --disable-pip-version-check -r requirements.lock
  stamp_set deps "$h"
fi

h=$( (cat setup.py; ls stemseg_core) | sha256sum | cut -c1-16)
if ! stamp_ok lib "$h"; then
  say "installing the stemseg library (editable) and the stemseg CLI"
  python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
  stamp_set lib "$h"
fi

# Trap 1 of shared/notes/ros2-from-pypi.md: the wheels' CMake exports hard-code the wheel builder's
# Python and numpy include paths.
PYINC=$(python -c "import sysconfig; print(sysconfig.get_paths()['include'])")
NPINC=$(python -c "import numpy; print(numpy.get_include())")
# CMake refuses exported include paths inside the source tree (and .venv is inside it), so the
# numpy headers are reached through a link outside it.
NPLINK="${XDG_CACHE_HOME:-$HOME/.cache}/stemseg/numpy-include-$(echo "$ROOT" | sha256sum | cut -c1-12)"
mkdir -p "$(dirname "$NPLINK")" && ln -sfn "$NPINC" "$NPLINK"
{ grep -rlE "/opt/python/cp3|$VENV/lib/python3[.0-9]*/site-packages/numpy" "$VENV/share" \
  --include='*.cmake' 2>/dev/null || true; } | while read -r f; do
  sed -i -E "s#(/opt/python/cp3[0-9]+-cp3[0-9]+|$VENV)/lib/python3\.[0-9]+/site-packages/numpy/_core/include#$NPLINK#g; s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#$PYINC#g" "$f"
done

# vision_msgs (the node's standard outputs): a sourced ROS 2 install's own package where there is
# one; else (PyPI wheels: no vision_msgs wheel is served) ours in interfaces/vision_msgs, the same
# types field for field, so the type hashes match (test/ros/test_vision_msgs.py). It is a second
# package under the root package.xml, where colcon does not look: it gets its own --base-paths.
system_vision_msgs() {
  local p ps
  IFS=: read -ra ps <<< "${AMENT_PREFIX_PATH:-}"
  for p in "${ps[@]}"; do
    case "$p" in ""|"$VENV"|"$ROOT"/*) continue ;; esac
    if [ -f "$p/share/ament_index/resource_index/packages/vision_msgs" ]; then
      echo "$p"; return 0
    fi
  done
  return 1
}
VISION_PATHS=("$ROOT/interfaces/vision_msgs")
if SYS_VISION=$(system_vision_msgs); then
  VISION_PATHS=()
  say "vision_msgs: using the system's ($SYS_VISION), not building interfaces/vision_msgs"
  rm -rf "$ROOT/install/vision_msgs" "$ROOT/build/vision_msgs"  # ours would shadow it
fi

h=$( (cat package.xml CMakeLists.txt msg/*.msg interfaces/vision_msgs/CMakeLists.txt interfaces/vision_msgs/package.xml interfaces/vision_msgs/msg/*.msg; echo "${VISION_PATHS[*]}"; find stemseg_ros stemseg_core launch config scripts checkpoints interfaces -type f -not -path '*/__pycache__/*' | sort) | sha256sum | cut -c1-16)
if ! stamp_ok colcon "$h" || [ ! -f "$ROOT/install/setup.bash" ]; then
  say "colcon build (messages${VISION_PATHS:+, vision_msgs}, node, launch and config files)"
  mkdir -p "$ROOT/log"
  # stemseg_core comes from the editable install above, not from a copy in the install space
  # (STEMSEG_INSTALL_CORE=OFF); a copy left by an older build would shadow it.
  rm -rf "$ROOT"/install/stemseg_ros/lib/python3*/site-packages/stemseg_core \
    "$ROOT"/install/stemseg_ros/lib/python3*/site-packages/stemseg_core-*.egg-info
  export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
  colcon --log-base "$ROOT/log" build --base-paths "$ROOT" "${VISION_PATHS[@]}" --build-base "$ROOT/build" \
    --install-base "$ROOT/install" --symlink-install \
    --cmake-args -DPython3_EXECUTABLE="$VENV/bin/python" -DPython3_NumPy_INCLUDE_DIR="$NPLINK" \
    -DBUILD_TESTING=OFF -DSTEMSEG_INSTALL_CORE=OFF \
    --event-handlers console_direct- > "$ROOT/log/colcon-last.txt" 2>&1 \
    || { tail -40 "$ROOT/log/colcon-last.txt"; echo "error: colcon build failed (full log: log/colcon-last.txt)" >&2; exit 1; }
  stamp_set colcon "$h"
fi

# `. .venv/bin/activate` alone gives the whole environment, from any directory.
if ! grep -q "stemseg: ROS 2 install space" "$VENV/bin/activate"; then
  cat >> "$VENV/bin/activate" <<ACT
# stemseg: ROS 2 install space (added by scripts/setup.sh)
export AMENT_PREFIX_PATH="$VENV\${AMENT_PREFIX_PATH:+:\$AMENT_PREFIX_PATH}"
if [ -f "$ROOT/install/setup.bash" ] && [ -n "\${BASH_VERSION:-}" ]; then
  . "$ROOT/install/setup.bash"
elif [ -f "$ROOT/install/setup.sh" ]; then
  COLCON_CURRENT_PREFIX="$ROOT/install" . "$ROOT/install/setup.sh"
fi
ACT
fi
ln -sf "$ROOT/install/stemseg_ros/lib/stemseg_ros/perception" "$VENV/bin/stemseg-perception"
# The gpu extra (torch-tensorrt + TensorRT, pinned in setup.py) only where an NVIDIA GPU is
# present. A step of its own that never stops setup: TensorRT's wheels come from NVIDIA's index
# (on the public index tensorrt-cu13-libs is a stub that fetches the real wheel from there when
# built, so no --no-build-isolation), and where they cannot be had the node runs without them
# (`--backend auto` on CUDA: inductor, then eager torch). A failure is remembered per inputs so
# that every `make test` does not retry it; STEMSEG_RETRY_TRT=1 retries.
#   STEMSEG_SKIP_TRT=1        skip the step
#   STEMSEG_NVIDIA_INDEX=URL  NVIDIA's index or your mirror of it (default https://pypi.nvidia.com)
#   STEMSEG_RETRY_TRT=1       try again after a failure with the same inputs
trt_step() {
  local index="${STEMSEG_NVIDIA_INDEX:-https://pypi.nvidia.com}"
  local retry="To retry: STEMSEG_RETRY_TRT=1 make setup (NVIDIA's index $index reachable, or STEMSEG_NVIDIA_INDEX=<your mirror>)."
  local tail="the node runs without TensorRT (--backend auto on CUDA: inductor, i.e. torch.compile)"
  if [ "${STEMSEG_SKIP_TRT:-0}" = "1" ]; then
    say "TensorRT step skipped: STEMSEG_SKIP_TRT=1; $tail."
    return 0
  fi
  if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    return 0  # no NVIDIA GPU: nothing to do, nothing to say
  fi
  local have
  if have=$(python -c "import torch_tensorrt; print(torch_tensorrt.__version__)" 2>/dev/null); then
    say "TensorRT step: torch-tensorrt $have already installed."
    return 0
  fi
  local reqs
  reqs=$(python -c "
from importlib.metadata import requires
print(' '.join(r.split(';')[0].strip() for r in requires('stemseg') or ()
               if r.replace(\"'\", '\"').replace(' ', '').endswith('extra==\"gpu\"')))")
  if [ -z "$reqs" ]; then
    say "TensorRT step skipped: the stemseg package names no gpu extra (setup.py extras_require); $tail."
    return 0
  fi
  local key
  key=$(printf '%s\n' "$reqs" "$index" "$(python -c 'import torch; print(torch.__version__)')" \
    | sha256sum | cut -c1-16)
  if [ "${STEMSEG_RETRY_TRT:-0}" != "1" ] && stamp_ok trt "failed $key"; then
    say "TensorRT step skipped: installing $reqs failed before with the same inputs (log/setup-gpu.txt); $tail. $retry"
    return 0
  fi
  say "NVIDIA GPU found: installing the gpu extra ($reqs) from your pip index + $index (a few minutes)"
  mkdir -p "$ROOT/log"
  local log="$ROOT/log/setup-gpu.txt"
  # Build isolation on (the stub wheels build with wheel-stub); requirements.lock as constraints
  # keeps the pinned torch.
  if python -m pip install --disable-pip-version-check --timeout 60 --retries 2 \
      --extra-index-url "$index" -c "$ROOT/requirements.lock" $reqs > "$log" 2>&1; then
    local err
    if have=$(python -c "import torch_tensorrt; print(torch_tensorrt.__version__)" 2>"$log.import"); then
      rm -f "$log.import" "$VENV/.stamp-trt"
      say "TensorRT step: installed torch-tensorrt $have (--backend tensorrt)."
    else
      err=$(grep -v '^[[:space:]]*$' "$log.import" | tail -1 | cut -c1-240)
      stamp_set trt "failed $key"
      say "TensorRT step: installed, but 'import torch_tensorrt' fails ($err); $tail. $retry"
    fi
  else
    local err
    err=$(grep -E '^ERROR:' "$log" | tail -1)
    if [ -z "$err" ]; then  # a package's own build failed: name it and pip's error kind
      local pkg kind
      pkg=$(grep -oE '^Collecting [^ ]+' "$log" | tail -1 | cut -d' ' -f2)
      kind=$(grep -E '^error: ' "$log" | tail -1)
      err="${kind:-pip failed}${pkg:+ building $pkg}"
    fi
    if grep -q "NewConnectionError\|Failed to establish a new connection" "$log"; then
      err="$err; $index was not reachable (TensorRT's wheels come from there)"
    fi
    err=$(printf '%s' "$err" | cut -c1-300)
    stamp_set trt "failed $key"
    say "TensorRT step skipped: pip could not install $reqs ($err); $tail. Full log: log/setup-gpu.txt. $retry"
  fi
  return 0
}
trt_step || say "TensorRT step skipped: it stopped unexpectedly (exit $?); the rest of setup is done."
say "done. Activate with:  . .venv/bin/activate"
