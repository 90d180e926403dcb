# One arm of the learning-rate screen: the recipe teacher's settings (small-asinh-linear-time,
# batch 32, bf16, seed 1, the 16-run training file) for 2000 steps at peak learning rate LR
# (100 warm-up steps, cosine decay, EMA 0.995 as in docs/ablation.md's short arms), then
# 500,000 generated showers (DDIM 20, no redraws, bf16, seed 7, obs_id 301) validated against
# toy run 201.
# usage: [WORKDIR=.] [REFERENCE=toy_201.dl1.h5] bash arm.sh NAME LR [TRAIN OPTIONS]
set -euo pipefail
cd "${WORKDIR:-.}"
name=$1 lr=$2
shift 2
if [ ! -e "$name.safetensors" ]; then
  /usr/bin/time -v ctapipe-genshower-train -i train16.train.safetensors -o "$name.safetensors" \
    --model small-asinh-linear-time --steps 2000 --batch-size 32 --lr "$lr" \
    --TrainTool.warmup_steps=100 --ema-decay 0.995 --seed 1 --mixed-precision bf16 \
    --checkpoint-interval 500 --validation-interval 500 --log-interval 50 --no-progress \
    "$@" > "$name.train.log" 2>&1
fi
if [ ! -e "gen_$name.dl1.h5" ]; then
  ctapipe-genshower-generate --model "$name.safetensors" -o "gen_$name.dl1.h5" \
    --n-showers 500000 --seed 7 --obs-id 301 --n-steps 20 --max-redraws 0 --bf16 \
    --no-progress --overwrite > "$name.gen.log" 2>&1
fi
if [ ! -e "val_$name/metrics.json" ]; then
  ctapipe-genshower-validate -g "gen_$name.dl1.h5" -r "${REFERENCE:-toy_201.dl1.h5}" \
    -o "val_$name" --overwrite --no-progress > "$name.val.log" 2>&1
fi
date
