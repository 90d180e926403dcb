#!/usr/bin/env bash
# GPU session (one H200, <= 15 min of device time): the compiled student at larger batches and
# in channels-last, and ShowerGenerator.generate as a whole (shower-level model, sampling,
# decoding to camera pixels), plain and compiled. Needs only torch, numpy, safetensors.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
STUDENT=runs/2026-12-04_asinh/student4_asinh_linear.safetensors
t0=$(date +%s)
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc;
  python -c "import torch; print(torch.__version__)"; } 2>&1 | tee $OUT/gpu.txt
timeout 230 python benchmarks/bench_generator.py --devices cuda --model $STUDENT --steps 4 \
  --batch 16384 32768 --noise device --variants bf16 compile-bf16 compile-channels-last-bf16 \
  --repeats 3 2>&1 | grep -v Warning | tee $OUT/bench_student_compile.txt
echo "elapsed $(( $(date +%s) - t0 )) s" | tee -a $OUT/bench_student_compile.txt
timeout $(( 420 - $(date +%s) + t0 )) python benchmarks/bench_generator.py --devices cuda \
  --model $STUDENT --steps 4 --batch 16384 --noise device --variants bf16 --repeats 1 \
  --generate 131072 --generate-variants default compile-bf16 2>&1 | grep -v Warning \
  | tee $OUT/bench_student_generate.txt
echo "elapsed $(( $(date +%s) - t0 )) s" | tee -a $OUT/bench_student_generate.txt
