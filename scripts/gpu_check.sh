#!/usr/bin/env bash
# GPU check on a fresh NVIDIA machine, from the repository root (issue 23):
#   1. a venv with the pinned Python dependencies the core needs (no ROS) + the gpu extra
#      (torch-tensorrt), 2. the GPU tests (pytest -m gpu), 3. the streaming-tracker benchmark of
#   the full ResNet-101 model (config/model/stemseg_r101_kitti.yaml, random weights) at 375x1242,
#   T=8: eager fp32, eager AMP fp16, TensorRT fp16 (engines built), TensorRT fp16 again (engine
#   cache hit on the second start).
# Every figure lands as JSON under $OUT (default ./gpu_check_out); each step has its own time
# limit and a failed step does not stop the next, so partial results are still written.
# summary.json lists each step's exit code and seconds.
#   OUT=/tmp/out bash scripts/gpu_check.sh
set -x
set -u
OUT=${OUT:-$PWD/gpu_check_out}
mkdir -p "$OUT"
VENV=${VENV:-$PWD/.venv-gpu}
ENGINES=${ENGINES:-/tmp/stemseg-engines}
CONFIG=config/model/stemseg_r101_kitti.yaml
BENCH=(--config "$CONFIG" --height 375 --width 1242 --clip-length 8 --device cuda
       --iters 10 --warmup 2
       --set "inference.engine_cache_dir=$ENGINES" input.min_side=0 input.max_side=0)
# input.min_side/max_side=0: the network sees KITTI's 375x1242 itself (padded to 384x1248), not
# the config's inference resize to 588x1948.
SUMMARY="$OUT/summary.tsv"
: > "$SUMMARY"

step() {  # step NAME SECONDS CMD... : run with a time limit, log to $OUT/NAME.log, record rc
  local name=$1 limit=$2
  shift 2
  local t0=$SECONDS
  timeout --kill-after=15 "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" >> "$SUMMARY"
  tail -n 25 "$OUT/$name.log"
  return 0
}

{ nvidia-smi; python3 --version; } > "$OUT/machine.txt" 2>&1

# 1. Environment: the core's pinned dependencies (requirements.lock without the ROS wheels and
# colcon), the library itself, then the gpu extra of setup.py (torch-tensorrt + TensorRT).
step venv 60 python3 -m venv "$VENV"
PY="$VENV/bin/python"
grep -v -E '^(ros-|colcon|catkin|rosbags|openvino|nncf|tensorboard|ruff)' requirements.lock \
  > "$OUT/requirements-core.txt"
step pip_core 300 "$PY" -m pip install -q --disable-pip-version-check \
  -r "$OUT/requirements-core.txt"
step pip_lib 120 "$PY" -m pip install -q --disable-pip-version-check --no-build-isolation \
  -e ".[gpu]"
step versions 60 "$PY" -c "
import json, torch
v = {'torch': torch.__version__, 'cuda': torch.version.cuda,
     'gpu': torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
for m in ('tensorrt', 'torch_tensorrt', 'openvino', 'onnxruntime'):
    try:
        v[m] = __import__(m).__version__
    except Exception as e:
        v[m] = 'not importable: %s' % e
json.dump(v, open('$OUT/versions.json', 'w'), indent=2)
print(v)"

# 2. Benchmarks through the streaming tracker (stemseg bench pushes frames one by one).
step bench_eager 240 "$PY" -m stemseg_core.cli bench "${BENCH[@]}" --backend torch \
  --precision fp32 fp16 --json "$OUT/bench_eager.json"
step bench_trt_first_start 420 "$PY" -m stemseg_core.cli bench "${BENCH[@]}" \
  --backend tensorrt --precision fp16 --json "$OUT/bench_trt_first.json"
step bench_trt_second_start 180 "$PY" -m stemseg_core.cli bench "${BENCH[@]}" \
  --backend tensorrt --precision fp16 --json "$OUT/bench_trt_second.json"

# 3. The GPU tests (tiny models; TensorRT fp32/fp16, AMP, engine cache, tracks vs eager).
step pytest_gpu 300 "$PY" -m pytest -m gpu test/core -q -p no:cacheprovider \
  --junitxml="$OUT/pytest_gpu.xml"

# Summary as JSON: each step's exit code and seconds, and the frames/s of each bench run.
"$PY" - "$OUT" <<'PYEOF' || true
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
steps = [dict(zip(("step", "rc", "seconds"), l.split("\t")))
         for l in (out / "summary.tsv").read_text().splitlines() if l.strip()]
runs = {}
for name in ("bench_eager", "bench_trt_first", "bench_trt_second"):
    p = out / f"{name}.json"
    if p.is_file():
        f = json.loads(p.read_text())
        for r in f["runs"]:
            runs[f"{name}:{r['backend']}:{r['precision']}"] = {
                "fps": r["fps"], "ms_per_frame": r["per_frame_seconds"] * 1e3,
                "network_ms_per_clip": r["median_seconds"]["model"] * 1e3,
                "build_or_load_seconds": r["build_or_load_seconds"],
                "cuda_max_memory_mb": r.get("cuda_max_memory_mb"),
                "artifacts_built": r.get("artifacts_built"),
                "artifacts_loaded": r.get("artifacts_loaded")}
json.dump({"steps": steps, "runs": runs}, open(out / "summary.json", "w"), indent=2)
print(json.dumps({"steps": steps, "runs": runs}, indent=2))
PYEOF
cat "$SUMMARY"
