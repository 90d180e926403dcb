# K5w3: K5 (the fixed-time file, L5's time transform kept) with a time-channel weight of 1/3.
# usage: bash run_k5w3.sh  (in a folder with L5.safetensors, the fixed-time
# train16.train.safetensors of fix_times.py and toy_201.dl1.h5)
set -euo pipefail
here=$(dirname "$0")
/usr/bin/time -v python "$here/train_kept.py" L5.safetensors \
  -i train16.train.safetensors -o K5w3.safetensors \
  --model small-asinh-linear-time --steps 2000 --batch-size 32 --lr 5e-4 \
  --TrainTool.warmup_steps=100 --ema-decay 0.995 --seed 1 --mixed-precision bf16 \
  --channel-weights 1 --channel-weights 0.333 \
  --checkpoint-interval 500 --validation-interval 500 --log-interval 50 --no-progress \
  > K5w3.train.log 2>&1
ctapipe-genshower-generate --model K5w3.safetensors -o gen_K5w3.dl1.h5 \
  --n-showers 500000 --seed 7 --obs-id 301 --n-steps 20 --max-redraws 0 --bf16 \
  --no-progress --overwrite > K5w3.gen.log 2>&1
ctapipe-genshower-validate -g gen_K5w3.dl1.h5 -r toy_201.dl1.h5 -o val_K5w3 --overwrite \
  --no-progress > K5w3.val.log 2>&1
date
