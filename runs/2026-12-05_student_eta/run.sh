#!/bin/bash
cd "$(dirname "$0")"  # toy run 201 in ..
M=$(ctapipe-genshower-info --model-path)  # the bundled v7
for eta in 0 0.5 1; do
  /usr/bin/time -f "generation %e s" python proc_eta.py -i $M -o gen_eta$eta.dl1.h5 --write-images --write-parameters \
    --DiffusionEventSource.n_showers=1000000 --DiffusionEventSource.seed=7 --DiffusionEventSource.obs_id=301 \
    --DiffusionEventSource.refine=False --DiffusionEventSource.eta=$eta --overwrite --no-progress > log_eta$eta.txt 2>&1
  ctapipe-genshower-validate -g gen_eta$eta.dl1.h5 -r ../run_201.dl1.h5 -o report_eta$eta --overwrite --no-progress >> log_eta$eta.txt 2>&1
done
