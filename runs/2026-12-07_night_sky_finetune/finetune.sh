# The bundled default's teacher (v14's, ../2026-12-04_asinh/asinh_linear.safetensors: 21,500
# float32 steps in three pieces) fine-tuned with P5w3's night-sky times
# (--night-sky-charge 5 --night-sky-target plane, time weight 1/3) on the 8-run file of its
# last piece (runs 101-108), at that piece's peak rate, in float32. Interrupted, it continues
# where it stopped (the same command; checkpoints every 500 steps resume bit-identically).
# usage: [WORKDIR=.] bash finetune.sh   (WORKDIR holds train8.training.safetensors)
set -e
HERE=$(cd "$(dirname "$0")" && pwd)
cd "${WORKDIR:-.}"
resume=()
[ -e ns_ft.state.safetensors ] && resume=(--resume)
/usr/bin/time -v ctapipe-genshower-train -i train8.training.safetensors -o ns_ft.safetensors \
    --model small-asinh-linear-time --init-model "$HERE/../2026-12-04_asinh/asinh_linear.safetensors" \
    --steps 4000 --batch-size 32 --lr 2.5e-4 --TrainTool.warmup_steps=200 --ema-decay 0.999 \
    --shower-steps 200 --seed 4 \
    --night-sky-charge 5 --night-sky-target plane --channel-weights 1 --channel-weights 0.333 \
    --checkpoint-interval 500 --validation-interval 1000 --no-progress "${resume[@]}" \
    >> ns_ft.train.log 2>&1
