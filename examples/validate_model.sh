#!/usr/bin/env bash
# The model card's validation protocol for a generator model, end to end (docs/validation.md,
# "Ranking models"): an independent toy reference run, generated samples at several seeds,
# ctapipe-genshower-validate on each, the mono IRF chain of examples/irf_chain.sh (its
# reconstructors and G/H cuts, trained on toy gammas and the toy proton run 101) applied to
# each sample, and one summary table (summary.md) with a column per sample.
#
# usage: examples/validate_model.sh [WORKDIR] [MODEL]
#   WORKDIR  output directory (default: validate_model)
#   MODEL    generator checkpoint (default: ctapipe-genshower-info --model-path)
# environment:
#   SAMPLES ("7:301 8:302 9:303")  generated samples as SEED:OBS_ID (the model card's three)
#   N_SHOWERS (1000000)            thrown showers per generated sample
#   N_REFERENCE (2500000)          thrown showers of each toy proton run (seed 201: the reference
#                                  and the chain's test protons; seed 101: the chain's training
#                                  protons)
#   N_CHAIN (500000)               the chain's own generated sample (seed 0, obs_id 5)
#   N_GAMMA (20000)                toy gammas of the chain (training and test each)
#   TOY_PROTON_SETTINGS            toy settings of the reference (examples/protons.toymc.yaml):
#                                  the thrown distribution the model was trained on
#   GENERATOR_OPTIONS              extra options of ctapipe-genshower-generate
#                                  (e.g. "--DiffusionEventSource.refiner_cap_quantile=0.995")
#   VALIDATE_OPTIONS               extra options of ctapipe-genshower-validate
#   EXTRA_CONFIG                   passed on to examples/irf_chain.sh (smaller models, looser cuts)
# On 2 CPU cores the model card's protocol takes 1-1.5 hours with the bundled default: 13-23
# min per generated sample and 9-12 min for the chain's sample (on two machines), a few
# minutes for the rest.
# A step whose output already exists is skipped (an interrupted run resumes), so the toy
# runs can be shared between the validations of several models by linking them in.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="${1:-validate_model}"
MODEL="${2:-$(ctapipe-genshower-info --model-path)}"
if [[ ! -f "$MODEL" ]]; then
    echo "validate_model.sh: model file not found: $MODEL" >&2
    exit 2
fi
MODEL="$(cd "$(dirname "$MODEL")" && pwd)/$(basename "$MODEL")"
SAMPLES="${SAMPLES:-7:301 8:302 9:303}"
N_SHOWERS="${N_SHOWERS:-1000000}"
N_REFERENCE="${N_REFERENCE:-2500000}"
N_CHAIN="${N_CHAIN:-500000}"
TOY_PROTON_SETTINGS="${TOY_PROTON_SETTINGS:-$HERE/protons.toymc.yaml}"
GENERATOR_OPTIONS="${GENERATOR_OPTIONS:-}"
VALIDATE_OPTIONS="${VALIDATE_OPTIONS:-}"

mkdir -p "$WORK/chain"
cd "$WORK"
STEP_NAME=validate_model
# shellcheck source=examples/steps.sh
source "$HERE/steps.sh"
# background NAME ARGS...: ctapipe-genshower-background -> NAME.fits, NAME.json (and NAME.md)
# unless NAME.json exists (the tool writes its outputs whole, under their final names)
background() {
    local name="$1"
    shift
    if [[ -e "$name.json" ]]; then
        log "exists, skipping: $name.json"
        return
    fi
    log "$name.json <- ctapipe-genshower-background"
    ctapipe-genshower-background "$@" --config "$HERE/irf/irf_mono.yaml" \
        --config "$HERE/irf/background_compare.yaml" --output "$name.fits" \
        --summary "$name.json" --overwrite --no-progress
}

# 1. toy proton runs: the reference (seed 201) and the chain's training protons (seed 101)
for seed in 201 101; do
    run "toy_$seed.dl1.h5" ctapipe-process --input "$TOY_PROTON_SETTINGS" --output @OUT@ \
        --write-images --write-parameters --ToyShowerEventSource.n_showers="$N_REFERENCE" \
        --ToyShowerEventSource.seed="$seed" --ToyShowerEventSource.obs_id="$seed" --no-progress
done

# 2. the IRF chain: its toy protons are the runs above, its generated sample N_CHAIN showers
ln -sf ../toy_101.dl1.h5 chain/proton_train.dl1.h5
ln -sf ../toy_201.dl1.h5 chain/proton_test.dl1.h5
N_PROTON="$N_REFERENCE" N_GENERATED="$N_CHAIN" GENERATOR_OPTIONS="$GENERATOR_OPTIONS" \
    bash "$HERE/irf_chain.sh" chain "$MODEL"

# 3. each generated sample: generate, validate, apply the chain's models, compare backgrounds
names=()
for sample in $SAMPLES; do
    seed="${sample%%:*}"
    obs_id="${sample##*:}"
    name="seed_$seed"
    names+=("$name")
    # shellcheck disable=SC2086
    run "$name.dl1.h5" ctapipe-genshower-generate --model "$MODEL" --output @OUT@ \
        --n-showers "$N_SHOWERS" --seed "$seed" --obs-id "$obs_id" --no-progress \
        $GENERATOR_OPTIONS
    # shellcheck disable=SC2086
    run "report_$name" ctapipe-genshower-validate --generated "$name.dl1.h5" \
        --reference toy_201.dl1.h5 --output @OUT@ --no-progress $VALIDATE_OPTIONS
    run "$name.dl2.h5" ctapipe-apply-models --input "$name.dl1.h5" --output @OUT@ \
        --reconstructor chain/energy.pkl --reconstructor chain/disp.pkl \
        --reconstructor chain/classifier.pkl --no-progress
    for cuts in gh quality; do
        CUTS=(--cuts chain/cuts.fits)
        if [[ $cuts == quality ]]; then CUTS=(); fi
        background "background_${name}_$cuts" --input "$name.dl2.h5" \
            --reference chain/proton_test.dl2.h5 "${CUTS[@]}"
    done
done

# and the chain's own generated sample with quality cuts only (its G/H comparison: the chain's)
background chain/background_quality --input chain/proton_generated.dl2.h5 \
    --reference chain/proton_test.dl2.h5

# 4. one table: a column per sample and one for all of them; the chain's sample in a line
python - "$N_SHOWERS" "$N_REFERENCE" "$N_CHAIN" "${names[@]}" <<'EOF' | tee summary.md
import json
import sys
from ctapipe_genshower.validation.summary import gh_survivors, summary_table
n_showers, n_reference, n_chain, *names = sys.argv[1:]
print(summary_table(
    [f"report_{n}/metrics.json" for n in names],
    names=names,
    gh=[f"background_{n}_gh.json" for n in names],
    quality=[f"background_{n}_quality.json" for n in names],
    scale=float(n_showers) / float(n_reference),
    parameters=["timing_deviation", "morphology_n_islands"],
), end="")
chain = gh_survivors("chain/background_comparison.json", float(n_chain) / float(n_reference))
quality = json.loads(open("chain/background_quality.json").read())["chi2_ndf"]
quality = "- (no bin with enough events)" if quality is None else f"{quality:.2f}"
print(
    f"\nThe chain's own sample ({int(n_chain):,} showers, seed 0, obs_id 5): G/H-cut survivors"
    f" {chain['survivors']:.1f} against {chain['expected']:.1f} expected"
    f" ({chain['sigma']:+.1f} sigma); quality cuts chi2/ndf {quality}"
)
EOF
log "done: $(pwd)/summary.md; the chain's own comparison in $(pwd)/chain/background_comparison.*"
