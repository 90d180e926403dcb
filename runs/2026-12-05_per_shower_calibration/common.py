"""What the studies here share: the pairs, the v7 refiner's ratio, the judge.

The judge emulates refined generation on the test pairs (runs 117-118, 2000 showers, 8 draws
each at the simulated image's size): each draw weighted by ``min(r', r'_max)`` and the
weights of a shower renormalised to one (the generator redraws a shower until one draw is
kept), using the first ``k_test`` draws of each shower. W1 of each parameter to the test
simulated images, in units of the W1 between two random halves of them.
"""

import numpy as np
from scipy.stats import wasserstein_distance

from ctapipe_genshower.generator import ShowerGenerator
from ctapipe_genshower.training.marginal_calibration import kept_weights

FIT, TEST = "fit_k8.npz", "test_k8.npz"
#: The one-draw fit pairs of ../2026-12-05_marginal_calibration (runs 119-124, 26,080 images)
FIT_K1 = "pairs_fit_k1.npz"
CAP_QUANTILE = 0.99


def load(model):
    refiner = ShowerGenerator.from_file(model, device="cpu").refiner
    fit, test = dict(np.load(FIT)), dict(np.load(TEST))
    for pairs in (fit, test):
        pairs["log_r"] = refiner.temperature * refiner.logits_of_features(pairs["gen"])
    names = [n + ("" if t in ("linear", "log10") else f" ({t})") for n, t in refiner.features]
    return refiner, fit, test, names


def first_draws(groups, k):
    """Mask of the first ``k`` draws of each shower (rows of a shower are consecutive)."""
    start = np.r_[0, np.flatnonzero(np.diff(groups)) + 1]
    rank = np.arange(len(groups)) - np.repeat(start, np.diff(np.r_[start, len(groups)]))
    return rank < k


class Judge:
    def __init__(self, test, n_columns, seed=0):
        self.test = test
        rng = np.random.default_rng(seed)
        self.floors = []
        for j in range(n_columns):
            s = test["sim"][:, j]
            s = s[np.isfinite(s)]
            halves = [rng.permutation(len(s)) for _ in range(10)]
            half = len(s) // 2
            self.floors.append(
                np.mean([wasserstein_distance(s[p[:half]], s[p[half:]]) for p in halves])
            )

    def __call__(self, log_r, log_cap, k_test=8):
        """(acceptance, W1/floor per column) of the draws weighted as generation keeps them."""
        keep = first_draws(self.test["groups"], k_test)
        gen, groups = self.test["gen"][keep], self.test["groups"][keep]
        a = np.exp(np.minimum(log_r[keep], log_cap) - log_cap)
        w = kept_weights(np.log(a), 1.0, groups)
        ratios = []
        for j, floor in enumerate(self.floors):
            s = self.test["sim"][:, j]
            ok = np.isfinite(gen[:, j])
            w1 = wasserstein_distance(s[np.isfinite(s)], gen[ok, j], v_weights=w[ok])
            ratios.append(w1 / floor)
        return float(a.mean()), np.array(ratios)
