"""Which parameters the refiner moves: simulated vs generated vs kept, on the training showers.

Input: the paired sample of ``paired_sample.py`` (student4 images for the 34,796 showers of the
training file, seeds 1e6 + index, and all ctapipe parameters of both; independent of the
refiner's own fit sample). Prints mean and W1 / floor (floor: the two halves of the simulated
sample) for every parameter, before and after the refiner's rejection.

    python paired_sample.py student4.safetensors pairs.npz 40000 train8.training.safetensors
    python diagnose_pairs.py pairs.npz student4_refined.safetensors > diagnose_pairs.txt
"""

import sys

import numpy as np
from scipy.stats import wasserstein_distance as w1

from ctapipe_genshower.checkpoint import load_generator_modules

pairs, model = sys.argv[1], sys.argv[2]
refiner = load_generator_modules(model).refiner
d = np.load(pairs)
cond = d["conditions"]
real = {k[5:]: d[k] for k in d if k.startswith("real_")}
gen = {k[4:]: d[k] for k in d if k.startswith("gen_")}
p = refiner.acceptance(gen, cond)
keep = np.random.default_rng(0).uniform(size=len(p)) < p
print(f"kept {keep.sum()} of {len(p)} (mean acceptance {p.mean():.3f})")
half = len(cond) // 2
for k in sorted(real):
    a, b, c = real[k], gen[k], gen[k][keep]
    if np.isfinite(a).mean() < 0.5:
        continue

    def f(x):
        return x[np.isfinite(x)]

    floor = w1(f(a[:half]), f(a[half:]))
    print(
        f"{k:34s} simulated {np.nanmean(a):9.3f} generated {np.nanmean(b):9.3f}"
        f" kept {np.nanmean(c):9.3f}   W1/floor generated {w1(f(a), f(b)) / floor:6.1f}"
        f" kept {w1(f(a), f(c)) / floor:6.1f}"
    )
