"""Per-shower raking: factor bound, iterations, draws per shower in the fit; judged with the
first 4 and all 8 test draws of each shower (the judge's own small-K bias).

usage: python variants.py MODEL > variants.txt
"""

import sys

import numpy as np
from common import CAP_QUANTILE, FIT_K1, Judge, first_draws, load

from ctapipe_genshower.training.marginal_calibration import fit_marginal_calibration

ARMS = {
    "30 iterations, |log f| <= 3 (default)": {},
    "4 draws per shower in the fit": {"k_fit": 4},
    "|log f| <= 1": {"max_log_factor": 1.0},
    "|log f| <= 1.5": {"max_log_factor": 1.5},
    "5 iterations": {"n_iterations": 5},
    "5 iterations, |log f| <= 1": {"n_iterations": 5, "max_log_factor": 1.0},
}


def main(model):
    _, fit, test, names = load(model)
    sim = np.load(FIT_K1)["sim"]
    judge = Judge(test, len(names))
    print("| arm | test draws | acceptance | mean W1/floor | max | parameters > 1.5 |")
    print("| --- | --- | --- | --- | --- | --- |")

    def row(arm, log_r, cap):
        for k in (4, 8):
            acceptance, d = judge(log_r, cap, k)
            print(
                f"| {arm} | {k} | {acceptance:.4f} | {d.mean():.2f} | {d.max():.2f}"
                f" | {(d > 1.5).sum()} |"
            )

    row("v7", test["log_r"], np.quantile(fit["log_r"], CAP_QUANTILE))
    for arm, options in ARMS.items():
        options = dict(options)
        keep = first_draws(fit["groups"], options.pop("k_fit", 8))
        calibration = fit_marginal_calibration(
            sim,
            fit["gen"][keep],
            fit["log_r"][keep],
            range(len(names)),
            groups=fit["groups"][keep],
            cap_quantile=CAP_QUANTILE,
            **options,
        )
        cap = np.quantile(fit["log_r"] + calibration.log_factor(fit["gen"]), CAP_QUANTILE)
        row(arm, test["log_r"] + calibration.log_factor(test["gen"]), cap)


if __name__ == "__main__":
    main(sys.argv[1])
