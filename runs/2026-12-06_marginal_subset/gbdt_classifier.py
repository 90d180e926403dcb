"""Would gradient-boosted trees tell the pairs apart better than the refiner's MLP?

Fits scikit-learn's HistGradientBoostingClassifier (balanced classes, early stopping on 10 %
of the training rows) on the training three quarters of v13's pairs, with v13's split, and
compares the held-out balanced cross-entropy and AUC with v13's classifier.

    python gbdt_classifier.py MODEL PAIRS [PAIRS ...]
"""

import sys
import time

import numpy as np
from safetensors.numpy import load_file
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from ctapipe_genshower.generator import ShowerGenerator
from ctapipe_genshower.refine import pair_columns


def balanced_weights(n_sim, n_gen):
    return np.r_[np.full(n_sim, 0.5 / n_sim), np.full(n_gen, 0.5 / n_gen)] * (n_sim + n_gen)


def main(model, *pairs_files):
    refiner = ShowerGenerator.from_file(model).refiner
    columns = pair_columns(refiner.features)
    files = [load_file(path) for path in pairs_files]
    rng = np.random.default_rng(0)  # fit_density_ratio's split: simulated, then generated
    parts = []
    for key in ("simulated", "generated"):
        x = np.concatenate([f[key] for f in files])[:, columns]
        order = rng.permutation(len(x))
        n_val = round(0.25 * len(x))
        parts.append((x[order[n_val:]], x[order[:n_val]]))
    (sim_train, sim_val), (gen_train, gen_val) = parts
    x_train = np.r_[sim_train, gen_train]
    y_train = np.r_[np.ones(len(sim_train)), np.zeros(len(gen_train))]
    x_val = np.r_[sim_val, gen_val]
    y_val = np.r_[np.ones(len(sim_val)), np.zeros(len(gen_val))]
    w_val = balanced_weights(len(sim_val), len(gen_val))

    def report(name, logit):
        p = np.clip(1 / (1 + np.exp(-logit)), 1e-12, 1 - 1e-12)
        bce = np.mean(w_val * -(y_val * np.log(p) + (1 - y_val) * np.log(1 - p)))
        auc = roc_auc_score(y_val, logit)
        print(f"{name}: held-out balanced cross-entropy {bce:.4f}, AUC {auc:.4f}")

    report("v13 classifier (MLP 4 x 128)", refiner.log_ratio_of_features(x_val))
    for learning_rate, leaves in ((0.1, 31), (0.05, 63)):
        start = time.perf_counter()
        trees = HistGradientBoostingClassifier(
            max_iter=2000,
            learning_rate=learning_rate,
            max_leaf_nodes=leaves,
            l2_regularization=1.0,
            early_stopping=True,
            validation_fraction=0.1,
            n_iter_no_change=30,
            random_state=0,
        )
        trees.fit(x_train, y_train, sample_weight=balanced_weights(len(sim_train), len(gen_train)))
        report(
            f"gradient-boosted trees (learning rate {learning_rate}, {leaves} leaves,"
            f" {trees.n_iter_} trees, {time.perf_counter() - start:.0f} s)",
            trees.decision_function(x_val),
        )


if __name__ == "__main__":
    main(*sys.argv[1:])
