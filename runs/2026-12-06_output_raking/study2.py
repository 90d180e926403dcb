"""Variants of study.py: custom bin edges (the residual's tail only; islands alone)."""

import sys

import numpy as np
from study import COL, emulated_weights, load, print_table, w1_ratios

from ctapipe_genshower.model.marginal_calibration import MarginalCalibration
from ctapipe_genshower.training.marginal_calibration import weighted_histograms


def fit_edges(sim, out, spec, n_iterations=30, max_log_factor=3.0):
    columns = [COL[n] for n, _ in spec]
    edges = [np.asarray(e, float) for _, e in spec]
    out_bins = [
        MarginalCalibration.bin_index(out[:, c], e) for c, e in zip(columns, edges, strict=True)
    ]
    sim_hist = [
        weighted_histograms(MarginalCalibration.bin_index(sim[:, c], e), len(e) + 2)
        for c, e in zip(columns, edges, strict=True)
    ]
    log_f = [np.zeros(len(e) + 2) for e in edges]

    def factor():
        total = sum(lf[b] for b, lf in zip(out_bins, log_f, strict=True))
        return np.exp(total - total.max())

    for _ in range(n_iterations):
        for k, (b, h_sim) in enumerate(zip(out_bins, sim_hist, strict=True)):
            h_out = weighted_histograms(b, len(h_sim), emulated_weights(out, factor()))
            ok = (h_sim > 0) & (h_out > 0)
            step = np.zeros(len(h_sim))
            step[ok] = np.log(h_sim[ok] / h_out[ok])
            log_f[k] = np.clip(log_f[k] + step, -max_log_factor, max_log_factor)
    shift = sum(lf.max() for lf in log_f)
    return MarginalCalibration(columns, edges, [lf - shift / len(log_f) for lf in log_f])


ISL = ("morphology_n_islands", [1.5, 2.5, 3.5])
SETS = {
    "islands": [ISL],
    "tail6": [("timing_max_residual", [np.log10(6)])],
    "tail4,6,10": [("timing_max_residual", np.log10([4, 6, 10]))],
    "tail6+islands": [("timing_max_residual", [np.log10(6)]), ISL],
}


def main(d):
    sim = load(d, *(f"run_{r}" for r in range(117, 125)))
    ref, floor = load(d, "run_201"), load(d, "run_202")
    gens = {s: load(d, s) for s in ("gen_v7now", "gen_v7_s8", "gen_v7_s9")}
    arms = ["v7", *SETS]
    rows = {}
    for test in gens:
        out = np.concatenate([gens[k] for k in gens if k != test])
        x = gens[test]
        rows[(test, "v7")] = (w1_ratios(ref, floor, x), 1.0)
        for name, spec in SETS.items():
            cal = fit_edges(sim, out, spec)
            w = emulated_weights(x, np.exp(cal.log_factor(x)))
            rows[(test, name)] = (w1_ratios(ref, floor, x, w), np.exp(cal.log_factor(out)).mean())
            if test == "gen_v7now":
                print(name, [np.round(np.exp(lf), 3).tolist() for lf in cal.log_factors])
    print_table(rows, gens, arms)


if __name__ == "__main__":
    main(sys.argv[1])
