#!/usr/bin/env bash
# CHAIN=DIR gh_tail.sh NAME GEN_DL1: the reconstructors of an examples/irf_chain.sh work
# directory DIR (the chain is deterministic: a chain rebuilt from the same DL1 files gives the
# same models and cuts) applied to a generated DL1 file (here the 1,000,000-shower validation
# files), then the
# background comparison after the chain's G/H and quality cuts against DIR/proton_test.dl2.h5
# (toy run 201) -> NAME.dl2.h5, NAME.json; and with the quality cuts only -> NAME.quality.json.
# Writes into the current directory.
set -euo pipefail
M=${CHAIN:?set CHAIN to an irf_chain.sh work directory}
C=$(cd "$(dirname "$0")/../../examples/irf" && pwd)
ctapipe-apply-models --input "$2" --output "$1.dl2.h5" --reconstructor "$M/energy.pkl" \
    --reconstructor "$M/disp.pkl" --reconstructor "$M/classifier.pkl" --no-progress --overwrite
for cuts in gh quality; do
    CUTS=(--cuts "$M/cuts.fits"); OUT=$1
    if [[ $cuts == quality ]]; then CUTS=(); OUT=$1.quality; fi
    ctapipe-genshower-background --input "$1.dl2.h5" --reference "$M/proton_test.dl2.h5" "${CUTS[@]}" \
        --config "$C/irf_mono.yaml" --config "$C/background_compare.yaml" \
        --output "$OUT.fits" --summary "$OUT.json" \
        --overwrite --no-progress
done
