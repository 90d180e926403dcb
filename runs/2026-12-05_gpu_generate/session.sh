#!/usr/bin/env bash
# GPU session (one H100 or H200, <= 15 min of device time): ShowerGenerator.generate as a whole
# (shower-level model, sampling, decoding to camera pixels) after the fixes of 2026-12-04
# evening (decoding on the GPU, streams derived once per draw), beside the network alone.
# Needs only torch, numpy, safetensors.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
STUDENT=runs/2026-12-04_asinh/student4_asinh_linear.safetensors
t0=$(date +%s)
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc;
  python -c "import torch; print(torch.__version__)"; } 2>&1 | tee $OUT/gpu.txt
timeout 200 python benchmarks/bench_generator.py --devices cuda --model $STUDENT --steps 4 \
  --batch 16384 --noise device --variants bf16 compile-channels-last-bf16 \
  --repeats 3 2>&1 | grep -v Warning | tee $OUT/bench_student_network.txt
echo "elapsed $(( $(date +%s) - t0 )) s" | tee -a $OUT/bench_student_network.txt
timeout $(( 430 - $(date +%s) + t0 )) python benchmarks/bench_generator.py --devices cuda \
  --model $STUDENT --steps 4 --batch 16384 --noise device --variants bf16 --repeats 1 \
  --generate 131072 --generate-variants default compile-channels-last-bf16 2>&1 | grep -v Warning \
  | tee $OUT/bench_student_generate.txt
echo "elapsed $(( $(date +%s) - t0 )) s" | tee -a $OUT/bench_student_generate.txt
