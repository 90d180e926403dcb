#!/usr/bin/env bash
# GPU session 2: the generator with its noise drawn on the device.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
STUDENT=runs/2026-12-04_asinh/student4_asinh_linear.safetensors
t0=$(date +%s)
timeout 90 python benchmarks/bench_generator.py --devices cuda --model $STUDENT --steps 4 \
  --batch 4096 16384 --noise both --variants plain bf16 channels-last-bf16 --repeats 3 2>&1 | tee $OUT/bench2_noise.txt
echo "elapsed $(( $(date +%s) - t0 )) s"
timeout $(( 215 - $(date +%s) + t0 )) python benchmarks/bench_generator.py --devices cuda --model $STUDENT --steps 4 \
  --batch 16384 --noise device --variants bf16 compile-bf16 --repeats 3 --generate 65536 2>&1 | tee $OUT/bench2_compile.txt
echo "elapsed $(( $(date +%s) - t0 )) s"
