# One generated sample of a model in the model card's protocol, without the IRF chain:
# 1,000,000 showers (DDIM STEPS, 20 by default; up to 10 redraws; seed SEED, obs_id 300 + SEED) against toy
# run 201 (REFERENCE).
# usage: REFERENCE=<toy_201.dl1.h5> SEED=7 [STEPS=20] bash evaluate.sh NAME MODEL [GENERATE OPTIONS]
#        (STEPS=4 for a 4-step student; e.g. --no-refine for the bundled default's plain student)
set -euo pipefail
name=$1 model=$2
shift 2
seed=${SEED:-7}
if [ ! -e "${name}_s$seed.dl1.h5" ]; then
  ctapipe-genshower-generate --model "$model" -o "${name}_s$seed.dl1.h5" --n-showers 1000000 \
    --seed "$seed" --obs-id $((300 + seed)) --n-steps "${STEPS:-20}" --no-progress "$@" > "${name}_s$seed.gen.log" 2>&1
fi
if [ ! -e "report_${name}_s$seed/metrics.json" ]; then
  ctapipe-genshower-validate --generated "${name}_s$seed.dl1.h5" --reference "${REFERENCE:?toy run 201}" \
    -o "report_${name}_s$seed" --no-progress --overwrite > "${name}_s$seed.val.log" 2>&1
fi
