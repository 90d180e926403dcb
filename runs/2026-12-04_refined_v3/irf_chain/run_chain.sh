#!/usr/bin/env bash
# The IRF chain of docs/irf.md with the bundled default (run from the repository root).
# WORKDIR holds the chain's toy files and models of the earlier chains (gamma_*, proton_train,
# proton_test = toy run 201 with 2,500,000 showers, energy/disp/classifier .pkl, cuts.fits,
# irf_simulated.fits: the chain is deterministic, so only the generated protons are new).
set -euo pipefail
WORKDIR=${1:?usage: run_chain.sh WORKDIR}
# (the model's training selection in the reconstructors: the chain's default since
# 2026-12-06, before it EXTRA_CONFIG=examples/irf/training_selection.yaml)
N_GAMMA=20000 N_GENERATED=500000 \
  bash examples/irf_chain.sh "$WORKDIR" ctapipe_genshower/resources/default_model.safetensors
ctapipe-genshower-background --input "$WORKDIR/proton_generated.dl2.h5" \
    --reference "$WORKDIR/proton_test.dl2.h5" --config examples/irf/irf_mono.yaml \
    --config examples/irf/background_compare.yaml \
    --output "$WORKDIR/quality.fits" --summary "$WORKDIR/quality.json" --plot "$WORKDIR/quality.png" \
    --overwrite --no-progress
