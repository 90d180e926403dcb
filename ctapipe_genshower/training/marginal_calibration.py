"""Fitting the refiner's marginal calibration by iterative proportional fitting (raking).

The generated images weighted as the rejection keeps them, ``min(r', r'_max)`` with
``r' = r prod_k f_k``, should have the simulated images' histogram in every calibrated
parameter. Raking (Deming & Stephan 1940; the iterative reweighting of HEP Monte Carlo to
data in several one-dimensional distributions) updates one parameter's factors at a time by
the ratio of the two histograms and cycles until all agree. The cap is re-evaluated at every
update, so a factor that would push images above it is seen to have no effect (and is bounded
by ``max_log_factor``). Conditions are not calibrated: the refiner's samples are paired, their
conditions are the same. Numpy only; the rows come from the caller.
"""

import numpy as np

from ..model.marginal_calibration import MarginalCalibration

__all__ = [
    "EDGE_QUANTILES",
    "fit_marginal_calibration",
    "kept_weights",
    "weighted_histograms",
]

#: Quantiles of the simulated sample that bound the bins: nine bins of finite values (and one
#: for NaN), narrower in the tails, where the model's images differ most from the
#: simulation's. Finer bins
#: (17 edges down to the 0.5 % tails) matched the fit pairs as well but the test pairs less
#: well (``runs/2026-12-05_marginal_calibration/``): the kept images are few (about 14 % of
#: the pairs in effective number), so a bin needs many.
EDGE_QUANTILES = (0.01, 0.05, 0.2, 0.4, 0.6, 0.8, 0.95, 0.99)


def _edges(values, quantiles):
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return None
    edges = np.unique(np.quantile(finite, quantiles))
    return edges if len(edges) else None


def weighted_histograms(bins, n_bins, weights=None):
    """Normalised (weighted) histogram of bin indices; all zeros for no weight."""
    h = np.bincount(bins, weights=weights, minlength=n_bins).astype(np.float64)
    total = h.sum()
    return h / total if total > 0 else h


def kept_weights(log_ratio, cap_quantile):
    """How often the rejection keeps each generated row: ``min(r, r_max) / r_max``."""
    cap = np.quantile(log_ratio, cap_quantile)
    return np.exp(np.minimum(log_ratio, cap) - cap)


def fit_marginal_calibration(
    simulated,
    generated,
    log_ratio,
    columns,
    *,
    quantiles=EDGE_QUANTILES,
    cap_quantile=0.99,
    n_iterations=30,
    max_log_factor=3.0,
):
    """Fit per-parameter factors so that the kept generated images match every marginal.

    Parameters
    ----------
    simulated, generated : numpy.ndarray, shape (N, n_features)
        Raw refiner feature rows of simulated and generated images
        (:func:`~ctapipe_genshower.model.density_ratio.refiner_features`), not those the
        classifier was fitted on (its ratio on its own training rows is over-confident).
    log_ratio : numpy.ndarray, shape (len(generated),)
        The classifier's calibrated ``log r`` of the generated rows.
    columns : sequence of int
        The feature columns to calibrate.
    quantiles : sequence of float
        Quantiles of the simulated column that become its bin edges.
    cap_quantile : float
        The refiner's cap, as a quantile of ``log r'`` over the generated rows.
    n_iterations : int
        Cycles over all columns.
    max_log_factor : float
        Bound of ``|log f|`` (a bin the simulation leaves empty gets ``-max_log_factor``).

    Returns
    -------
    MarginalCalibration
        With ``info``: the bins' largest remaining ``|log(h_sim / h_kept)|`` before and after,
        and the fit's settings.
    """
    simulated = np.asarray(simulated, dtype=np.float64)
    generated = np.asarray(generated, dtype=np.float64)
    log_ratio = np.asarray(log_ratio, dtype=np.float64)
    if log_ratio.shape != (len(generated),):
        raise ValueError(f"log_ratio must have shape ({len(generated)},), got {log_ratio.shape}")
    if not 0 < cap_quantile <= 1:
        raise ValueError(f"cap_quantile must be in (0, 1], got {cap_quantile}")
    if n_iterations < 1 or max_log_factor <= 0:
        raise ValueError("need n_iterations >= 1 and max_log_factor > 0")

    kept_columns, edges, gen_bins, sim_hist = [], [], [], []
    for column in columns:
        e = _edges(simulated[:, column], quantiles)
        if e is None:  # a parameter the simulation never has: nothing to match
            continue
        n_bins = len(e) + 2
        kept_columns.append(int(column))
        edges.append(e)
        gen_bins.append(MarginalCalibration.bin_index(generated[:, column], e))
        sim_bins = MarginalCalibration.bin_index(simulated[:, column], e)
        sim_hist.append(weighted_histograms(sim_bins, n_bins))
    log_factors = [np.zeros(len(e) + 2) for e in edges]

    def total_log_ratio():
        out = log_ratio.copy()
        for bins, f in zip(gen_bins, log_factors, strict=True):
            out += f[bins]
        return out

    def worst_mismatch():
        w = kept_weights(total_log_ratio(), cap_quantile)
        worst = 0.0
        for bins, h_sim, f in zip(gen_bins, sim_hist, log_factors, strict=True):
            h_gen = weighted_histograms(bins, len(f), w)
            both = (h_sim > 0) & (h_gen > 0)
            if both.any():
                worst = max(worst, float(np.abs(np.log(h_sim[both] / h_gen[both])).max()))
        return worst

    before = worst_mismatch()
    for _ in range(int(n_iterations)):
        for k, (bins, h_sim) in enumerate(zip(gen_bins, sim_hist, strict=True)):
            w = kept_weights(total_log_ratio(), cap_quantile)
            h_gen = weighted_histograms(bins, len(h_sim), w)
            step = np.zeros(len(h_sim))
            both = (h_sim > 0) & (h_gen > 0)
            step[both] = np.log(h_sim[both] / h_gen[both])
            step[(h_sim == 0) & (h_gen > 0)] = -max_log_factor  # outside the simulated range
            log_factors[k] = np.clip(log_factors[k] + step, -max_log_factor, max_log_factor)
    info = {
        "n_simulated": len(simulated),
        "n_generated": len(generated),
        "n_iterations": int(n_iterations),
        "cap_quantile": float(cap_quantile),
        "max_log_factor": float(max_log_factor),
        "quantiles": [float(q) for q in quantiles],
        "worst_log_mismatch_before": before,
        "worst_log_mismatch_after": worst_mismatch(),
    }
    return MarginalCalibration(kept_columns, edges, log_factors, info)
