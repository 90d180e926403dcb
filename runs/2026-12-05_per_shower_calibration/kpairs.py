"""K generated draws per simulated image (same shower and size), with the shower of each.

What ``ctapipe-genshower-refine --draws-per-image K --n-events N --seed S`` draws
(``paired_features(..., return_groups=True)``), cached for the studies of this directory.

usage: python kpairs.py MODEL TRAINING_FILE N K SEED OUT.npz  (also writes OUT.npz.json)
"""

import json
import sys
import time

import numpy as np

from ctapipe_genshower.generator import ShowerGenerator
from ctapipe_genshower.refine import paired_features


def main(model, training_file, n, k, seed, out):
    generator = ShowerGenerator.from_file(model, device="cpu")
    t0 = time.perf_counter()
    sim, gen, groups, stats = paired_features(
        generator, training_file, int(n), seed=int(seed), draws_per_image=int(k), return_groups=True
    )
    stats["seconds"] = time.perf_counter() - t0
    print(stats)
    np.savez(out, sim=sim, gen=gen, groups=groups)
    with open(out + ".json", "w") as f:
        json.dump(stats, f)


if __name__ == "__main__":
    main(*sys.argv[1:7])
