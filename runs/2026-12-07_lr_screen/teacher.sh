# The rule's follow-up: the one-schedule bf16 teacher of ../2026-12-06_single_schedule/
# (12,000 steps, seed 1, the 16-run training file) at peak learning rate 2e-3 (arm L20),
# nothing else changed. Interrupted, it continues where it stopped (the same command; the
# checkpoints are every 500 steps and resume bit-identically).
# usage: [WORKDIR=.] bash teacher.sh   (WORKDIR holds train16.train.safetensors)
set -e
cd "${WORKDIR:-.}"
resume=()
[ -e lr20_12k.state.safetensors ] && resume=(--resume)
/usr/bin/time -v ctapipe-genshower-train -i train16.train.safetensors -o lr20_12k.safetensors \
    --model small-asinh-linear-time --steps 12000 --batch-size 32 --lr 2e-3 \
    --TrainTool.warmup_steps=200 --ema-decay 0.999 --seed 1 --mixed-precision bf16 \
    --checkpoint-interval 500 --validation-interval 2000 --no-progress "${resume[@]}" \
    >> lr20_12k.train.log 2>&1
