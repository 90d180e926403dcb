"""Is the refiner's classifier over-confident? Its temperature on held-out image pairs.

``python temperature_on_v4_pairs.py pairs_seed0_20000.npz`` (the pairs of the v4 refit, made
by ``../2026-12-04_refined_v5/pairs.py``): the v5 classifier settings are fitted, without
calibration, on 80 % of each sample; on the other 20 % (never seen by the fit) the balanced
cross-entropy is scanned against the temperature, and the acceptance at three caps is
compared at temperature 1 and at the best one.
"""

import sys

import numpy as np
import torch

from ctapipe_genshower.training.density_ratio import fit_density_ratio, fit_temperature


def main(pairs):
    torch.set_num_threads(1)
    data = np.load(pairs)
    rng = np.random.default_rng(123)

    def split(x):
        order = rng.permutation(len(x))
        n = len(x) // 5
        return x[order[n:]], x[order[:n]]

    sim, sim_test = split(data["simulated"])
    gen, gen_test = split(data["generated"])
    ratio = fit_density_ratio(
        sim, gen, seed=0, depth=4, weight_decay=0.1, batch_size=256, calibrate=False
    )
    a, b = ratio.logits_of_features(sim_test), ratio.logits_of_features(gen_test)

    def bce(t):
        return 0.5 * np.mean(np.logaddexp(0, -t * a)) + 0.5 * np.mean(np.logaddexp(0, t * b))

    best = fit_temperature(a, b)
    print(f"held-out rows: {len(a)} simulated, {len(b)} generated")
    for t in (0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1):
        print(f"T = {t:.1f}: held-out cross-entropy {bce(t):.4f}")
    print(f"fitted T = {best:.3f}: {bce(best):.4f}")
    for t in (1.0, best):
        for q in (0.9, 0.98, 0.99):
            log_cap = np.quantile(t * b, q)
            acceptance = np.mean(np.exp(np.minimum(t * b - log_cap, 0)))
            print(f"T = {t:.3f}, cap quantile {q}: acceptance {acceptance:.4f}")


if __name__ == "__main__":
    main(sys.argv[1])
