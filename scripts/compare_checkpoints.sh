#!/usr/bin/env bash
# Is a retrained checkpoint better than the shipped one on a camera's frames, and no worse on
# lossless ones? The 48-drive protocol of docs/robustness.md ("How much of this is noise?"):
# three sets of unseen synthetic drives (8 + 8 + 24 x 60 frames; seeds 99991, 31337, 161803)
# through `stemseg robustness` (lossless, Bayer, JPEG 95, 4:2:2) and the 8 held-out drives of
# `stemseg accuracy` (lossless and --camera), both checkpoints, then `stemseg compare`
# pooling all of it per drive. About 40 min per checkpoint with one thread on a 2-core machine;
# results are kept per checkpoint sha256 in OUT/runs, so the baseline's are reused.
#   bash scripts/compare_checkpoints.sh runs/demo15/stemseg_demo.pt        # vs the shipped model
#   bash scripts/compare_checkpoints.sh CAND.pt --baseline BASE.pt --out out/judge --jobs 1
#   bash scripts/compare_checkpoints.sh CAND.pt --dry-run                  # the commands only
# Exit status: that of `stemseg compare --fail-on-worse` (1: a change resolved worse).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
usage() { echo "usage: $0 CANDIDATE.pt [--baseline PT] [--out DIR] [--jobs 1|2] [--dry-run]" >&2
          exit 2; }
[ $# -ge 1 ] || usage
CAND=$1; shift
BASE=checkpoints/stemseg_demo.pt; OUT=out/judge; JOBS=2; DRY=0
while [ $# -gt 0 ]; do case "$1" in
  --baseline) BASE=${2:?}; shift 2 ;; --out) OUT=${2:?}; shift 2 ;;
  --jobs) JOBS=${2:?}; shift 2 ;; --dry-run) DRY=1; shift ;; *) usage ;; esac; done
for f in "$CAND" "$BASE"; do [ -f "$f" ] || { echo "$0: no checkpoint at $f" >&2; exit 2; }; done
case "$JOBS" in 1|2) ;; *) echo "$0: --jobs must be 1 or 2, got $JOBS" >&2; exit 2 ;; esac
[ "$DRY" = 1 ] || mkdir -p "$OUT"
SETS="rob8:8:99991 tune8:8:31337 new24:24:161803"   # name:drives:seed
run() { echo "+ $*"; [ "$DRY" = 1 ] || OMP_NUM_THREADS=1 "$@"; }
sha12() { sha256sum "$1" | cut -c1-12; }

for s in $SETS; do
  IFS=: read -r name n seed <<< "$s"
  [ -f "$OUT/data/$name/synth_info.json" ] || run stemseg synth --out "$OUT/data/$name" \
      --sequences "$n" --frames 60 --seed "$seed" --val-fraction 0
done

# every result of one checkpoint, skipping those already there
results() {
  local ck=$1 dir=$OUT/runs/$(sha12 "$1")
  for s in $SETS; do
    IFS=: read -r name _n _seed <<< "$s"
    [ -f "$dir/$name/robustness.json" ] || run stemseg robustness --checkpoint "$ck" \
        --data "$OUT/data/$name" --split fulltrain --effects demosaic jpeg chroma \
        --severities 1 --out "$dir/$name"
  done
  [ -f "$dir/heldout/accuracy.json" ] || run stemseg accuracy --checkpoint "$ck" \
      --out "$dir/heldout" --quiet
  [ -f "$dir/heldout_camera/accuracy.json" ] || run stemseg accuracy --checkpoint "$ck" \
      --camera --out "$dir/heldout_camera" --quiet
}
if [ "$JOBS" = 2 ] && [ "$DRY" = 0 ]; then
  results "$BASE" > "$OUT/baseline.log" 2>&1 & pid=$!
  results "$CAND" > "$OUT/candidate.log" 2>&1 || {
    echo "$0: the candidate's runs failed: $OUT/candidate.log" >&2; wait $pid || true; exit 1; }
  wait $pid || { echo "$0: the baseline's runs failed: $OUT/baseline.log" >&2; exit 1; }
else
  results "$BASE"; results "$CAND"
fi

dirs() { local d=$OUT/runs/$(sha12 "$1"); for s in $SETS; do echo "$d/${s%%:*}"; done
         echo "$d/heldout $d/heldout_camera"; }
# shellcheck disable=SC2046
run stemseg compare --baseline $(dirs "$BASE") --candidate $(dirs "$CAND") \
    --labels rob8 tune8 new24 heldout heldout_camera --out "$OUT/compare" --fail-on-worse
