#!/usr/bin/env bash
# The demo model's training recipe (docs/demo_model.md explains each leg): synthetic drives ->
# 13 training legs on a 2-core CPU (about 15.5 h) -> checkpoints/stemseg_demo.pt.
#   bash scripts/train_demo_model.sh            # run it (from the repository root, venv active)
#   bash scripts/train_demo_model.sh --dry-run  # print the commands only
#   bash scripts/train_demo_model.sh --leg15 [--dry-run]  # only the last leg (camera effects)
# A leg stopped midway resumes with its own command plus --resume.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DRY=0; LEG15=0
for a in "$@"; do case "$a" in --dry-run) DRY=1 ;; --leg15) LEG15=1 ;;
  *) echo "usage: $0 [--dry-run] [--leg15]" >&2; exit 2 ;; esac; done
stemseg() { echo "+ stemseg $*"; [ "$DRY" = 1 ] || command stemseg "$@"; }
mkdir() { [ "$DRY" = 1 ] || command mkdir "$@"; }
ln() { [ "$DRY" = 1 ] || command ln "$@"; }
# 15. (issue 38) the camera-pipeline effects (data.camera_effects of config/model/demo_cpu.yaml:
#     JPEG at quality 100-83, 4:2:2/4:2:0 chroma, a Bayer sensor's demosaicing, sensor noise,
#     blur, exposure, gamma, white balance, vignetting), 500 steps from the leg-14 weights on 160
#     new drives (seed 7), otherwise as leg 14, LR 0.002, decay from step 300 to x0.1,
#     train.seed=54 (about 25 min with two threads, 40 min with one). Exported with the shipped
#     inference settings to checkpoints/stemseg_demo.pt (shipped 2026-12-07). Against leg 14 on 48
#     unseen drives: cars +0.5 to +1.4 HOTA per drive under JPEG 95, 4:2:2 and a Bayer sensor
#     (resolved; a twin with train.seed=58 gave the same), pedestrians unchanged within the
#     drives' scatter, lossless pedestrians -0.6 over all 48 (docs/robustness.md,
#     "Leg 15 shipped"). Seven other leg-15 mixes tried before it (a chroma low-pass at the input,
#     a frozen teacher, ...) are in the same document. --leg15 alone needs the leg-14 checkpoint
#     in runs/demo14/stemseg_demo.pt: `git show 2574811:checkpoints/stemseg_demo.pt > ...`.
leg15() {
  [ "$DRY" = 1 ] || [ -f runs/demo14/stemseg_demo.pt ] || {
    echo "leg 15 needs runs/demo14/stemseg_demo.pt (legs 1-14, or: mkdir -p runs/demo14 &&" \
         "git show 2574811:checkpoints/stemseg_demo.pt > runs/demo14/stemseg_demo.pt)" >&2; exit 2; }
  stemseg synth --out data/synth_s7 --sequences 160 --frames 60 --seed 7 --val-fraction 0
  stemseg train --config config/model/demo_cpu.yaml --data data/synth_s7 \
      --out runs/demo15 --init runs/demo14/stemseg_demo.pt --set model.output_stride=2 \
      train.max_steps=500 train.lr=0.002 train.lr_decay_start=300 \
      train.lr_decay_factor=0.1 train.seed=54 loss.seediness_small_instance_area=400 \
      data.oversample_weight=2 data.oversample_max_area=100
  stemseg export --checkpoint runs/demo15/last.pt --format checkpoint \
      --out checkpoints/stemseg_demo.pt --set inference.center_refinement_steps=2 \
      inference.mask_threshold=0.4 inference.min_track_length=5 \
      "inference.min_mask_area_per_class={pedestrian: 60}" \
      "inference.seediness_threshold_per_class={pedestrian: 0.85}" \
      inference.relink_max_gap=20 inference.relink_max_distance=2.0 \
      "inference.relink_classes=[pedestrian]" inference.flip_test=true \
      inference.mask_refinement_radius=3 "inference.mask_refinement_radius_per_class={pedestrian: 5}"
}
if [ "$LEG15" = 1 ]; then leg15; exit 0; fi
# Legs 1-14 ran before the camera effects existed: they are switched off there ($NOCAM).
NOCAM="data.camera_effects={}"
stemseg synth --out data/synth --sequences 32 --frames 60 --seed 0       # 24 train + 8 val drives
# 1. 1900 steps, LR 0.01, decay from step 1300 (52 min)
stemseg train --config config/model/demo_cpu.yaml --data data/synth --out runs/demo --device cpu --set "$NOCAM"
# 2. 711 more steps at LR 0.01 (stopped at 2611 with Ctrl-C; resumable)
# (the original run was planned to 3300 and stopped at 2611; the LR was still constant then)
stemseg train --data data/synth --out runs/demo --resume --max-steps 2611 --set train.lr_decay_start=2700
# 3. 2600 steps from those weights, LR 0.01, decay from step 600 to x0.05 (60 min)
stemseg train --config config/model/demo_cpu.yaml --data data/synth --out runs/demo2 \
    --init runs/demo/last.pt --set "$NOCAM" train.max_steps=2600 train.lr_decay_start=600 train.lr_decay_factor=0.05
# 4. 2300 more, LR 0.007, decay from step 600 to x0.05 (52 min)
stemseg train --config config/model/demo_cpu.yaml --data data/synth --out runs/demo3 \
    --init runs/demo2/last.pt --set "$NOCAM" train.max_steps=2300 train.lr=0.007 train.lr_decay_start=600 \
    train.lr_decay_factor=0.05
# 5. 4000 more, LR 0.005, decay from step 1200 to x0.1 (1 h 31 min)
stemseg train --config config/model/demo_cpu.yaml --data data/synth --out runs/demo4 \
    --init runs/demo3/last.pt --set "$NOCAM" train.max_steps=4000 train.lr=0.005 train.lr_decay_start=1200 \
    train.lr_decay_factor=0.1
# 6. stride-2 output: 2000 steps from the leg-5 weights (new refiners start at zero), LR 0.005,
#    decay from step 1000 to x0.1 (1 h 50 min, about 3.3 s/step)
stemseg train --config config/model/demo_cpu.yaml --data data/synth --out runs/demo6 \
    --init runs/demo4/last.pt --set "$NOCAM" model.output_stride=2 train.max_steps=2000 train.lr=0.005 \
    train.lr_decay_start=1000 train.lr_decay_factor=0.1
# 7. 1800 steps on 72 drives from the leg-6 weights, LR 0.003, decay from step 900 to x0.1,
#    a new data order (train.seed=43) (1 h 33 min, about 3.0 s/step)
stemseg synth --out data/synth_big --sequences 96 --frames 60 --seed 0   # 72 train drives
stemseg train --config config/model/demo_cpu.yaml --data data/synth_big --out runs/demo7 \
    --init runs/demo6/last.pt --set "$NOCAM" model.output_stride=2 train.max_steps=1800 train.lr=0.003 \
    train.lr_decay_start=900 train.lr_decay_factor=0.1 train.seed=43
# 8. 2100 steps on 144 fresh-order drives from the leg-7 weights, LR 0.003, decay from step 600
#    to x0.1, train.seed=44 (1 h 39 min, about 2.8 s/step; run as 405 steps with
#    train.max_steps=1800, stopped with Ctrl-C, then resumed with --max-steps 2100, which only
#    lengthens the decay since it starts at step 600)
stemseg synth --out data/synth_xl --sequences 160 --frames 60 --seed 0 --val-fraction 0.1  # 144 train
stemseg train --config config/model/demo_cpu.yaml --data data/synth_xl --out runs/demo8 \
    --init runs/demo7/last.pt --set "$NOCAM" model.output_stride=2 train.max_steps=2100 train.lr=0.003 \
    train.lr_decay_start=600 train.lr_decay_factor=0.1 train.seed=44
# 9. 2200 steps on the same 144 drives from the leg-8 weights, small instances weighted up in the
#    seediness loss (loss.seediness_small_instance_area=400), LR 0.002, decay from step 700 to
#    x0.1, train.seed=45 (1 h 33 min, about 2.5 s/step with evaluations running alongside)
stemseg train --config config/model/demo_cpu.yaml --data data/synth_xl --out runs/demo9 \
    --init runs/demo8/last.pt --set "$NOCAM" model.output_stride=2 train.max_steps=2200 train.lr=0.002 \
    train.lr_decay_start=700 train.lr_decay_factor=0.1 train.seed=45 \
    loss.seediness_small_instance_area=400
# 11. 2100 steps from the leg-9 weights on 304 drives: the 144 above plus 160 new ones (seed 1),
#     same loss as leg 9, LR 0.002, decay from step 800 to x0.1, train.seed=47 (1 h 35 min with
#     evaluations running alongside; planned as 2400 steps, stopped at 316 with Ctrl-C and
#     resumed with --max-steps 2100: the LR was still constant then, so the schedule is the
#     command's below)
stemseg synth --out data/synth_xl2 --sequences 160 --frames 60 --seed 1 --val-fraction 0
mkdir -p data/synth_mix/training/image_02 data/synth_mix/instances data/synth_mix/instances_txt
[ "$DRY" = 1 ] || for d in synth_xl:train synth_xl2:fulltrain; do src=${d%%:*}; pre=$([ $src = synth_xl2 ] && echo 1)
  for s in $(cut -d' ' -f1 data/$src/${d#*:}.seqmap); do
    ln -s ../../../$src/training/image_02/$s data/synth_mix/training/image_02/$pre$s
    ln -s ../../$src/instances/$s data/synth_mix/instances/$pre$s
    ln -s ../../$src/instances_txt/$s.txt data/synth_mix/instances_txt/$pre$s.txt
    echo "$pre$s empty 000000 000059" >> data/synth_mix/train.seqmap; done; done
stemseg train --config config/model/demo_cpu.yaml --data data/synth_mix --out runs/demo11 \
    --init runs/demo9/last.pt --set "$NOCAM" model.output_stride=2 train.max_steps=2100 train.lr=0.002 \
    train.lr_decay_start=800 train.lr_decay_factor=0.1 train.seed=47 \
    loss.seediness_small_instance_area=400
# 12. 1300 steps from the leg-11 weights on 320 new drives (seeds 2 and 3; several --data
#     folders are pooled), same loss, LR 0.002, decay from step 500 to x0.1, train.seed=48
#     (1 h 11 min, about 3.3 s/step)
stemseg synth --out data/synth_s2 --sequences 160 --frames 60 --seed 2 --val-fraction 0
stemseg synth --out data/synth_s3 --sequences 160 --frames 60 --seed 3 --val-fraction 0
stemseg train --config config/model/demo_cpu.yaml --data data/synth_s2 data/synth_s3 --out runs/demo12 \
    --init runs/demo11/last.pt --set "$NOCAM" model.output_stride=2 train.max_steps=1300 train.lr=0.002 \
    train.lr_decay_start=500 train.lr_decay_factor=0.1 train.seed=48 \
    loss.seediness_small_instance_area=400
# 14. 1200 steps from the leg-12 weights on 320 new drives (seeds 5 and 6), same loss, clips
#     whose first frame holds k pedestrians under 100 px drawn 1 + 2k times as often (69 % of
#     the clips instead of 38 %), LR 0.002, decay from step 400 to x0.1, train.seed=50 (65 min of
#     training at about 3.2 s/step; the log says 81.6 min as the run was paused for 16 min;
#     it was started from the leg-12 checkpoint as shipped, the same weights as runs/demo12)
stemseg synth --out data/synth_s5 --sequences 160 --frames 60 --seed 5 --val-fraction 0
stemseg synth --out data/synth_s6 --sequences 160 --frames 60 --seed 6 --val-fraction 0
stemseg train --config config/model/demo_cpu.yaml --data data/synth_s5 data/synth_s6 --out runs/demo14 \
    --init runs/demo12/last.pt --set "$NOCAM" model.output_stride=2 train.max_steps=600 train.lr=0.002 \
    train.lr_decay_start=400 train.lr_decay_factor=0.1 train.seed=50 \
    loss.seediness_small_instance_area=400 data.oversample_weight=2 data.oversample_max_area=100
stemseg export --checkpoint runs/demo14/last.pt --format checkpoint --out runs/demo14/stemseg_demo.pt \
    --set inference.center_refinement_steps=2 inference.mask_threshold=0.4 inference.min_track_length=5 \
    "inference.min_mask_area_per_class={pedestrian: 60}" \
    "inference.seediness_threshold_per_class={pedestrian: 0.85}" \
    inference.relink_max_gap=20 inference.relink_max_distance=2.0 \
    "inference.relink_classes=[pedestrian]" inference.flip_test=true
# 2026-12-04: the same weights re-exported with mask refinement (see "Mask refinement" below)
stemseg export --checkpoint runs/demo14/stemseg_demo.pt --format checkpoint --out runs/demo14/stemseg_demo.pt \
    --set inference.mask_refinement_radius=3 "inference.mask_refinement_radius_per_class={pedestrian: 5}"
# (the leg-14 checkpoint was shipped from 2026-12-04 to 2026-12-07; git show 2574811:checkpoints/...)
leg15
