# finetune.sh with a night-sky threshold of 2.5 p.e. instead of 5 (nothing else changed): where
# the per-image time spread of the 3 and 1 p.e. arms crosses the toy's. Interrupted, it continues
# where it stopped (the same command; checkpoints every 500 steps resume bit-identically).
# usage: [WORKDIR=.] bash finetune_q25.sh   (WORKDIR holds train8.training.safetensors)
set -e
HERE=$(cd "$(dirname "$0")" && pwd)
cd "${WORKDIR:-.}"
resume=()
[ -e ns_ft_q25.state.safetensors ] && resume=(--resume)
/usr/bin/time -v ctapipe-genshower-train -i train8.training.safetensors -o ns_ft_q25.safetensors \
    --model small-asinh-linear-time --init-model "$HERE/../2026-12-04_asinh/asinh_linear.safetensors" \
    --steps 4000 --batch-size 32 --lr 2.5e-4 --TrainTool.warmup_steps=200 --ema-decay 0.999 \
    --shower-steps 200 --seed 4 \
    --night-sky-charge 2.5 --night-sky-target plane --channel-weights 1 --channel-weights 0.333 \
    --checkpoint-interval 500 --validation-interval 1000 --no-progress "${resume[@]}" \
    >> ns_ft_q25.train.log 2>&1
