"""Would a cap of the refiner's ratio per shower (instead of one global cap) need fewer draws?

Rejection among the draws of one shower is exact for any cap M(c) >= max_x r(x, c), so a cap
that follows the shower's conditions c (and size) could accept more where the model is
already close. This estimates M(c) as a quantile of log r given (c, size) with gradient-boosted
quantile regression on half of the generated images of a pairs file, and the draws per shower
it would cost on the other half, against the global cap at the same share of clipped draws.

    python per_shower_cap.py MODEL PAIRS
"""

import sys

import numpy as np
from safetensors.numpy import load_file
from sklearn.ensemble import HistGradientBoostingRegressor

from ctapipe_genshower.generator import ShowerGenerator
from ctapipe_genshower.refine import pair_columns

N_GROUPS = 20  # groups of showers of similar cap, to average 1 / acceptance


def draws_per_shower(log_r, log_cap):
    """Mean over showers of 1 / acceptance, the acceptance averaged in groups of like cap."""
    acceptance = np.exp(np.minimum(log_r - log_cap, 0.0))
    if np.ptp(log_cap) == 0:  # one cap for all: one group
        return float(1 / acceptance.mean()), float(acceptance.mean())
    edges = np.quantile(log_cap, np.linspace(0, 1, N_GROUPS + 1)[1:-1])
    group = np.digitize(log_cap, edges)
    share = np.array([np.mean(group == k) for k in range(N_GROUPS)])
    mean_acceptance = np.array([acceptance[group == k].mean() for k in range(N_GROUPS)])
    return float(np.sum(share / mean_acceptance)), float(acceptance.mean())


def main(model, pairs):
    refiner = ShowerGenerator.from_file(model).refiner
    generated = load_file(pairs)["generated"]
    log_r = refiner.log_ratio_of_features(generated[:, pair_columns(refiner.features)])
    x = np.column_stack([generated[:, -5:], generated[:, 0]])  # conditions, log10 size
    order = np.random.default_rng(1).permutation(len(x))
    fit, test = order[: len(x) // 2], order[len(x) // 2 :]
    print(f"{len(x)} generated images; the refiner's global cap log r_max = {refiner.log_cap:.3f}")
    clipped = np.mean(log_r[test] > refiner.log_cap)
    draws, acceptance = draws_per_shower(log_r[test], np.full(len(test), refiner.log_cap))
    print(
        f"global cap: clipped {clipped:.4f}, acceptance {acceptance:.4f},"
        f" draws per shower {draws:.1f}"
    )
    for quantile in (0.95, 0.98, 0.99, 0.995):
        regression = HistGradientBoostingRegressor(
            loss="quantile",
            quantile=quantile,
            max_iter=200,
            max_leaf_nodes=15,
            min_samples_leaf=200,
            random_state=0,
        ).fit(x[fit], log_r[fit])
        log_cap = regression.predict(x[test])
        draws, acceptance = draws_per_shower(log_r[test], log_cap)
        spread = np.quantile(log_cap, [0.1, 0.5, 0.9])
        print(
            f"cap per shower at quantile {quantile}: clipped"
            f" {np.mean(log_r[test] > log_cap):.4f}, acceptance {acceptance:.4f}, draws per"
            f" shower {draws:.1f}; log cap q10/q50/q90 {spread[0]:.2f} / {spread[1]:.2f} /"
            f" {spread[2]:.2f}"
        )


if __name__ == "__main__":
    main(*sys.argv[1:3])
