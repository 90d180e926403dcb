"""Does the refiner see the generated images' heavy tails better with log-scaled features?

The v7 default's generated images have heavier tails than the simulation's in the four
parameters left above twice their W1 floor (95 % / 99 % quantiles of ``timing_deviation``,
``hillas_kurtosis``, ``morphology_n_islands``, ``|hillas_skewness|``), although the refiner
reads all four, as plain (standardised) values. Held-out comparison on the 4-step student
without refiner and the 16-run training file: ``N_FIT`` images (seed 0) fit, ``N_TEST``
others test, one generated image per simulated image (the refine tool's pairs). Arms, fitted
with the tool's settings (4 x 128, weight decay 0.1, batch 256, 60 epochs, calibrated, cap
quantile 0.99, seed 0):

* as v7: every feature as in ``REFINER_FEATURES``
* log tails: ``timing_deviation``, ``hillas_kurtosis`` and ``morphology_n_islands`` as log10

Scores on the test pairs: balanced cross-entropy and AUC; and the refiner's effect on the
tails: the test generated images weighted by ``min(r, r_max)`` (what rejection sampling keeps)
against the test simulated images, per parameter the 95 % / 99 % quantiles and the W1
distance, unweighted and weighted.

usage: python tail_features.py STUDENT TRAINING_FILE > tail_features.txt
"""

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.stats import wasserstein_distance
from sklearn.metrics import roc_auc_score

from ctapipe_genshower.data.training_file import TrainingFile, TrainingFileWriter
from ctapipe_genshower.generator import ShowerGenerator
from ctapipe_genshower.model.density_ratio import REFINER_FEATURES
from ctapipe_genshower.refine import paired_features
from ctapipe_genshower.training.density_ratio import fit_density_ratio

N_FIT = int(os.environ.get("N_FIT", 12000))
N_TEST = int(os.environ.get("N_TEST", 6000))
FIT = {"width": 128, "depth": 4, "weight_decay": 0.1, "batch_size": 256, "epochs": 60}
LOGGED = ("timing_deviation", "hillas_kurtosis", "morphology_n_islands")
WATCHED = ("timing_deviation", "hillas_kurtosis", "morphology_n_islands", "hillas_skewness")
INDEX = {name: i for i, (name, _) in enumerate(REFINER_FEATURES)}


def subset(source, indices, path):
    with TrainingFileWriter(path, meta=source.meta) as writer:
        for start in range(0, len(indices), 1024):
            writer.append(source.take(indices[start : start + 1024]))
    return path


def log_tails(x):
    x = x.copy()
    for name in LOGGED:
        i = INDEX[name]
        with np.errstate(divide="ignore", invalid="ignore"):
            x[:, i] = np.log10(x[:, i])
    x[~np.isfinite(x)] = np.nan
    return x


def log_tail_features():
    return tuple((n, "log10" if n in LOGGED else t) for n, t in REFINER_FEATURES)


def raw(x, name):
    v = x[:, INDEX[name]]
    return np.abs(v) if name == "hillas_skewness" else v


def weighted_quantile(v, w, q):
    order = np.argsort(v)
    cw = np.cumsum(w[order]) / w.sum()
    return np.interp(q, cw, v[order])


def main(student, training_file):
    generator = ShowerGenerator.from_file(student, device="cpu")
    source = TrainingFile(training_file)
    chosen = np.random.default_rng(0).choice(len(source), size=N_FIT + N_TEST, replace=False)
    parts = {"fit": np.sort(chosen[:N_FIT]), "test": np.sort(chosen[N_FIT:])}
    pairs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed, name in enumerate(parts, start=1):
            path = subset(source, parts[name], Path(tmp) / f"{name}.safetensors")
            t0 = time.perf_counter()
            sim, gen, _ = paired_features(generator, path, None, seed=seed, progress=False)
            pairs[name] = sim, gen
            print(
                f"# {name}: {len(sim)} simulated, {len(gen)} generated, "
                f"{time.perf_counter() - t0:.0f} s",
                flush=True,
            )
    sim_t, gen_t = pairs["test"]
    arms = {
        "as v7": (lambda x: x, REFINER_FEATURES),
        "log tails": (log_tails, log_tail_features()),
    }
    rows = []
    for name, (transform, features) in arms.items():
        sim, gen = pairs["fit"]
        refiner = fit_density_ratio(
            transform(sim), transform(gen), features=features, seed=0, **FIT
        )
        ls, lg = (
            refiner.log_ratio_of_features(transform(sim_t)),
            refiner.log_ratio_of_features(transform(gen_t)),
        )
        bce = 0.5 * np.mean(np.logaddexp(0, -ls)) + 0.5 * np.mean(np.logaddexp(0, lg))
        auc = roc_auc_score(np.r_[np.ones(len(ls)), np.zeros(len(lg))], np.r_[ls, lg])
        w = np.exp(np.minimum(lg, refiner.log_cap))
        rows.append((name, bce, auc, refiner.temperature, w))
    print("| arm | test BCE | test AUC | temperature |")
    print("| --- | --- | --- | --- |")
    for name, bce, auc, temperature, _ in rows:
        print(f"| {name} | {bce:.4f} | {auc:.3f} | {temperature:.3f} |")
    print()
    print("| parameter | sample | q95 | q99 | W1 to simulated |")
    print("| --- | --- | --- | --- | --- |")
    for p in WATCHED:
        s, g = raw(sim_t, p), raw(gen_t, p)
        ok_s, ok_g = np.isfinite(s), np.isfinite(g)
        s = s[ok_s]
        half = wasserstein_distance(s[::2], s[1::2])
        print(
            f"| {p} | simulated | {np.quantile(s, 0.95):.3f} | {np.quantile(s, 0.99):.3f} "
            f"| {half:.4f} (its halves) |"
        )
        print(
            f"| {p} | generated | {np.quantile(g[ok_g], 0.95):.3f} "
            f"| {np.quantile(g[ok_g], 0.99):.3f} "
            f"| {wasserstein_distance(s, g[ok_g]):.4f} |"
        )
        for name, *_, w in rows:
            gw, ww = g[ok_g], w[ok_g]
            print(
                f"| {p} | generated, kept by '{name}' | {weighted_quantile(gw, ww, 0.95):.3f} "
                f"| {weighted_quantile(gw, ww, 0.99):.3f} "
                f"| {wasserstein_distance(s, gw, v_weights=ww):.4f} |"
            )


if __name__ == "__main__":
    main(*sys.argv[1:3])
