"""The refiner's image pairs of the v4 refit (same model, training file, 20,000 images, seed 0)
saved for ``fit_search.py``; run in the directory that holds ``train8.training.safetensors``."""

import numpy as np

from ctapipe_genshower.generator import ShowerGenerator
from ctapipe_genshower.refine import paired_features

MODEL = "../2026-12-04_asinh/student4_asinh_linear.safetensors"  # adjust to where it lies

generator = ShowerGenerator.from_file(MODEL)
sim, gen, stats = paired_features(
    generator, "train8.training.safetensors", 20000, seed=0, max_redraws=10, n_steps=4
)
np.savez("pairs_seed0_20000.npz", simulated=sim, generated=gen)
print(stats)
