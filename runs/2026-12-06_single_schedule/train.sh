# The teacher as one schedule: the default's `small-asinh-linear-time` preset from scratch,
# one cosine learning-rate schedule of 12,000 steps (the default's teacher: three pieces of
# 4500 + 9000 + 8000 steps with warm restarts, the time transform changed for the last one),
# bf16 autocast, on the 16-run training file.
# usage: [WORKDIR=.] bash train.sh   (WORKDIR holds train16.train.safetensors)
set -e
cd "${WORKDIR:-.}"
/usr/bin/time -v ctapipe-genshower-train -i train16.train.safetensors -o single12k.safetensors \
    --model small-asinh-linear-time --steps 12000 --batch-size 32 --lr 5e-4 \
    --TrainTool.warmup_steps=200 --ema-decay 0.999 --seed 1 --mixed-precision bf16 \
    --checkpoint-interval 500 --validation-interval 2000 --no-progress > single12k.train.log 2>&1
