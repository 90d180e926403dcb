# P5w3's second and third samples: generation seed 8 (P5w3_g8), and training seed 2 (P5w3s2,
# generation seed 7), as ../2026-12-07_screen_noise/noise.sh sampled L5.
# usage: bash replicates.sh WORKDIR   (P5w3.safetensors, the original train16.train.safetensors
#        and toy_201.dl1.h5 there)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$1"
if [ ! -e val_P5w3_g8/metrics.json ]; then
  ctapipe-genshower-generate --model P5w3.safetensors -o gen_P5w3_g8.dl1.h5 \
    --n-showers 500000 --seed 8 --obs-id 302 --n-steps 20 --max-redraws 0 --bf16 \
    --no-progress --overwrite > P5w3_g8.gen.log 2>&1
  ctapipe-genshower-validate -g gen_P5w3_g8.dl1.h5 -r toy_201.dl1.h5 -o val_P5w3_g8 \
    --overwrite --no-progress > P5w3_g8.val.log 2>&1
fi
if [ ! -e P5w3s2.safetensors ]; then
  /usr/bin/time -v ctapipe-genshower-train -i train16.train.safetensors -o P5w3s2.safetensors \
    --model small-asinh-linear-time --steps 2000 --batch-size 32 --lr 5e-4 \
    --TrainTool.warmup_steps=100 --ema-decay 0.995 --seed 2 --mixed-precision bf16 \
    --night-sky-charge 5 --night-sky-target plane --channel-weights 1 --channel-weights 0.333 \
    --checkpoint-interval 500 --validation-interval 500 --log-interval 50 --no-progress \
    > P5w3s2.train.log 2>&1
fi
bash "$here/../2026-12-07_lr_screen/arm.sh" P5w3s2 5e-4
date
