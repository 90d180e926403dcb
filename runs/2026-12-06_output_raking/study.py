"""Would factors fitted on a refined model's *output* fix its worst parameters?

python study.py FEATURE_DIR > study.txt. Reads the npz files of ``features.py``:

* simulation for the fit: toy runs 117-124 (showers neither the networks nor v7's refiner
  were trained on);
* v7's generated events: generation seeds 7, 8, 9 (1M showers each);
* the validation reference run 201 and the MC floor run 202 (never used in a fit).

The factors ``f_k`` (piecewise constant in a few parameters, the bins of
``EDGE_QUANTILES``) multiply the refiner's acceptance. The generator redraws each shower until
one draw is kept, so its output for shower ``c`` becomes ``p_out(x|c) f(x) / Z(c)`` with
``Z(c) = E[f | c]``; the emulation weights each output event by ``f(x) / Z(c)``, ``Z``
estimated as the mean ``f`` of the output events in cells of (log10 E, impact distance).
Raking fits ``f`` so that these weighted events have the simulation's histograms. Test:
fitted on two generated samples, W1 of the third (weighted) to run 201 in units of
W1(run 202, run 201), in the refiner's feature space.
"""

import sys
from pathlib import Path

import numpy as np
from scipy.stats import wasserstein_distance

from ctapipe_genshower.model.density_ratio import REFINER_FEATURES, TIME_RESIDUAL_FEATURE
from ctapipe_genshower.model.marginal_calibration import MarginalCalibration
from ctapipe_genshower.training.marginal_calibration import EDGE_QUANTILES, weighted_histograms

FEATURES = (*REFINER_FEATURES, TIME_RESIDUAL_FEATURE)
NAMES = [n + ("" if t in ("linear", "log10") else f" ({t})") for n, t in FEATURES]
COL = {n: i for i, n in enumerate(NAMES)}
N_PAR = len(FEATURES)
SETS = {
    "residual": ["timing_max_residual"],
    "residual+islands": ["timing_max_residual", "morphology_n_islands"],
    "residual+islands+leakage2": [
        "timing_max_residual",
        "morphology_n_islands",
        "leakage_intensity_width_2",
    ],
}


def load(directory, *stems):
    return np.concatenate([np.load(Path(directory) / f"{s}.npz")["x"] for s in stems])


def shower_cells(x):
    log_e = x[:, N_PAR]
    impact = np.hypot(x[:, N_PAR + 1], x[:, N_PAR + 2])
    e_bin = np.digitize(log_e, [-0.5, 0.0, 0.5, 1.0, 1.5])
    r_bin = np.digitize(impact, [100, 200, 300])
    return e_bin * 4 + r_bin


def emulated_weights(x, f):
    """``f(x) / Z(c)``, Z the mean f of the events in each shower cell."""
    cells = shower_cells(x)
    z = np.bincount(cells, weights=f, minlength=24) / np.maximum(
        np.bincount(cells, minlength=24), 1
    )
    return f / z[cells]


def fit(sim, out, columns, n_iterations=30, max_log_factor=3.0):
    edges = [
        np.unique(np.quantile(sim[np.isfinite(sim[:, c]), c], EDGE_QUANTILES)) for c in columns
    ]
    out_bins = [
        MarginalCalibration.bin_index(out[:, c], e) for c, e in zip(columns, edges, strict=True)
    ]
    sim_hist = [
        weighted_histograms(MarginalCalibration.bin_index(sim[:, c], e), len(e) + 2)
        for c, e in zip(columns, edges, strict=True)
    ]
    log_f = [np.zeros(len(e) + 2) for e in edges]

    def factor():
        total = np.zeros(len(out))
        for b, lf in zip(out_bins, log_f, strict=True):
            total += lf[b]
        return np.exp(total - total.max())  # at most 1: the refiner's cap stays as it is

    for _ in range(n_iterations):
        for k, (b, h_sim) in enumerate(zip(out_bins, sim_hist, strict=True)):
            w = emulated_weights(out, factor())
            h_out = weighted_histograms(b, len(h_sim), w)
            step = np.zeros(len(h_sim))
            ok = (h_sim > 0) & (h_out > 0)
            step[ok] = np.log(h_sim[ok] / h_out[ok])
            log_f[k] = np.clip(log_f[k] + step, -max_log_factor, max_log_factor)
    shift = max(lf.max() for lf in log_f)
    log_f = [lf - shift / len(log_f) for lf in log_f]
    return MarginalCalibration(columns, edges, log_f)


def w1_ratios(ref, floor, x, w=None):
    out = []
    for j in range(N_PAR):
        r, f, g = ref[:, j], floor[:, j], x[:, j]
        r, f = r[np.isfinite(r)], f[np.isfinite(f)]
        ok = np.isfinite(g)
        scale = wasserstein_distance(r, f)
        out.append(wasserstein_distance(r, g[ok], v_weights=None if w is None else w[ok]) / scale)
    return np.array(out)


def print_table(rows, gens, arms):
    """The markdown table of W1 ratios, parameters above 2 and acceptance, per sample and arm."""
    print("| feature | " + " | ".join(f"{t[4:]} {a}" for t in gens for a in arms) + " |")
    print("| --- " * (1 + len(gens) * len(arms)) + "|")
    for j, name in enumerate(NAMES):
        print(
            f"| {name} | "
            + " | ".join(f"{rows[(t, a)][0][j]:.2f}" for t in gens for a in arms)
            + " |"
        )
    print(
        "| above 2 | "
        + " | ".join(str(int((rows[(t, a)][0][:-1] > 2).sum())) for t in gens for a in arms)
        + " |"
    )
    print(
        "| acceptance | " + " | ".join(f"{rows[(t, a)][1]:.3f}" for t in gens for a in arms) + " |"
    )


def main(directory):
    sim = load(directory, *(f"run_{r}" for r in range(117, 125)))
    ref, floor = load(directory, "run_201"), load(directory, "run_202")
    gens = {s: load(directory, s) for s in ("gen_v7now", "gen_v7_s8", "gen_v7_s9")}
    print(
        f"simulation (fit) {len(sim)}, reference {len(ref)}, floor {len(floor)},"
        f" generated {', '.join(f'{k} {len(v)}' for k, v in gens.items())}"
    )
    above = {k: np.mean(v[:, COL["timing_max_residual"]] > np.log10(6)) for k, v in gens.items()}
    above = {
        "sim": np.mean(sim[:, COL["timing_max_residual"]] > np.log10(6)),
        "ref": np.mean(ref[:, COL["timing_max_residual"]] > np.log10(6)),
        **above,
    }
    print("images with a residual > 6 ns: " + ", ".join(f"{k} {v:.4f}" for k, v in above.items()))
    rows = {}
    for test in gens:
        fit_on = [k for k in gens if k != test]
        out = np.concatenate([gens[k] for k in fit_on])
        x = gens[test]
        rows[(test, "v7")] = (w1_ratios(ref, floor, x), 1.0)
        for name, cols in SETS.items():
            cal = fit(sim, out, [COL[c] for c in cols])
            f = np.exp(cal.log_factor(x))
            w = emulated_weights(x, f)
            acc = np.exp(cal.log_factor(out)).mean()
            rows[(test, name)] = (w1_ratios(ref, floor, x, w), acc)
    arms = ["v7", *SETS]
    print()
    print("W1 / W1(run 202, run 201) of each test sample, weighted as the arm's output would be")
    print("(factors fitted on the other two samples); acceptance relative to v7's:")
    print()
    print_table(rows, gens, arms)


if __name__ == "__main__":
    main(sys.argv[1])
