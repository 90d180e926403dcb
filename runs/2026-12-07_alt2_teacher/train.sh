# The one-schedule bf16 teacher of ../2026-12-06_single_schedule/ (12,000 steps, seed 1) with
# one change: the time channel's training noise levels shifted by +2 in log-SNR
# (`--time-log-snr-shift 2`, arm ALT2 of ../2026-12-06_log_snr_shift/); the charge channel
# keeps uniform times.
# usage: [WORKDIR=.] bash train.sh   (WORKDIR holds train16.train.safetensors)
set -e
cd "${WORKDIR:-.}"
/usr/bin/time -v ctapipe-genshower-train -i train16.train.safetensors -o alt2_12k.safetensors \
    --model small-asinh-linear-time --steps 12000 --batch-size 32 --lr 5e-4 \
    --TrainTool.warmup_steps=200 --ema-decay 0.999 --seed 1 --mixed-precision bf16 \
    --time-log-snr-shift 2 \
    --checkpoint-interval 500 --validation-interval 2000 --no-progress > alt2_12k.train.log 2>&1
