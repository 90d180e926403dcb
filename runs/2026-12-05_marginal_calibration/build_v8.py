"""Write v8: the v7 default with the marginal calibration fitted on cached pairs.

What ``ctapipe-genshower-refine --keep-classifier`` does (``refine.refine_model``), from the
pairs ``marginals.py`` drew and cached with the tool's function and arguments
(``paired_features(generator, FIT_FILE, None, seed=11)``), so the 11 minutes of drawing them
are not spent twice. The tool run that reproduces the file:

    ctapipe-genshower-refine --model default_model.safetensors \\
        --input fresh_119_124.training.safetensors --keep-classifier --seed 11 -o v8.safetensors

usage: python build_v8.py MODEL FIT_FILE PAIRS.npz STATS.json OUTPUT
"""

import json
import sys

import numpy as np

from ctapipe_genshower.checkpoint import save_refined
from ctapipe_genshower.generator import ShowerGenerator
from ctapipe_genshower.training.density_ratio import calibrate_marginals


def main(model, fit_file, pairs, stats, output):
    generator = ShowerGenerator.from_file(model, device="cpu")
    cached = np.load(pairs)
    stats = json.loads(open(stats).read())
    refiner = calibrate_marginals(generator.refiner, cached["sim"], cached["gen"], 0.99)
    refiner.info.update({"calibration_samples": stats, "calibration_seed": 11})
    provenance = {"training_file": fit_file.rsplit("/", 1)[-1], "n_events": stats["n_read"]}
    save_refined(model, output, refiner, provenance=provenance)
    print(refiner, refiner.info["acceptance"], refiner.info["acceptance_uncalibrated"])


if __name__ == "__main__":
    main(*sys.argv[1:6])
