#!/usr/bin/env bash
# The ~2 h recipe (run 2026-12-05 on 2 CPU cores; wall times in README.md):
# piece 1 = ../2026-12-03_small_4500/model.safetensors (4500 steps, 38 min) -> piece 3 (the
# asinh+linear time transform, 4500 steps instead of 8000) -> piece 4 (4-step student) ->
# piece 5 (refiner on all training images) -> the model card's validation and the G/H tail.
# Run from a directory holding train8.training.safetensors, run_201.dl1.h5 (toy run 201) and
# piece1.safetensors (a copy of piece 1); CHAIN: an IRF chain directory of docs/irf.md.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
T=train8.training.safetensors
ctapipe-genshower-train -i $T -o teacher.safetensors \
    --model small-asinh-linear-time --init-model piece1.safetensors --steps 4500 --lr 2.5e-4 \
    --shower-steps 200 --seed 3 --validation-interval 1000 --checkpoint-interval 500 --no-progress
ctapipe-genshower-train -i $T -o student4.safetensors \
    --model small-asinh-linear-time --init-model teacher.safetensors \
    --distill-steps 4 --teacher-substeps 4 --steps 1500 --batch-size 32 --lr 1e-4 \
    --TrainTool.warmup_steps=100 --ema-decay 0.998 --seed 3 --checkpoint-interval 500 \
    --validation-interval 500 --TrainTool.validation_events=256 --no-progress
ctapipe-genshower-refine --model student4.safetensors --input $T -o refined.safetensors --no-progress
N=${N_SHOWERS:-1000000}
ctapipe-genshower-generate --model refined.safetensors -o gen_short.dl1.h5 --n-showers "$N" \
    --seed 7 --obs-id 301 --no-progress
ctapipe-genshower-validate --generated gen_short.dl1.h5 --reference run_201.dl1.h5 -o report_short \
    --no-progress
CHAIN=${CHAIN:?the IRF chain directory} "$HERE/../2026-12-04_gh_tail/gh_tail.sh" short gen_short.dl1.h5
