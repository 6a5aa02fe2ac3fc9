#!/usr/bin/env bash
# GPU check for a lent NVIDIA machine that reaches no package index (issue 41). Run from anywhere:
#   OUT=/tmp/out bash scripts/gpu_check.sh       # the check (about 8 minutes at most)
#   GPU_CHECK_DRY=1 bash scripts/gpu_check.sh    # list the steps, time limits and files; exit 0
#   GPU_CHECK_FETCH=1 bash scripts/gpu_check.sh  # here, with an index: fetch the carried wheels
#
# No venv, no index: the machine's own python3 (the device image: Python 3.12, torch 2.11 + CUDA
# 13, Triton, pytest, opencv, scipy, ...) with this checkout on PYTHONPATH. Wheels found in
# $GPU_CHECK_WHEELS (default .whl/, filled by GPU_CHECK_FETCH=1; carry it with the tree) are
# installed with --no-index --no-deps into a folder of its own, nothing else is touched. None of
# the steps needs them (they let the rest of stemseg_core import: pycocotools, trackeval).
#
# Steps, each under its own time limit (GPU_CHECK_DRY=1 lists them; they add up to <= 480 s):
#   probe         CUDA works (exit 3 at once otherwise: nothing may skip into green), versions,
#                 which optional modules import (TensorRT only where torch_tensorrt imports)
#   pytest_gpu    pytest -m gpu on the GPU-marked test files; the TensorRT tests are deselected
#                 where torch_tensorrt does not import; fails when nothing passed
#   bench_*       stemseg bench of the authors' network (config/model/official_kitti_mots.yaml,
#                 random weights) at 375x1242, T=8, through the streaming tracker: eager fp32 and
#                 AMP fp16, inductor bf16 (mode default: compiles fast), inductor fp16 (the
#                 backend's CUDA default, max-autotune-no-cudagraphs), TensorRT fp16 where it
#                 imports
# Files under $OUT (at most 8): summary.json (steps, exit codes, seconds, versions, pytest
# counts, each run's figures), gpu_check.log (all output), bench.md (one table of every run) and
# one bench_<step>.json per bench step. Exit 0 when every step that ran passed, 1 otherwise,
# 3 when CUDA does not work.
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY=${PYTHON:-python3}
OUT=${OUT:-$ROOT/gpu_check_out}
WHEELS=${GPU_CHECK_WHEELS:-$ROOT/.whl}
# the wheels GPU_CHECK_FETCH=1 fetches (pins of requirements.lock; the image lacks these)
CARRY=(pycocotools==2.0.11 trackeval==1.3.0)
CONFIG=config/model/official_kitti_mots.yaml
TOTAL_LIMIT=480
KILL_AFTER=3  # seconds a step gets after its limit's TERM before KILL

#            name                 limit  what
STEPS=(     "probe                25     CUDA works (is_available, a matmul checked against the CPU), versions, optional modules"
            "pytest_gpu           110    pytest -m gpu on the GPU-marked test files (TensorRT tests deselected where it does not import); fails if nothing passed"
            "bench_torch          45     stemseg bench, authors' network 375x1242 T=8: eager fp32 and eager AMP fp16"
            "bench_inductor_bf16  90     the same: inductor bf16 (STEMSEG_INDUCTOR_MODE=default)"
            "bench_inductor_fp16  140    the same: inductor fp16 (the CUDA default mode, max-autotune-no-cudagraphs)"
            "bench_tensorrt       50     the same: tensorrt fp16, only where torch_tensorrt imports"
            "summary              10     summary.json and bench.md from the steps' results")
FILES=(summary.json gpu_check.log bench.md bench_torch.json bench_inductor_bf16.json
       bench_inductor_fp16.json bench_tensorrt.json)

step_limit() {  # step_limit NAME -> its limit in seconds
  local s name limit
  for s in "${STEPS[@]}"; do
    read -r name limit _ <<< "$s"
    [ "$name" = "$1" ] && { echo "$limit"; return; }
  done
  echo "unknown step $1" >&2; exit 2
}

if [ "${GPU_CHECK_DRY:-0}" = "1" ]; then
  total=0
  for s in "${STEPS[@]}"; do read -r _ limit _ <<< "$s"; total=$((total + limit)); done
  echo "gpu_check (dry run): ${#STEPS[@]} steps, time limits $total s in all (at most $TOTAL_LIMIT; +${KILL_AFTER} s each to kill a step that overruns; a benchmark may also use the seconds earlier steps left unused)"
  for s in "${STEPS[@]}"; do
    read -r name limit what <<< "$s"
    printf '  step %-20s %4s s  %s\n' "$name" "$limit" "$what"
  done
  echo "  bench: $PY -m stemseg_core.cli bench --config $CONFIG --height 375 --width 1242 --clip-length 8 --device cuda --iters 10 --warmup 2 --set input.min_side=0 input.max_side=0 --backend B --precision P"
  echo "files under \$OUT (${#FILES[@]}, at most 8): ${FILES[*]}"
  echo "python: $PY with PYTHONPATH=$ROOT; wheels from $WHEELS (--no-index --no-deps) if any: $(ls "$WHEELS"/*.whl 2>/dev/null | xargs -r -n1 basename | tr '\n' ' ')"
  [ "$total" -le "$TOTAL_LIMIT" ] && [ "${#FILES[@]}" -le 8 ]
  exit $?
fi

if [ "${GPU_CHECK_FETCH:-0}" = "1" ]; then
  mkdir -p "$WHEELS"
  exec "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$WHEELS" "${CARRY[@]}"
fi

mkdir -p "$OUT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
LOG="$OUT/gpu_check.log"
: > "$LOG"
STEPTSV="$WORK/steps.tsv"
: > "$STEPTSV"
exec > >(tee -a "$LOG") 2>&1
TEE_PID=$!
export PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR="$WORK/inductor"
SITE="$WORK/site"
if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" \
    "$WHEELS"/*.whl || echo "gpu_check: the carried wheels did not install; going on without"
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
[ -d "$SITE" ] && export PYTHONPATH="$PYTHONPATH:$SITE"
START=$SECONDS

BANK=0  # seconds earlier steps left unused: the benchmarks may use them
step() {  # step NAME CMD... : run under the step's limit, record exit code and seconds
  local name=$1 limit
  shift
  limit=$(step_limit "$name")
  case $name in bench_*) limit=$((limit + BANK)); BANK=0 ;; esac
  echo "=== $name (limit ${limit} s): $*"
  local t0=$SECONDS
  timeout --kill-after="$KILL_AFTER" "$limit" "$@"
  local rc=$? used=$((SECONDS - t0))
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$used" "$limit" >> "$STEPTSV"
  [ "$used" -lt "$limit" ] && [ "$name" != summary ] && BANK=$((BANK + limit - used))
  echo "=== $name: exit $rc after $used s"
  return $rc
}
skip() {  # skip NAME WHY
  printf '%s\tskipped\t0\t%s\t%s\n' "$1" "$(step_limit "$1")" "$2" >> "$STEPTSV"
  echo "=== $1: skipped ($2)"
}

# 1. Does CUDA work? (exit 3 otherwise)
step probe "$PY" - "$WORK/probe.json" <<'PYEOF'
import importlib, json, platform, subprocess, sys
info = {"python": platform.python_version(), "modules": {}}
try:
    info["nvidia_smi"] = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                                        timeout=10).stdout.strip()
except Exception as e:
    info["nvidia_smi"] = f"not run: {e}"
for m in ("torch", "torchvision", "triton", "numpy", "scipy", "yaml", "cv2", "tqdm", "rich",
          "matplotlib", "pytest", "pytest_timeout", "pycocotools", "trackeval", "skimage",
          "onnx", "onnxruntime", "openvino", "tensorrt", "torch_tensorrt"):
    try:
        info["modules"][m] = getattr(importlib.import_module(m), "__version__", "present")
    except Exception as e:
        info["modules"][m] = f"missing: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
ok, why = False, ""
try:
    import torch
    info["torch_cuda"] = torch.version.cuda
    if not torch.cuda.is_available():
        why = "torch.cuda.is_available() is False"
    else:
        info["gpu"] = torch.cuda.get_device_name(0)
        info["capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
        g = torch.Generator().manual_seed(0)
        a, b = torch.rand(256, 256, generator=g), torch.rand(256, 256, generator=g)
        torch.backends.cuda.matmul.allow_tf32 = False
        got = (a.cuda() @ b.cuda()).cpu()
        err = float((got - a @ b).abs().max())
        info["matmul_max_abs_diff"] = err
        ok, why = err < 1e-3, f"a CUDA matmul differs from the CPU's by {err}"
except Exception as e:
    why = f"{type(e).__name__}: {e}"
info["cuda_ok"] = ok
if not ok:
    info["cuda_error"] = why
json.dump(info, open(sys.argv[1], "w"), indent=2)
print(json.dumps(info, indent=2))
if not ok:
    print(f"gpu_check: CUDA does not work here: {why}", file=sys.stderr)
sys.exit(0 if ok else 3)
PYEOF
probe_rc=$?

has_module() { "$PY" -c "import json,sys; m=json.load(open('$WORK/probe.json'))['modules']['$1']; sys.exit(str(m).startswith('missing'))" 2>/dev/null; }

if [ "$probe_rc" -eq 0 ]; then
  # 2. The GPU tests
  mapfile -t GPU_TESTS < <(grep -rlE "pytest\.mark\.gpu|pytestmark = pytest\.mark\.gpu" test --include='test_*.py' | sort)
  KEXPR=()
  if ! has_module torch_tensorrt; then
    KEXPR=(-k "not tensorrt")
    echo "gpu_check: torch_tensorrt does not import here: the TensorRT tests are deselected"
  fi
  step pytest_gpu "$PY" -m pytest -m gpu "${KEXPR[@]}" -p no:cacheprovider -o addopts=-ra -q \
    --junitxml="$WORK/pytest_gpu.xml" "${GPU_TESTS[@]}"

  # 3. The authors' network through the streaming tracker
  BENCH=("$PY" -m stemseg_core.cli bench --config "$CONFIG" --height 375 --width 1242
         --clip-length 8 --device cuda --iters 10 --warmup 2
         --set "inference.engine_cache_dir=$WORK/engines" input.min_side=0 input.max_side=0)
  step bench_torch "${BENCH[@]}" --backend torch --precision fp32 fp16 \
    --json "$OUT/bench_torch.json" --plot "$WORK/bench_torch.png"
  STEMSEG_INDUCTOR_MODE=default step bench_inductor_bf16 "${BENCH[@]}" --backend inductor \
    --precision bf16 --json "$OUT/bench_inductor_bf16.json" --plot "$WORK/bench_inductor_bf16.png"
  step bench_inductor_fp16 "${BENCH[@]}" --backend inductor --precision fp16 \
    --json "$OUT/bench_inductor_fp16.json" --plot "$WORK/bench_inductor_fp16.png"
  if has_module torch_tensorrt; then
    step bench_tensorrt "${BENCH[@]}" --backend tensorrt --precision fp16 \
      --json "$OUT/bench_tensorrt.json" --plot "$WORK/bench_tensorrt.png"
  else
    skip bench_tensorrt "torch_tensorrt does not import here"
  fi
else
  for s in pytest_gpu bench_torch bench_inductor_bf16 bench_inductor_fp16 bench_tensorrt; do
    skip "$s" "CUDA does not work (probe)"
  done
fi

# 4. Summary (also after a failed probe: it says why)
step summary "$PY" - "$WORK" "$OUT" "$((SECONDS - START))" <<'PYEOF'
import json, pathlib, sys
import xml.etree.ElementTree as ET
work, out, seconds = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), int(sys.argv[3])
steps = []
for line in (work / "steps.tsv").read_text().splitlines():
    f = line.split("\t")
    s = {"step": f[0], "rc": f[1], "seconds": int(f[2]), "limit": int(f[3])}
    if len(f) > 4:
        s["why"] = f[4]
    s["status"] = ("skipped" if f[1] == "skipped" else "ok" if f[1] == "0" else
                   "timed out" if f[1] in ("124", "137") else "failed")
    steps.append(s)
probe = json.loads((work / "probe.json").read_text()) if (work / "probe.json").is_file() else {}
pytest = None
xml = work / "pytest_gpu.xml"
if xml.is_file():
    suites = ET.parse(xml).getroot()
    suites = [suites] if suites.tag == "testsuite" else list(suites)
    n = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors",
                                                             "skipped")}
    n["passed"] = n["tests"] - n["failures"] - n["errors"] - n["skipped"]
    pytest = n
    for s in steps:  # nothing may skip into green
        if s["step"] == "pytest_gpu" and s["status"] == "ok" and n["passed"] == 0:
            s["status"], s["why"] = "failed", "no test passed (all skipped or deselected)"
runs, rows = [], []
for p in sorted(out.glob("bench_*.json")):
    f = json.loads(p.read_text())
    for r in f["runs"]:
        run = {"file": p.name, "backend": r["backend"], "precision": r["precision"],
               "fps": r["fps"], "ms_per_frame": r["per_frame_seconds"] * 1e3,
               "network_ms_per_clip": r["median_seconds"]["model"] * 1e3,
               "clip_ms": r["median_seconds"]["clip_total"] * 1e3,
               "build_or_load_seconds": r["build_or_load_seconds"],
               "cuda_max_memory_mb": r.get("cuda_max_memory_mb"),
               "device_name": r["device_name"], "model_input_size": r["model_input_size"]}
        runs.append(run)
        rows.append(f"| {p.stem.removeprefix('bench_')} | {run['backend']} | {run['precision']} "
                    f"| {run['build_or_load_seconds']:.1f} | {run['network_ms_per_clip']:.1f} "
                    f"| {run['ms_per_frame']:.2f} | {run['fps']:.1f} "
                    f"| {'-' if run['cuda_max_memory_mb'] is None else round(run['cuda_max_memory_mb'])} |")
    for why in f.get("skipped", []) + f.get("failed", []):
        rows.append(f"| {p.stem.removeprefix('bench_')} | not run: {why[:150]} | | | | | | |")
ok = bool(probe.get("cuda_ok")) and all(s["status"] in ("ok", "skipped") for s in steps)
summary = {"ok": ok, "seconds": seconds, "gpu": probe.get("gpu"),
           "torch": probe.get("modules", {}).get("torch"), "cuda": probe.get("torch_cuda"),
           "steps": steps, "pytest_gpu": pytest, "runs": runs, "probe": probe}
(out / "summary.json").write_text(json.dumps(summary, indent=2))
head = (f"gpu_check {'PASS' if ok else 'FAIL'}"
        f"{'' if probe.get('cuda_ok') else ' (CUDA: ' + str(probe.get('cuda_error')) + ')'}: "
        f"{probe.get('gpu')}, torch "
        f"{summary['torch']} (CUDA {summary['cuda']}); the authors' network "
        f"(official_kitti_mots.yaml, random weights), 375x1242 -> model input "
        f"{runs[0]['model_input_size'] if runs else '?'}, T=8, Tc=4, 10 clips after 2 warm-up")
table = ["| step | backend | precision | build/load s | network ms/clip | ms/frame | frames/s "
         "| peak CUDA MiB |", "|---|---|---|---|---|---|---|---|"] + rows
steps_md = [f"- {s['step']}: {s['status']} (exit {s['rc']}, {s['seconds']} s of {s['limit']})"
            + (f": {s['why']}" if s.get("why") else "") for s in steps]
(out / "bench.md").write_text("\n".join([head, ""] + table + [""] + steps_md) + "\n")
print((out / "bench.md").read_text())
print(f"pytest -m gpu: {pytest}")
sys.exit(0 if ok else 1)
PYEOF
rc=$?
[ "$probe_rc" -ne 0 ] && rc=3
rm -rf "$WORK"
exec 1>&- 2>&-
wait "$TEE_PID" 2>/dev/null
exit $rc
