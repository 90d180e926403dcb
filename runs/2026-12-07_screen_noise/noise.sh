# The screen's noise: L5 and K5w3b on generation seed 8, L5 on training seed 2.
# usage: bash noise.sh LR_DIR NS_DIR WORKDIR   (L5.safetensors in LR_DIR, K5w3b.safetensors in
#        NS_DIR; WORKDIR holds the original train16.train.safetensors and toy_201.dl1.h5)
set -euo pipefail
lr=$1 ns=$2
cd "$3"
here=$(cd "$(dirname "$0")" && pwd)
for arm in "$lr/L5" "$ns/K5w3b"; do
  name=$(basename "$arm")_g8
  [ -e "val_$name/metrics.json" ] && continue
  ctapipe-genshower-generate --model "$arm.safetensors" -o "gen_$name.dl1.h5" \
    --n-showers 500000 --seed 8 --obs-id 302 --n-steps 20 --max-redraws 0 --bf16 \
    --no-progress --overwrite > "$name.gen.log" 2>&1
  ctapipe-genshower-validate -g "gen_$name.dl1.h5" -r toy_201.dl1.h5 -o "val_$name" \
    --overwrite --no-progress > "$name.val.log" 2>&1
done
# L5's training command (../2026-12-07_lr_screen/arm.sh) with seed 2: the tool refuses a
# second --seed, so the command is written out here
if [ ! -e L5s2.safetensors ]; then
  /usr/bin/time -v ctapipe-genshower-train -i train16.train.safetensors -o L5s2.safetensors \
    --model small-asinh-linear-time --steps 2000 --batch-size 32 --lr 5e-4 \
    --TrainTool.warmup_steps=100 --ema-decay 0.995 --seed 2 --mixed-precision bf16 \
    --checkpoint-interval 500 --validation-interval 500 --log-interval 50 --no-progress \
    > L5s2.train.log 2>&1
fi
bash "$here/../2026-12-07_lr_screen/arm.sh" L5s2 5e-4
date
