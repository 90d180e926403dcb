"""Does a marginal calibration on top of the v7 refiner bring the kept tails to the simulation's?

The v7 default keeps four parameters above twice their W1 floor; its refiner removes 26-59 %
of their W1 distance (``../2026-12-05_tail_features/``). Here the refiner's ratio is multiplied
by per-parameter factors fitted by raking (``ctapipe_genshower.training.marginal_calibration``)
on fresh pairs of the training file's showers, and judged on pairs of two toy runs no model
has seen (``run_117``, ``run_118``).

* fit pairs: ``N_FIT`` images of the 16-run training file (seed 11), one generated image each
  (the default's student, no refiner, the image's own size; the refine tool's pairs)
* test pairs: all selected images of the test training file (seed 12)
* per feature: W1 of the test generated images to the test simulated images, unweighted,
  weighted as v7 keeps them (``min(r, r_max)``), and as v7 + calibration keeps them; the
  simulated images' two halves for scale; the expected acceptance.

usage: python marginals.py MODEL TRAIN_FILE TEST_FILE OUT_DIR > marginals.txt
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
from ctapipe_genshower.training.marginal_calibration import fit_marginal_calibration

N_FIT = int(os.environ.get("N_FIT", 16000))


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


def main(model, train_file, test_file, out_dir):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    generator = ShowerGenerator.from_file(model, device="cpu")
    refiner = generator.refiner
    sim_f, gen_f = pairs(generator, train_file, N_FIT, 11, out / "pairs_fit.npz")
    sim_t, gen_t = pairs(generator, test_file, None, 12, out / "pairs_test.npz")
    names = [name + ("" if t in ("linear", "log10") else f" ({t})") for name, t in refiner.features]
    columns = list(range(len(refiner.features)))

    t0 = time.perf_counter()
    lr_f = refiner.log_ratio_of_features(gen_f)
    calibration = fit_marginal_calibration(sim_f, gen_f, lr_f, columns)
    print(f"# raking: {time.perf_counter() - t0:.1f} s, {calibration.info}")
    lr_t = refiner.log_ratio_of_features(gen_t)
    w_v7 = capped(lr_t, refiner.log_cap)
    lr_c_fit = lr_f + calibration.log_factor(gen_f)
    cap_c = np.quantile(lr_c_fit, 0.99)
    w_c = capped(lr_t + calibration.log_factor(gen_t), cap_c)
    print(f"# test pairs {len(sim_t)} / {len(gen_t)}")
    print(f"# expected acceptance (test images): v7 {w_v7.mean():.4f}, calibrated {w_c.mean():.4f}")
    print()
    print("| feature | sim halves | generated | kept by v7 | kept by v7 + calibration |")
    print("| --- | --- | --- | --- | --- |")
    for j, name in enumerate(names):
        s, g = sim_t[:, j], gen_t[:, j]
        ok_s, ok_g = np.isfinite(s), np.isfinite(g)
        s = s[ok_s]
        scale = wasserstein_distance(s[::2], s[1::2])
        d = [wasserstein_distance(s, g[ok_g], v_weights=w) for w in (None, w_v7[ok_g], w_c[ok_g])]
        print(f"| {name} | {scale:.4g} | {d[0]:.4g} | {d[1]:.4g} | {d[2]:.4g} |")
    (out / "calibration.json").write_text(json.dumps(calibration.to_metadata()))


if __name__ == "__main__":
    main(*sys.argv[1:5])
