"""Does a marginal calibration on top of the v7 refiner bring the kept tails to the simulation's?

The v7 default keeps four parameters above twice their W1 floor; its refiner removes 26-59 %
of their W1 distance (``../2026-12-05_tail_features/``). Here the refiner's ratio is multiplied
by per-parameter factors fitted by raking (``ctapipe_genshower.training.marginal_calibration``)
and judged on pairs of showers neither the classifier nor the calibration has seen.

* fit pairs: the selected images of FIT_FILE (toy runs 119-124, showers the v7 classifier
  never saw: its ratio is over-confident on new images of its own training showers, whose
  conditions it reads), seed 11, one generated image each (the default's student without its
  refiner, at the image's own size: the refine tool's pairs); ``N_FIT`` of them if set
* test pairs: the selected images of TEST_FILE (toy runs 117-118), seed 12
* per feature: W1 of the test generated images to the test simulated images, unweighted,
  weighted as v7 keeps them (``min(r, r_max)``) and as v7 + each calibration keeps them, in
  units of the W1 between the simulated images' two halves; expected acceptance and the
  effective number of kept images.

usage: python marginals.py MODEL FIT_FILE TEST_FILE OUT_DIR > marginals.txt
"""

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import wasserstein_distance

from ctapipe_genshower.generator import ShowerGenerator
from ctapipe_genshower.refine import paired_features
from ctapipe_genshower.training.marginal_calibration import (
    EDGE_QUANTILES,
    fit_marginal_calibration,
)

N_FIT = int(os.environ["N_FIT"]) if "N_FIT" in os.environ else None
#: Bin edges (quantiles of the simulated images) of the arms compared.
VARIANTS = {
    "fine": (
        *(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5),
        *(0.6, 0.7, 0.8, 0.9, 0.95, 0.975, 0.99, 0.995),
    ),
    "coarse": EDGE_QUANTILES,  # the package's default since this run
}


def pairs(generator, training_file, n, seed, cache):
    if Path(cache).exists():
        d = np.load(cache)
        return d["sim"], d["gen"]
    t0 = time.perf_counter()
    # as the refine tool draws its pairs (``--n-events N --seed S``)
    sim, gen, stats = paired_features(generator, training_file, n, seed=seed, progress=False)
    print(f"# {cache}: {len(sim)} / {len(gen)} pairs, {time.perf_counter() - t0:.0f} s, {stats}")
    np.savez(cache, sim=sim, gen=gen)
    return sim, gen


def capped(log_r, log_cap):
    return np.exp(np.minimum(log_r, log_cap) - log_cap)


def main(model, fit_file, test_file, out_dir):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    generator = ShowerGenerator.from_file(model, device="cpu")
    refiner = generator.refiner
    sim_f, gen_f = pairs(generator, fit_file, N_FIT, 11, out / "pairs_fit.npz")
    sim_t, gen_t = pairs(generator, test_file, None, 12, out / "pairs_test.npz")
    names = [name + ("" if t in ("linear", "log10") else f" ({t})") for name, t in refiner.features]
    columns = list(range(len(refiner.features)))

    lr_f = refiner.log_ratio_of_features(gen_f)
    lr_t = refiner.log_ratio_of_features(gen_t)
    arms = {"v7": capped(lr_t, refiner.log_cap)}
    for arm, quantiles in VARIANTS.items():
        t0 = time.perf_counter()
        calibration = fit_marginal_calibration(sim_f, gen_f, lr_f, columns, quantiles=quantiles)
        print(f"# {arm}: raking {time.perf_counter() - t0:.1f} s, {calibration.info}")
        cap = np.quantile(lr_f + calibration.log_factor(gen_f), 0.99)
        arms[arm] = capped(lr_t + calibration.log_factor(gen_t), cap)
        (out / f"calibration_{arm}.json").write_text(json.dumps(calibration.to_metadata()))
    print(f"# test pairs {len(sim_t)} / {len(gen_t)}")
    for arm, w in arms.items():
        ess = w.sum() ** 2 / (w**2).sum()
        print(f"# {arm}: expected acceptance {w.mean():.4f}, effective test images {ess:.0f}")
    print()
    print("W1 of the test generated images (weighted as each arm keeps them) to the test")
    print("simulated images, in units of the W1 between the simulated images' two halves:")
    print()
    print("| feature | generated | " + " | ".join(f"kept by {a}" for a in arms) + " |")
    print("| --- " * (len(arms) + 2) + "|")
    for j, name in enumerate(names):
        s, g = sim_t[:, j], gen_t[:, j]
        ok_s, ok_g = np.isfinite(s), np.isfinite(g)
        s = s[ok_s]
        scale = wasserstein_distance(s[::2], s[1::2])
        d = [wasserstein_distance(s, g[ok_g]) / scale]
        d += [wasserstein_distance(s, g[ok_g], v_weights=w[ok_g]) / scale for w in arms.values()]
        print(f"| {name} | " + " | ".join(f"{x:.2f}" for x in d) + " |")


if __name__ == "__main__":
    main(*sys.argv[1:5])
