"""Rejection with a capped ratio, then independence-Metropolis steps: emulated on image pairs.

The generator keeps a draw for a shower with probability ``min(r, r_max) / r_max`` and
redraws otherwise, so its output for one shower is ``p(x) min(r, r_max)``: the cap clips the
ratio where the student is furthest from the simulation. An independence-Metropolis step
(propose a fresh draw ``x'`` for the same shower and size, move with probability
``min(1, r(x') / r(x))``) leaves ``p(x) r(x)`` invariant and brings any start closer to it;
started from the rejection's output it costs one draw per event per step.

Emulation: the held-out quarter of the refiner's generated pair images (the fit's split),
grouped by their simulated partner's ``hillas_intensity`` (a proxy for one shower's draws at
one size: 0.05 in log10); each group's output mass is its number of images (every shower
gives one event). Printed: refiner draws per event, W1 / floor against the held-out simulated images
(floor: two halves of them), and the island count per intensity bin.

    python emulation.py MODEL PAIRS [PAIRS ...]
"""

import sys

import numpy as np
from safetensors.numpy import load_file
from scipy.stats import wasserstein_distance

from ctapipe_genshower.generator import ShowerGenerator
from ctapipe_genshower.refine import pair_columns

INTENSITY_BINS = [(2.39, 2.5), (2.5, 2.7), (2.7, 3.0), (3.0, 3.5), (3.5, 5.0)]


def held_out(pairs_files, columns):
    """Held-out quarters (the fit's split), and each generated row's partner intensity."""
    sims, gens, partners = [], [], []
    for path in pairs_files:
        f = load_file(path)
        sim, gen = f["simulated"], f["generated"]
        # a generated row carries its simulated partner's conditions (the last 5 columns)
        lookup = {row[-5:].tobytes(): row[0] for row in sim}
        partners.append(np.array([lookup.get(row[-5:].tobytes(), np.nan) for row in gen]))
        sims.append(sim)
        gens.append(gen)
    sim, gen, partner = map(np.concatenate, (sims, gens, partners))
    rng = np.random.default_rng(0)  # fit_density_ratio's split: simulated, then generated
    order = rng.permutation(len(sim))
    sim = sim[order[: round(0.25 * len(sim))]]
    order = rng.permutation(len(gen))
    keep = order[: round(0.25 * len(gen))]
    return sim[:, columns], gen[keep][:, columns], partner[keep]


def metropolis_step(weights, ratio):
    """One independence-Metropolis step on a pool with uniform proposals.

    ``weights``: the chain's distribution over the pool; ``ratio``: the target's ratio
    ``r`` (target ``~ r`` on the pool). Returns the distribution after the step.
    """
    n = len(ratio)
    order = np.argsort(ratio)
    r, w = ratio[order], weights[order]
    # into j: sum_i w_i min(1, r_j / r_i) = sum_{r_i <= r_j} w_i + r_j sum_{r_i > r_j} w_i / r_i
    below = np.cumsum(w)
    above = np.cumsum((w / r)[::-1])[::-1]
    above = np.append(above[1:], 0.0)
    inflow = (below + r * above) / n
    # staying at j: 1 - mean_l min(1, r_l / r_j)
    accept = (np.cumsum(r) / r + (n - np.arange(1, n + 1))) / n
    out = np.empty(n)
    out[order] = inflow + w * (1.0 - accept)
    return out


def group_weights(ratio, groups, scheme, log_cap, steps=0, target_cap=None):
    """Output weight of each pool image: every group's weights sum to its size."""
    out = np.zeros(len(ratio))
    cap = np.exp(log_cap)
    target = ratio if target_cap is None else np.minimum(ratio, np.exp(target_cap))
    for g in np.unique(groups):
        m = groups == g
        kept = np.minimum(ratio[m], cap) / cap
        w = kept / kept.sum()
        if scheme == "uncapped":
            w = ratio[m] / ratio[m].sum()
        for _ in range(steps):
            w = metropolis_step(w, target[m])
        out[m] = w * m.sum()
    # refiner draws per event: 1 / the pool's acceptance (the run's figure), plus the steps
    return out, cap / np.minimum(ratio, cap).mean() + steps


def w1(a, b, weights=None):
    ok_a, ok_b = np.isfinite(a), np.isfinite(b)
    return wasserstein_distance(
        a[ok_a], b[ok_b], v_weights=None if weights is None else weights[ok_b]
    )


def main(model, *pairs_files):
    refiner = ShowerGenerator.from_file(model).refiner
    names = [name for name, _ in refiner.features]
    sim, gen, partner = held_out(pairs_files, pair_columns(refiner.features))
    ok = np.isfinite(partner)
    gen, partner = gen[ok], partner[ok]
    groups = np.floor(partner / 0.05).astype(int)
    ratio = np.exp(refiner.log_ratio_of_features(gen))
    log_r = np.log(ratio)
    print(f"held-out: {len(sim)} simulated, {len(gen)} generated ({(~ok).sum()} unmatched)")
    print(f"cap: log r_max {refiner.log_cap:.3f} (quantile {refiner.cap_quantile})")
    half = len(sim) // 2
    floor = [w1(sim[:half, k], sim[half:, k]) for k in range(len(names))]
    cap995 = np.quantile(log_r, 0.995)
    cap999 = np.quantile(log_r, 0.999)
    schemes = {
        "student": (np.ones(len(gen)), 1.0),
        "rejection": group_weights(ratio, groups, "rejection", refiner.log_cap),
        "rej. q0.995": group_weights(ratio, groups, "rejection", cap995),
        "+1 MH": group_weights(ratio, groups, "rejection", refiner.log_cap, 1),
        "+2 MH": group_weights(ratio, groups, "rejection", refiner.log_cap, 2),
        "+1 MH q0.999": group_weights(ratio, groups, "rejection", refiner.log_cap, 1, cap999),
        "+2 MH q0.999": group_weights(ratio, groups, "rejection", refiner.log_cap, 2, cap999),
        "uncapped": group_weights(ratio, groups, "uncapped", refiner.log_cap),
    }
    print(f"{'':30s}" + "".join(f"{tag:>14s}" for tag in schemes))
    print(f"{'draws per event':30s}" + "".join(f"{d:14.2f}" for _, d in schemes.values()))
    for k, name in enumerate(names):
        cells = [w1(sim[:, k], gen[:, k], w) / floor[k] for w, _ in schemes.values()]
        print(f"{name + ':' + refiner.features[k][1]:30s}" + "".join(f"{c:14.2f}" for c in cells))
    islands = names.index("morphology_n_islands")
    tdev = names.index("timing_deviation")
    for j, label in ((islands, "islands"), (tdev, "timing_deviation")):
        print(f"\nmean {label} per log10 hillas_intensity bin: simulated, then each scheme")
        for lo, hi in INTENSITY_BINS:
            s = (sim[:, 0] >= lo) & (sim[:, 0] < hi)
            g = (gen[:, 0] >= lo) & (gen[:, 0] < hi)
            cells = [np.average(gen[g, j], weights=w[g]) for w, _ in schemes.values()]
            print(
                f"[{lo:.2f}, {hi:.2f}) {sim[s, j].mean():8.3f}      "
                + "".join(f"{c:14.3f}" for c in cells)
            )


if __name__ == "__main__":
    main(*sys.argv[1:])
