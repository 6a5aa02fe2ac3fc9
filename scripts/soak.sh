#!/usr/bin/env bash
# `make soak`: the perception node fed at its peak rate for 20 minutes of camera time, then 50
# lifecycle cycles; RSS, threads and open files over time (out/soak/soak.png), fails on growth.
# A 300-frame synthetic drive (192x640, the demo model's size) is written once to
# SOAK_DIR/drive.mcap. Overrides: SOAK_DIR (default out/soak), SOAK_ARGS (extra arguments of
# `stemseg bag soak`, e.g. "--rate 5 --camera-minutes 2 --cycles 5 --node-arg backend=torch").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SOAK_DIR="${SOAK_DIR:-out/soak}"
mkdir -p "$SOAK_DIR"
if [[ ! -d "$SOAK_DIR/drive.mcap" ]]; then
    stemseg synth --out "$SOAK_DIR/synth" --sequences 1 --val-fraction 0 --frames 300 \
        --seed 7919 --height 192 --width 640 --quiet
    SEQ=$(ls "$SOAK_DIR/synth/training/image_02" | head -n 1)
    stemseg bag from-kitti --kitti "$SOAK_DIR/synth" --seq "$SEQ" --out "$SOAK_DIR/drive.mcap"
fi
# shellcheck disable=SC2086  # SOAK_ARGS is a list of arguments
exec stemseg bag soak --bag "$SOAK_DIR/drive.mcap" --out "$SOAK_DIR" --device cpu ${SOAK_ARGS:-}
