"""Could a per-shower normaliser give back the acceptance the per-shower calibration costs?

Dividing the ratio by a function of the shower alone changes which draw is kept only
through the cap, and raises the acceptance. An oracle (each test shower's own mean ratio over
its 8 draws) bounds the gain; tables of the mean ratio in cells of the conditions (log E,
impact distance, source offset), or with the image's log10 intensity as a fourth axis, are
what a model file could hold.

usage: python acceptance.py MODEL > acceptance.txt
"""

import sys

import numpy as np
from common import CAP_QUANTILE, Judge, load

from ctapipe_genshower.training.marginal_calibration import fit_marginal_calibration

N_FEATURES = 24


def axes(x, with_intensity):
    c = x[:, N_FEATURES:]
    out = [c[:, 0], np.hypot(c[:, 1], c[:, 2]), np.hypot(c[:, 3], c[:, 4])]
    return [*out, x[:, 0]] if with_intensity else out


def cell_table(x, log_r, bins, with_intensity):
    """log of the mean ratio per cell, as a function of rows."""
    ax = axes(x, with_intensity)
    edges = [np.quantile(a, np.linspace(0, 1, n + 1)[1:-1]) for a, n in zip(ax, bins, strict=True)]

    def cell(y):
        index = [np.searchsorted(e, a) for e, a in zip(edges, axes(y, with_intensity), strict=True)]
        return np.ravel_multi_index(index, bins)

    n = np.bincount(cell(x), minlength=np.prod(bins))
    total = np.bincount(cell(x), weights=np.exp(log_r), minlength=np.prod(bins))
    table = np.log(np.where(n > 0, total / np.maximum(n, 1), 1.0))
    return lambda y: table[cell(y)]


def main(model):
    refiner, fit, test, names = load(model)
    judge = Judge(test, len(names))
    calibration = fit_marginal_calibration(
        fit["sim"], fit["gen"], fit["log_r"], range(len(names)), groups=fit["groups"]
    )
    print("| ratio | normaliser | acceptance | mean W1/floor | max |")
    print("| --- | --- | --- | --- | --- |")
    for arm, cal in (("v7", None), ("v9 (per shower)", calibration)):

        def log_ratio(x, cal=cal):
            out = refiner.temperature * refiner.logits_of_features(x)
            return out + (cal.log_factor(x) if cal is not None else 0)

        lr_fit, lr_test = log_ratio(fit["gen"]), log_ratio(test["gen"])
        groups = test["groups"]
        own = np.log(np.bincount(groups, weights=np.exp(lr_test)) / np.bincount(groups))[groups]
        rows = {"none": (lr_test, lr_fit), "oracle: the shower's own mean": (lr_test - own, None)}
        for bins, with_intensity in (((10, 8, 5), False), ((6, 6, 4, 6), True)):
            table = cell_table(fit["gen"], lr_fit, bins, with_intensity)
            label = f"cells {bins}" + (" incl. intensity" if with_intensity else "")
            rows[label] = (lr_test - table(test["gen"]), lr_fit - table(fit["gen"]))
        for label, (lr, lr_cap) in rows.items():
            cap = np.quantile(lr if lr_cap is None else lr_cap, CAP_QUANTILE)
            acceptance, d = judge(lr, cap)
            print(f"| {arm} | {label} | {acceptance:.4f} | {d.mean():.2f} | {d.max():.2f} |")


if __name__ == "__main__":
    main(sys.argv[1])
