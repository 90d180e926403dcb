# One ablation arm of docs/ablation.md's protocol: train 1200 steps of the preset MODEL (default
# `small`) on the 16-run training file, generate 300k showers (DDIM 20, no redraws, seed 7,
# obs_id 301), validate against toy run 201 (REFERENCE).
# usage: [WORKDIR=.] [MODEL=small] [REFERENCE=toy_201.dl1.h5] bash arm.sh NAME [TRAIN OPTIONS]
# e.g.   bash arm.sh S2 --log-snr-shift 2
set -e
cd "${WORKDIR:-.}"
name=$1; shift
if [ ! -e $name.safetensors ]; then
  /usr/bin/time -v ctapipe-genshower-train -i train16.train.safetensors -o $name.safetensors --model "${MODEL:-small}" \
    --steps 1200 --batch-size 32 --lr 5e-4 --TrainTool.warmup_steps=100 --ema-decay 0.995 --seed 1 \
    --shower-steps 3000 --no-progress "$@" > $name.train.log 2>&1
fi
if [ ! -e gen_$name.dl1.h5 ]; then
  ctapipe-genshower-generate --model $name.safetensors -o gen_$name.dl1.h5 --n-showers 300000 \
    --seed 7 --obs-id 301 --n-steps 20 --max-redraws 0 --no-progress --overwrite > $name.gen.log 2>&1
fi
if [ ! -e val_$name/metrics.json ]; then
  ctapipe-genshower-validate -g gen_$name.dl1.h5 -r "${REFERENCE:-toy_201.dl1.h5}" -o val_$name \
    --overwrite --no-progress > $name.val.log 2>&1
fi
date
