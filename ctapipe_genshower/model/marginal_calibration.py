"""The refiner's marginal calibration: per-parameter factors on top of the classifier's ratio.

The refiner's classifier estimates the ratio ``r(x, c)`` of simulated to generated image
parameters; a smooth network fitted on tens of thousands of image pairs leaves part of the
one-dimensional tails uncorrected (the rejection keeps about half of the W1 distance of the
shape and timing spreads, ``docs/refiner.md``). The calibration multiplies the ratio by one
piecewise-constant factor per parameter,

    r'(x, c) = r(x, c) * prod_k f_k(x_k),

fitted by iterative proportional fitting (raking,
:mod:`ctapipe_genshower.training.marginal_calibration`) so that generated images weighted by
the capped ``r'`` have the simulated images' histogram in every parameter. Bins are quantiles
of the simulated sample; a NaN value (a parameter ctapipe could not compute) has a bin of its
own. Numpy only, stored as plain numbers.
"""

import numpy as np

__all__ = ["MarginalCalibration"]


class MarginalCalibration:
    """Piecewise-constant log factors of refiner feature columns.

    Parameters
    ----------
    columns : sequence of int
        Indices of the calibrated columns in the refiner's raw feature rows
        (:func:`~ctapipe_genshower.model.density_ratio.refiner_features`).
    edges : sequence of array-like
        Increasing bin edges per column: ``m`` edges make ``m + 1`` bins of finite values
        (below the first edge, between edges, from the last edge up), then the NaN bin.
    log_factors : sequence of array-like
        ``m + 2`` log factors per column.
    info : dict, optional
        How it was fitted.
    """

    def __init__(self, columns, edges, log_factors, info=None):
        self.columns = tuple(int(c) for c in columns)
        self.edges = [np.asarray(e, dtype=np.float64) for e in edges]
        self.log_factors = [np.asarray(f, dtype=np.float64) for f in log_factors]
        if not (len(self.columns) == len(self.edges) == len(self.log_factors)):
            raise ValueError("columns, edges and log_factors must have the same length")
        for column, e, f in zip(self.columns, self.edges, self.log_factors, strict=True):
            if e.ndim != 1 or len(e) < 1 or not np.all(np.diff(e) > 0):
                raise ValueError(f"edges of column {column} must be increasing")
            if f.shape != (len(e) + 2,) or not np.all(np.isfinite(f)):
                raise ValueError(f"column {column} needs {len(e) + 2} finite log factors")
        self.info = dict(info or {})

    @staticmethod
    def bin_index(values, edges):
        """Bin of each value: 0 .. len(edges) for finite values, len(edges) + 1 for NaN."""
        values = np.asarray(values, dtype=np.float64)
        index = np.searchsorted(edges, values, side="right")
        index[~np.isfinite(values)] = len(edges) + 1
        return index

    def log_factor(self, x):
        """``sum_k log f_k(x_k)`` of raw feature rows ``x`` ``(N,)`` float64."""
        x = np.asarray(x, dtype=np.float64)
        out = np.zeros(len(x))
        for column, e, f in zip(self.columns, self.edges, self.log_factors, strict=True):
            out += f[self.bin_index(x[:, column], e)]
        return out

    def to_metadata(self):
        """JSON-able form (numbers only)."""
        return {
            "columns": list(self.columns),
            "edges": [e.tolist() for e in self.edges],
            "log_factors": [f.tolist() for f in self.log_factors],
            "info": self.info,
        }

    @classmethod
    def from_metadata(cls, meta):
        """Build from :meth:`to_metadata`."""
        return cls(meta["columns"], meta["edges"], meta["log_factors"], meta.get("info"))

    def __repr__(self):
        return f"MarginalCalibration({len(self.columns)} columns)"
