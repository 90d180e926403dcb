# One generated sample of a model in the model card's protocol, without the chain's own sample:
# 1,000,000 showers (by default seed 7, obs_id 301) against toy run 201, and the IRF chain's
# reconstructors and cuts (made by examples/validate_model.sh in CHAIN_WORK) on it.
# usage: CHAIN_WORK=<a validate_model.sh directory> [SEED=7 OBS_ID=301] bash evaluate.sh NAME MODEL
#        [GENERATE OPTIONS]   (SEED, OBS_ID: another generated sample, e.g. 8 and 302)
set -euo pipefail
name=$1 model=$2
shift 2
EXAMPLES=$(cd "$(dirname "$0")/../../examples" && pwd)
W=${CHAIN_WORK:?a validate_model.sh work directory (toy_201.dl1.h5, chain/)}
if [ ! -e "$name.dl1.h5" ]; then
  ctapipe-genshower-generate --model "$model" -o "$name.dl1.h5" --n-showers 1000000 \
    --seed "${SEED:-7}" --obs-id "${OBS_ID:-301}" --no-progress "$@" > "$name.gen.log" 2>&1
fi
if [ ! -e "report_$name/metrics.json" ]; then
  ctapipe-genshower-validate --generated "$name.dl1.h5" --reference "$W/toy_201.dl1.h5" \
    -o "report_$name" --no-progress --overwrite > "$name.val.log" 2>&1
fi
if [ ! -e "$name.dl2.h5" ]; then
  ctapipe-apply-models --input "$name.dl1.h5" --output "$name.dl2.h5" \
    --reconstructor "$W/chain/energy.pkl" --reconstructor "$W/chain/disp.pkl" \
    --reconstructor "$W/chain/classifier.pkl" --no-progress > "$name.dl2.log" 2>&1
fi
for cuts in gh quality; do
  [ -e "background_${name}_$cuts.json" ] && continue
  extra=(--cuts "$W/chain/cuts.fits")
  [ $cuts = quality ] && extra=()
  ctapipe-genshower-background --input "$name.dl2.h5" --reference "$W/chain/proton_test.dl2.h5" \
    "${extra[@]}" --config "$EXAMPLES/irf/irf_mono.yaml" \
    --config "$EXAMPLES/irf/background_compare.yaml" --output "background_${name}_$cuts.fits" \
    --summary "background_${name}_$cuts.json" --overwrite --no-progress >> "$name.dl2.log" 2>&1
done
