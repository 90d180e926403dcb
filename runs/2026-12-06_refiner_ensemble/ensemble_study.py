"""Does averaging several refiner classifiers steady the ratio's tails?

Holds out a test quarter of the pairs (``emulation.held_out``: the split of v14's fit), fits
``K`` classifiers with v14's settings and seeds 0..K-1 on the other three quarters (each with
its own early-stopping quarter), and compares on the test quarter one classifier (seed 0)
with the mean of the calibrated log-ratios of 3 and of 5: balanced cross-entropy, and the
emulated W1 / floor of every parameter (``emulation.py``) at the caps 0.99 and 0.995.

    python ensemble_study.py MODEL PAIRS [PAIRS ...]
"""

import sys
import time

import numpy as np
from emulation import group_weights, w1
from fit_study import classifier_options
from safetensors.numpy import load_file

from ctapipe_genshower.generator import ShowerGenerator
from ctapipe_genshower.refine import pair_columns
from ctapipe_genshower.training.density_ratio import balanced_cross_entropy, fit_density_ratio

K = 5


def main(model, *pairs_files):
    base = ShowerGenerator.from_file(model).refiner
    options = classifier_options(base)
    columns = pair_columns(base.features)
    sims, gens, partners = [], [], []
    for path in pairs_files:
        f = load_file(path)
        lookup = {row[-5:].tobytes(): row[0] for row in f["simulated"]}
        partners.append(np.array([lookup.get(r[-5:].tobytes(), np.nan) for r in f["generated"]]))
        sims.append(f["simulated"][:, columns])
        gens.append(f["generated"][:, columns])
    simulated, generated, partner = map(np.concatenate, (sims, gens, partners))
    rng = np.random.default_rng(0)
    order_s, order_g = rng.permutation(len(simulated)), rng.permutation(len(generated))
    n_s, n_g = round(0.25 * len(simulated)), round(0.25 * len(generated))
    sim_test, sim_rest = simulated[order_s[:n_s]], simulated[order_s[n_s:]]
    gen_test, gen_rest = generated[order_g[:n_g]], generated[order_g[n_g:]]
    groups = np.floor(partner[order_g[:n_g]] / 0.05).astype(int)
    names = [name for name, _ in base.features]
    half = len(sim_test) // 2
    floor = [w1(sim_test[:half, k], sim_test[half:, k]) for k in range(len(names))]

    members = []
    for seed in range(K):
        start = time.perf_counter()
        refiner = fit_density_ratio(
            sim_rest, gen_rest, features=base.features, **{**options, "seed": seed}
        )
        members.append(
            (refiner.log_ratio_of_features(sim_test), refiner.log_ratio_of_features(gen_test))
        )
        print(
            f"member {seed}: own held-out loss {refiner.info['validation_loss_calibrated']:.4f},"
            f" test loss {balanced_cross_entropy(*members[-1]):.4f}"
            f" ({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
    arms = {"one (seed 0)": members[:1], "mean of 3": members[:3], f"mean of {K}": members}
    results = {}
    for tag, chosen in arms.items():
        log_r_sim = np.mean([m[0] for m in chosen], axis=0)
        log_r_gen = np.mean([m[1] for m in chosen], axis=0)
        for q in (0.99, 0.995):
            log_cap = np.quantile(log_r_gen, q)
            weights, draws = group_weights(np.exp(log_r_gen), groups, "rejection", log_cap)
            ratios = [
                w1(sim_test[:, k], gen_test[:, k], weights) / floor[k] for k in range(len(names))
            ]
            results[f"{tag}, q{q}"] = (balanced_cross_entropy(log_r_sim, log_r_gen), draws, ratios)
    print(f"\n{'':30s}" + "".join(f"{tag:>20s}" for tag in results))
    print(f"{'test loss':30s}" + "".join(f"{r[0]:20.4f}" for r in results.values()))
    print(f"{'refiner draws per event':30s}" + "".join(f"{r[1]:20.2f}" for r in results.values()))
    for k, name in enumerate(names):
        label = name + ":" + base.features[k][1]
        print(f"{label:30s}" + "".join(f"{r[2][k]:20.2f}" for r in results.values()))
    above = {tag: sum(x > 2 for x in r[2]) for tag, r in results.items()}
    print(f"{'columns above 2':30s}" + "".join(f"{n:20d}" for n in above.values()))


if __name__ == "__main__":
    main(*sys.argv[1:])
