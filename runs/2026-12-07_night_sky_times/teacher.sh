# The full-length teacher with night-sky times: the one-schedule bf16 teacher of
# ../2026-12-06_single_schedule/ (12,000 steps at 5e-4, seed 1, the 16-run training file) with
# P5w3's options (--night-sky-charge 5 --night-sky-target plane, time weight 1/3), nothing
# else changed. Interrupted, it continues where it stopped (the
# same command; checkpoints every 500 steps resume bit-identically).
# usage: [WORKDIR=.] bash teacher.sh   (WORKDIR holds the original train16.train.safetensors)
set -e
cd "${WORKDIR:-.}"
resume=()
[ -e ns12k.state.safetensors ] && resume=(--resume)
/usr/bin/time -v ctapipe-genshower-train -i train16.train.safetensors -o ns12k.safetensors \
    --model small-asinh-linear-time --steps 12000 --batch-size 32 --lr 5e-4 \
    --TrainTool.warmup_steps=200 --ema-decay 0.999 --seed 1 --mixed-precision bf16 \
    --night-sky-charge 5 --night-sky-target plane --channel-weights 1 --channel-weights 0.333 \
    --checkpoint-interval 500 --validation-interval 2000 --no-progress "${resume[@]}" \
    >> ns12k.train.log 2>&1
