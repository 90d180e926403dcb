# The two-hour recipe: the one-schedule bf16 teacher of ../2026-12-06_single_schedule/
# (12,000 steps, 87.8 min), its 4-step student distilled in bf16, and a refiner fitted on the
# pairs of the training file's own images (no extra simulation), made in bf16.
# usage: [WORKDIR=.] bash train.sh   (WORKDIR holds train16.train.safetensors and
#        single12k.safetensors from ../2026-12-06_single_schedule/train.sh)
set -e
cd "${WORKDIR:-.}"
if [ ! -e r2h_student4.safetensors ]; then
  /usr/bin/time -v ctapipe-genshower-train -i train16.train.safetensors \
      -o r2h_student4.safetensors --model small-asinh-linear-time \
      --init-model single12k.safetensors --distill-steps 4 --teacher-substeps 4 \
      --steps 1500 --batch-size 32 --lr 1e-4 --TrainTool.warmup_steps=100 \
      --ema-decay 0.998 --seed 3 --mixed-precision bf16 --checkpoint-interval 500 \
      --validation-interval 500 --TrainTool.validation_events=256 --log-interval 50 \
      --no-progress > r2h_student4.train.log 2>&1
fi
if [ ! -e r2h_refined.safetensors ]; then
  /usr/bin/time -v ctapipe-genshower-refine --model r2h_student4.safetensors \
      --input train16.train.safetensors --pairs r2h_pairs16.safetensors --bf16 \
      --marginals --marginal-parameters=timing_deviation \
      --marginal-parameters=morphology_n_islands \
      --no-progress -o r2h_refined.safetensors > r2h_refined.log 2>&1
fi
