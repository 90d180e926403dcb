#!/usr/bin/env bash
# Full mono IRF chain on toy-simulator gammas and protons, once with simulated protons and
# once with generated protons (DiffusionEventSource), then the background comparison.
#
# usage: examples/irf_chain.sh [WORKDIR] [MODEL]
#   WORKDIR  output directory (default: irf_chain)
#   MODEL    generator checkpoint (default: ctapipe-genshower-info --model-path)
# environment (event numbers are thrown showers per file):
#   N_GAMMA (20000)  N_PROTON (100000)  N_GENERATED (N_PROTON)  SEED (0)
#   TOY_GAMMA_SETTINGS / TOY_PROTON_SETTINGS (examples/{gammas,protons}.toymc.yaml)
#   GENERATOR_OPTIONS  extra ctapipe-process options for the generated protons
#                      (e.g. "--DiffusionEventSource.device=cuda --DiffusionEventSource.n_steps=20")
#   EXTRA_CONFIG       a YAML file given after the example configs to every ctapipe tool
#                      (e.g. smaller models or looser cuts for a quick run)
# A step whose output already exists is skipped, so a DL1 file can be provided up front
# (this is how tests/test_irf_chain.py runs a miniature chain) and an interrupted run resumes.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CONF="$HERE/irf"
WORK="${1:-irf_chain}"
MODEL="${2:-$(ctapipe-genshower-info --model-path)}"
N_GAMMA="${N_GAMMA:-20000}"
N_PROTON="${N_PROTON:-100000}"
N_GENERATED="${N_GENERATED:-$N_PROTON}"
SEED="${SEED:-0}"
TOY_GAMMA_SETTINGS="${TOY_GAMMA_SETTINGS:-$HERE/gammas.toymc.yaml}"
TOY_PROTON_SETTINGS="${TOY_PROTON_SETTINGS:-$HERE/protons.toymc.yaml}"
GENERATOR_OPTIONS="${GENERATOR_OPTIONS:-}"
EXTRA=()
if [[ -n "${EXTRA_CONFIG:-}" ]]; then
    EXTRA=(--config "$(cd "$(dirname "$EXTRA_CONFIG")" && pwd)/$(basename "$EXTRA_CONFIG")")
fi

mkdir -p "$WORK"
cd "$WORK"
STEP_NAME=irf_chain
# shellcheck source=examples/steps.sh
source "$HERE/steps.sh"

# 1. DL1 parameters: toy gammas (point-like) and protons, one file for training, one for testing
toy() {  # toy NAME SETTINGS N OBS_ID
    run "$1.dl1.h5" ctapipe-process --input "$2" --output @OUT@ --write-parameters \
        --no-write-images --ToyShowerEventSource.n_showers="$3" \
        --ToyShowerEventSource.obs_id="$4" --ToyShowerEventSource.seed="$SEED" --no-progress
}
toy gamma_train "$TOY_GAMMA_SETTINGS" "$N_GAMMA" 1
toy gamma_test "$TOY_GAMMA_SETTINGS" "$N_GAMMA" 2
toy proton_train "$TOY_PROTON_SETTINGS" "$N_PROTON" 3
toy proton_test "$TOY_PROTON_SETTINGS" "$N_PROTON" 4
# generated protons: same thrown phase space as the model's training simulation by default
# shellcheck disable=SC2086
run proton_generated.dl1.h5 ctapipe-process --input "$MODEL" --output @OUT@ --write-parameters \
    --no-write-images --DiffusionEventSource.n_showers="$N_GENERATED" \
    --DiffusionEventSource.obs_id=5 --DiffusionEventSource.seed="$SEED" --no-progress \
    $GENERATOR_OPTIONS

# 2. models: energy and disp on gammas, G/H classifier on gammas vs protons. Their quality
# queries include the model's training selection (model_selection.json), so events below it
# are invalid in both proton samples and every later step drops them alike
run model_selection.json python "$CONF/selection_config.py" "$MODEL" @OUT@
SELECTION=(--config model_selection.json)
run energy.pkl ctapipe-train-energy-regressor --input gamma_train.dl1.h5 --output @OUT@ \
    --config "$CONF/train_energy_regressor.yaml" "${SELECTION[@]}" "${EXTRA[@]}"
run disp.pkl ctapipe-train-disp-reconstructor --input gamma_train.dl1.h5 --output @OUT@ \
    --config "$CONF/train_disp_reconstructor.yaml" "${SELECTION[@]}" "${EXTRA[@]}"
run classifier.pkl ctapipe-train-particle-classifier --signal gamma_train.dl1.h5 \
    --background proton_train.dl1.h5 --output @OUT@ \
    --config "$CONF/train_particle_classifier.yaml" "${SELECTION[@]}" "${EXTRA[@]}"

# 3. DL2 for the test gammas, the simulated and the generated protons
for name in gamma_test proton_test proton_generated; do
    run "$name.dl2.h5" ctapipe-apply-models --input "$name.dl1.h5" --output @OUT@ \
        --reconstructor energy.pkl --reconstructor disp.pkl --reconstructor classifier.pkl \
        --no-progress
done

# 4. cuts (from simulated protons) and IRFs with simulated and with generated protons
run cuts.fits ctapipe-optimize-event-selection --gamma-file gamma_test.dl2.h5 \
    --proton-file proton_test.dl2.h5 --output @OUT@ --config "$CONF/irf_mono.yaml" \
    "${EXTRA[@]}"
run irf_simulated.fits ctapipe-compute-irf --cuts cuts.fits --gamma-file gamma_test.dl2.h5 \
    --proton-file proton_test.dl2.h5 --output @OUT@ --config "$CONF/irf_mono.yaml" \
    "${EXTRA[@]}"
run irf_generated.fits ctapipe-compute-irf --cuts cuts.fits --gamma-file gamma_test.dl2.h5 \
    --proton-file proton_generated.dl2.h5 --output @OUT@ --config "$CONF/irf_mono.yaml" \
    "${EXTRA[@]}"

# 5. comparison: per-bin ratio with errors, z-scores, chi2/ndf, proton effective areas
run background_comparison.fits ctapipe-genshower-background \
    --input proton_generated.dl2.h5 --reference proton_test.dl2.h5 --cuts cuts.fits \
    --config "$CONF/irf_mono.yaml" --config "$CONF/background_compare.yaml" "${EXTRA[@]}" \
    --output @OUT@ --plot background_comparison.png --summary background_comparison.json \
    --overwrite --no-progress
# and the BACKGROUND HDUs of ctapipe-compute-irf themselves (rates only, no errors there):
# ctapipe_genshower.irf.compare.background_hdu_ratio
python - irf_generated.fits irf_simulated.fits <<'EOF' | tee background_hdu_ratio.md
import sys
from ctapipe_genshower.irf.compare import background_hdu_ratio
print(background_hdu_ratio(*sys.argv[1:]), end="")
EOF
log "done: $(pwd)/background_comparison.{png,json,md}, background_hdu_ratio.md"
