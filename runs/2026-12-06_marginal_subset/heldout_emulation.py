"""What the v13 refiner's rejection does to its own held-out image pairs.

Reads v13's pairs files, takes the classifier's held-out quarter (the split of
``fit_density_ratio``, seed 0), and weights each generated image as the rejection keeps it,
``min(r, r_max)``. Prints (1) the mean of every parameter, simulated / generated / kept,
(2) ``morphology_n_islands`` and ``timing_deviation`` per ``hillas_intensity`` bin, and
(3) W1 of every parameter in units of the simulation's own W1 (two halves), for the
classifier alone and with a marginal calibration of a few parameters fitted on one half of
the held-out pairs and evaluated on the other, and with a calibration of
``timing_deviation`` and ``morphology_n_islands`` (and of ``timing_deviation`` alone) within
``hillas_intensity`` bins (the kept share of each bin unchanged; a study, not in the
package).

    python heldout_emulation.py MODEL PAIRS [PAIRS ...]
"""

import sys

import numpy as np
from safetensors.numpy import load_file
from scipy.stats import wasserstein_distance

from ctapipe_genshower.generator import ShowerGenerator
from ctapipe_genshower.model.marginal_calibration import MarginalCalibration
from ctapipe_genshower.refine import pair_columns
from ctapipe_genshower.training.marginal_calibration import (
    EDGE_QUANTILES,
    fit_marginal_calibration,
    kept_weights,
)

SUBSETS = {
    "tdev+islands": ["timing_deviation", "morphology_n_islands"],
    "+conc_pixel": ["timing_deviation", "morphology_n_islands", "concentration_pixel"],
    "all": None,
}
INTENSITY_BINS = [(2.39, 2.5), (2.5, 2.7), (2.7, 3.0), (3.0, 3.5), (3.5, 5.0)]


def held_out(pairs_files, columns):
    files = [load_file(path) for path in pairs_files]
    simulated = np.concatenate([f["simulated"] for f in files])[:, columns]
    generated = np.concatenate([f["generated"] for f in files])[:, columns]
    rng = np.random.default_rng(0)  # fit_density_ratio's split: simulated, then generated
    out = []
    for x in (simulated, generated):
        order = rng.permutation(len(x))
        out.append(x[order[: round(0.25 * len(x))]])
    return out


def finite_mean(x, weights=None):
    ok = np.isfinite(x)
    return np.average(x[ok], weights=None if weights is None else weights[ok])


def w1(a, b, weights=None):
    ok_a, ok_b = np.isfinite(a), np.isfinite(b)
    return wasserstein_distance(
        a[ok_a], b[ok_b], v_weights=None if weights is None else weights[ok_b]
    )


def fit_within_bins(sim, gen, log_r, columns, by, by_edges, cap_quantile, n_iterations=30):
    """Raking of ``columns`` within bins of column ``by``: log factors per (bin of ``by``,
    bin of the column), each step bringing the kept histogram of the column within each bin
    of ``by`` to the simulation's, the kept weight of each bin of ``by`` unchanged.
    Returns the function giving the summed log factor of rows."""
    sim_by = MarginalCalibration.bin_index(sim[:, by], by_edges)
    gen_by = MarginalCalibration.bin_index(gen[:, by], by_edges)
    n_by = len(by_edges) + 2
    specs = []
    for column in columns:
        edges = np.unique(np.quantile(sim[np.isfinite(sim[:, column]), column], EDGE_QUANTILES))
        gen_bins = MarginalCalibration.bin_index(gen[:, column], edges)
        counts = np.zeros((n_by, len(edges) + 2))
        np.add.at(counts, (sim_by, MarginalCalibration.bin_index(sim[:, column], edges)), 1.0)
        target = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1e-300)
        specs.append((column, edges, gen_bins, target, np.zeros_like(target)))

    def total():
        return log_r + sum(factors[gen_by, bins] for _, _, bins, _, factors in specs)

    for _ in range(n_iterations):
        for _, _, bins, target, factors in specs:
            kept = np.zeros_like(target)
            np.add.at(kept, (gen_by, bins), kept_weights(total(), cap_quantile))
            kept /= np.maximum(kept.sum(axis=1, keepdims=True), 1e-300)
            step = np.zeros_like(target)
            both = (target > 0) & (kept > 0)
            step[both] = np.log(target[both] / kept[both])
            step[(target == 0) & (kept > 0)] = -3.0
            factors[:] = np.clip(factors + step, -3.0, 3.0)

    def log_factor(x):
        x_by = MarginalCalibration.bin_index(x[:, by], by_edges)
        return sum(
            factors[x_by, MarginalCalibration.bin_index(x[:, column], edges)]
            for column, edges, _, _, factors in specs
        )

    return log_factor


def main(model, *pairs_files):
    refiner = ShowerGenerator.from_file(model).refiner
    names = [name for name, _ in refiner.features]
    sim, gen = held_out(pairs_files, pair_columns(refiner.features))
    log_r = refiner.log_ratio_of_features(gen)
    kept = np.exp(np.minimum(log_r, refiner.log_cap))
    print(f"held-out pairs: {len(sim)} simulated, {len(gen)} generated")
    print("\n(1) means: simulated / generated / kept")
    for k, name in enumerate(dict.fromkeys(names)):
        k = names.index(name)
        print(
            f"{name:26s} {finite_mean(sim[:, k]):8.4f} {finite_mean(gen[:, k]):8.4f}"
            f" {finite_mean(gen[:, k], kept):8.4f}"
        )
    islands, tdev = names.index("morphology_n_islands"), names.index("timing_deviation")
    print("\n(2) per log10 hillas_intensity bin: islands, timing_deviation (sim / gen / kept)")
    for lo, hi in INTENSITY_BINS:
        s = (sim[:, 0] >= lo) & (sim[:, 0] < hi)
        g = (gen[:, 0] >= lo) & (gen[:, 0] < hi)
        cells = [
            f"{finite_mean(sim[s, j]):.3f} / {finite_mean(gen[g, j]):.3f} /"
            f" {finite_mean(gen[g, j], kept[g]):.3f}"
            for j in (islands, tdev)
        ]
        print(f"[{lo:.2f}, {hi:.2f}) n = {s.sum():5d} / {g.sum():5d}   " + "   ".join(cells))
    rng = np.random.default_rng(5)
    sim_a, sim_b = np.array_split(sim[rng.permutation(len(sim))], 2)
    gen_a, gen_b = np.array_split(gen[rng.permutation(len(gen))], 2)
    log_r_a = refiner.log_ratio_of_features(gen_a)
    log_r_b = refiner.log_ratio_of_features(gen_b)
    half = len(sim_b) // 2
    floor = [w1(sim_b[:half, k], sim_b[half:, k]) for k in range(len(names))]

    def kept_w1(log_ratio):
        cap = np.quantile(log_ratio, refiner.cap_quantile)
        weights = np.exp(np.minimum(log_ratio, cap))
        ratios = [w1(sim_b[:, k], gen_b[:, k], weights) / floor[k] for k in range(len(names))]
        return weights.mean() / np.exp(cap), ratios

    results = {"classifier": kept_w1(log_r_b)}
    for tag, parameters in SUBSETS.items():
        columns = range(len(names)) if parameters is None else [names.index(p) for p in parameters]
        calibration = fit_marginal_calibration(
            sim_a, gen_a, log_r_a, columns, cap_quantile=refiner.cap_quantile
        )
        results[tag] = kept_w1(log_r_b + calibration.log_factor(gen_b))
    for tag, columns in (("within bins", [tdev, islands]), ("tdev w. bins", [tdev])):
        within = fit_within_bins(
            sim_a,
            gen_a,
            log_r_a,
            columns,
            0,  # log10 hillas_intensity
            np.array([lo for lo, _ in INTENSITY_BINS[1:]]),
            refiner.cap_quantile,
        )
        results[tag] = kept_w1(log_r_b + within(gen_b))
    print("\n(3) W1 / floor of the kept images (held-out half B; calibrations fitted on half A)")
    print(f"{'':34s}" + "".join(f"{tag:>14s}" for tag in results))
    print(f"{'acceptance':34s}" + "".join(f"{acc:14.4f}" for acc, _ in results.values()))
    for k, name in enumerate(names):
        transform = refiner.features[k][1]
        print(
            f"{name + ':' + transform:34s}"
            + "".join(f"{ratios[k]:14.2f}" for _, ratios in results.values())
        )


if __name__ == "__main__":
    main(*sys.argv[1:])
