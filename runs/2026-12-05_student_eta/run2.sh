#!/bin/bash
cd "$(dirname "$0")"  # toy run 201 in ..
M=$(ctapipe-genshower-info --model-path)  # the bundled v7
for sch in 1,0,0 1,1,0 0,1,0; do
  n=s${sch//,/}
  ETA_SCHEDULE=$sch /usr/bin/time -f "generation %e s" python proc_sched.py -i $M -o gen_$n.dl1.h5 --write-images --write-parameters \
    --DiffusionEventSource.n_showers=1000000 --DiffusionEventSource.seed=7 --DiffusionEventSource.obs_id=301 \
    --DiffusionEventSource.refine=False --DiffusionEventSource.eta=1 --overwrite --no-progress > log_$n.txt 2>&1
  ctapipe-genshower-validate -g gen_$n.dl1.h5 -r ../run_201.dl1.h5 -o report_$n --overwrite --no-progress >> log_$n.txt 2>&1
done
