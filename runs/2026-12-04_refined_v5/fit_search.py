"""Refiner fit settings compared on one set of image pairs: held-out BCE and AUC.

``python fit_search.py PAIRS.npz`` (from ``pairs.py``: the pairs of the v4 refit, 20,000
training images, seed 0). An outer 20 % of each sample (seeded) is kept out of every fit,
whose own 25 % split does the early stopping; the balanced binary cross-entropy on it is a
proper score of the estimated ratio (lower is better). The three rounds ran as three scripts
with these arms; the learning curve refits on the first 25 / 50 / 75 / 100 % of the rows.
"""

import json
import sys

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from ctapipe_genshower.training.density_ratio import fit_density_ratio

ROUNDS = {
    1: {
        "default (128x3, wd 1e-4, 60 ep, lr 2e-3, batch 512)": {},
        "wd 1e-2": {"weight_decay": 1e-2},
        "wd 1e-1": {"weight_decay": 1e-1},
        "64x2": {"width": 64, "depth": 2},
        "256x3": {"width": 256, "depth": 3},
        "lr 5e-4": {"lr": 5e-4},
        "120 ep, lr 5e-4": {"lr": 5e-4, "epochs": 120},
        "batch 2048": {"batch_size": 2048},
        "256x4, wd 1e-2, batch 2048": {
            "width": 256,
            "depth": 4,
            "weight_decay": 1e-2,
            "batch_size": 2048,
        },
    },
    2: {
        "wd 1e-1, 120 ep": {"weight_decay": 1e-1, "epochs": 120},
        "256x3, wd 1e-1": {"width": 256, "weight_decay": 1e-1},
        "128x4, wd 1e-1": {"depth": 4, "weight_decay": 1e-1},
        "wd 3e-1": {"weight_decay": 3e-1},
        "wd 1e-1, batch 256": {"weight_decay": 1e-1, "batch_size": 256},
    },
    3: {
        "128x4, wd 1e-1, batch 256": {"depth": 4, "weight_decay": 1e-1, "batch_size": 256},
        "128x4, wd 1e-1 (seed 1)": {"depth": 4, "weight_decay": 1e-1, "seed": 1},
        "default (seed 1)": {"seed": 1},
    },
}


def main(pairs):
    torch.set_num_threads(2)
    data = np.load(pairs)
    rng = np.random.default_rng(123)

    def split(x):
        order = rng.permutation(len(x))
        n = len(x) // 5
        return x[order[n:]], x[order[:n]]

    sim, sim_test = split(data["simulated"])
    gen, gen_test = split(data["generated"])

    def score(ratio):
        a = ratio.log_ratio_of_features(sim_test)
        b = ratio.log_ratio_of_features(gen_test)
        bce = 0.5 * np.mean(np.logaddexp(0, -a)) + 0.5 * np.mean(np.logaddexp(0, b))
        auc = roc_auc_score(np.r_[np.ones(len(a)), np.zeros(len(b))], np.r_[a, b])
        return float(bce), float(auc)

    rows = []
    for number, arms in ROUNDS.items():
        for name, options in arms.items():
            options = {"seed": 0, **options}
            ratio = fit_density_ratio(sim, gen, **options)
            bce, auc = score(ratio)
            rows.append(
                {
                    "round": number,
                    "arm": name,
                    "options": options,
                    "test_bce": bce,
                    "test_auc": auc,
                    "best_epoch": ratio.info["best_epoch"],
                    "acceptance": ratio.info["acceptance"],
                }
            )
            print(f"{number} {name:52s} BCE {bce:.4f} AUC {auc:.4f}", flush=True)
        if number == 2:
            for fraction in (0.25, 0.5, 0.75, 1.0):
                n_sim, n_gen = int(fraction * len(sim)), int(fraction * len(gen))
                ratio = fit_density_ratio(sim[:n_sim], gen[:n_gen], seed=0, weight_decay=1e-1)
                bce, auc = score(ratio)
                rows.append(
                    {
                        "round": number,
                        "arm": f"wd 1e-1, {n_sim} pairs",
                        "test_bce": bce,
                        "test_auc": auc,
                    }
                )
                print(f"{number} wd 1e-1, {n_sim:6d} pairs {'':32s} BCE {bce:.4f} AUC {auc:.4f}")
    json.dump(rows, open("fit_search.json", "w"), indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
