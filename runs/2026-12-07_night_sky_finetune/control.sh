# The control of finetune.sh: the same fine-tune of v14's teacher (4000 float32 steps at 2.5e-4,
# seed 4, the 8-run file) without the night-sky times and with the teacher's own loss weights:
# what the extra steps alone give. Interrupted, it continues where it stopped.
# usage: [WORKDIR=.] bash control.sh   (WORKDIR holds train8.training.safetensors)
set -e
HERE=$(cd "$(dirname "$0")" && pwd)
cd "${WORKDIR:-.}"
resume=()
[ -e ns_ft_control.state.safetensors ] && resume=(--resume)
/usr/bin/time -v ctapipe-genshower-train -i train8.training.safetensors -o ns_ft_control.safetensors \
    --model small-asinh-linear-time --init-model "$HERE/../2026-12-04_asinh/asinh_linear.safetensors" \
    --steps 4000 --batch-size 32 --lr 2.5e-4 --TrainTool.warmup_steps=200 --ema-decay 0.999 \
    --shower-steps 200 --seed 4 \
    --checkpoint-interval 500 --validation-interval 1000 --no-progress "${resume[@]}" \
    >> ns_ft_control.train.log 2>&1
