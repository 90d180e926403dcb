#!/bin/bash
cd "$(dirname "$0")"  # beside ../v7/train16 and ../run_201
export ETA_SCHEDULE=1,1,0 ETA_CHANNELS=0
/usr/bin/time -f "refit %e s" python refine_sched.py --model ../2026-12-04_asinh/student4_asinh_linear.safetensors \
  --input ../v7/train16.training.safetensors -o v10_raw.safetensors > refit.log 2>&1
/usr/bin/time -f "generation %e s" python proc_sched.py -i v10_raw.safetensors -o gen_v10.dl1.h5 --write-images --write-parameters \
  --DiffusionEventSource.n_showers=1000000 --DiffusionEventSource.seed=7 --DiffusionEventSource.obs_id=301 --overwrite --no-progress > eval.log 2>&1
ctapipe-genshower-validate -g gen_v10.dl1.h5 -r ../run_201.dl1.h5 -o report_v10 --overwrite --no-progress >> eval.log 2>&1
