# The two-hour model's refiner refitted on 24 toy runs: the 16 training runs (their pairs
# file from ../2026-12-06_two_hour_recipe/, read as it is) and runs 117-124 (pairs made here).
# usage: [WORKDIR=.] bash train.sh   (WORKDIR holds train16.train.safetensors,
#        r2h_student4.safetensors and r2h_pairs16.safetensors of the two-hour run)
set -e
cd "${WORKDIR:-.}"
EXAMPLES="$(dirname "$(readlink -f "$0")")/../../examples"
for i in $(seq 117 124); do
  [ -e "run_$i.dl1.h5" ] || ctapipe-process -i "$EXAMPLES/protons.toymc.yaml" \
      -o "run_$i.dl1.h5" --write-images --write-parameters \
      --ToyShowerEventSource.n_showers=2500000 --ToyShowerEventSource.seed="$i" \
      --ToyShowerEventSource.obs_id="$i"
done
[ -e train8b.training.safetensors ] || ctapipe-genshower-train -i run_1{17..24}.dl1.h5 \
    --prepare-only --prepared-file train8b.training.safetensors -o unused.safetensors
if [ ! -e r2h24_refined.safetensors ]; then
  /usr/bin/time -v ctapipe-genshower-refine --model r2h_student4.safetensors \
      --input train16.train.safetensors --pairs r2h_pairs16.safetensors \
      --input train8b.training.safetensors --pairs r2h_pairs8b.safetensors --bf16 \
      --marginals --marginal-parameters=timing_deviation \
      --marginal-parameters=morphology_n_islands \
      --no-progress -o r2h24_refined.safetensors > r2h24_refined.log 2>&1
fi
