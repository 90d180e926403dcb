"""Write v9n: the v7 default with a marginal calibration raked per shower (8 draws each).

``calibrate_marginals(..., groups=...)`` on the pairs ``kpairs.py`` drew and cached
(``paired_features(generator, FIT_FILE, 3000, seed=13, draws_per_image=8,
return_groups=True)``); with groups the calibration also holds the shower normalisation. The
refine tool does not do this (it rakes with global weights): in generation this model was far
worse than v7 (README.md).

usage: python build_v9.py MODEL FIT_FILE PAIRS.npz STATS.json OUTPUT
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
    stats.pop("seconds", None)
    refiner = calibrate_marginals(
        generator.refiner, cached["sim"], cached["gen"], 0.99, groups=cached["groups"]
    )
    refiner.info.update({"calibration_samples": stats, "calibration_seed": 13})
    provenance = {"training_file": fit_file.rsplit("/", 1)[-1], "n_events": stats["n_read"]}
    save_refined(model, output, refiner, provenance=provenance)
    print(refiner, refiner.info["acceptance"], refiner.info["acceptance_uncalibrated"])
    print(refiner.info["marginal_calibration"])


if __name__ == "__main__":
    main(*sys.argv[1:6])
