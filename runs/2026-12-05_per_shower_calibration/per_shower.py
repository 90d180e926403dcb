"""v7, v7 + globally raked calibration, v7 + calibration raked per shower (8 draws each).

usage: python per_shower.py MODEL > per_shower.txt
"""

import sys

import numpy as np
from common import CAP_QUANTILE, FIT_K1, Judge, load

from ctapipe_genshower.training.marginal_calibration import fit_marginal_calibration


def main(model):
    refiner, fit, test, names = load(model)
    columns = range(len(refiner.features))
    sim_k1 = np.load(FIT_K1)["sim"]
    arms = {"v7": (test["log_r"], np.quantile(fit["log_r"], CAP_QUANTILE))}
    fits = {
        "global (8 draws)": (fit["sim"], None),
        "per shower (8 draws) = v9": (fit["sim"], fit["groups"]),
        "per shower, simulated side 26k": (sim_k1, fit["groups"]),
    }
    for arm, (sim, groups) in fits.items():
        calibration = fit_marginal_calibration(
            sim, fit["gen"], fit["log_r"], columns, groups=groups, cap_quantile=CAP_QUANTILE
        )
        info = calibration.info
        print(
            f"# {arm}: worst |log(h_sim/h_kept)| {info['worst_log_mismatch_before']:.2f}"
            f" -> {info['worst_log_mismatch_after']:.2f}"
        )
        cap = np.quantile(fit["log_r"] + calibration.log_factor(fit["gen"]), CAP_QUANTILE)
        arms[arm] = (test["log_r"] + calibration.log_factor(test["gen"]), cap)
    judge = Judge(test, len(names))
    results = {"unweighted": judge(np.zeros(len(test["gen"])), 0.0)}
    results.update({arm: judge(*a) for arm, a in arms.items()})
    print()
    print("| parameter | " + " | ".join(results) + " |")
    print("| --- " * (len(results) + 1) + "|")
    print("| expected acceptance | " + " | ".join(f"{a:.4f}" for a, _ in results.values()) + " |")
    for j, name in enumerate(names):
        print(f"| {name} | " + " | ".join(f"{d[j]:.2f}" for _, d in results.values()) + " |")
    print("| **mean** | " + " | ".join(f"**{d.mean():.2f}**" for _, d in results.values()) + " |")
    print("| **max** | " + " | ".join(f"**{d.max():.2f}**" for _, d in results.values()) + " |")


if __name__ == "__main__":
    main(sys.argv[1])
