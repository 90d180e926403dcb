"""The camera's pixel response, learned from the simulation: true p.e. -> DL1 charge and time.

A model with a learned pixel response (``ModelConfig.pixel_response``, preset
``small-signal``) factorises each image into the Cherenkov signal and the detector:

* the pixel network generates the **signal**: the true photo-electrons of every pixel
  (ctapipe's ``true_image``, which sim_telarray files and the toy both provide) and the
  peak time of the pixels that hold any (:func:`signal_view` makes the training targets);
* :class:`PixelResponse` turns them into a **DL1 image**: the charge of a pixel with ``n``
  true p.e. is drawn from the distribution of DL1 charges of the training pixels with ``n``
  p.e. (night-sky background, charge resolution, extractor bias: whatever the simulation
  and the charge extraction did), the peak time of a pixel without signal from the
  distribution of the training pixels without signal.

Both distributions are learned from the training pairs (true image, DL1 image) as quantile
tables, not copied from any simulator's code, so the noise is right by construction and
the network spends its capacity on the shower. Pixels are treated as independent given
their true p.e. (true for the toy; sim_telarray adds little correlated noise).

Everything here is numpy: the tables are stored as JSON in the checkpoint's transforms.
"""

import numpy as np

__all__ = ["QUANTILE_LEVELS", "PixelResponse", "quantile_position", "signal_view"]

#: Lower edges of the true-p.e. bins: every count up to 10, then coarser.
_BIN_EDGES = (*range(11), 12, 15, 20, 30, 50, 100, 200, 500, 1000, 3000)
#: Quantile levels of the tables: dense in both tails, where cleaning thresholds sit (also
#: the night-sky time table's, :mod:`.night_sky_times`).
QUANTILE_LEVELS = np.concatenate([[0.0], 1 / (1 + np.exp(-np.linspace(-9, 9, 127))), [1.0]])
#: Fewest pixels a bin needs for its own table; sparser bins use the next lower bin's.
_MIN_PIXELS = 200
#: Pixel pairs used to fit the tables at most (a seeded subset beyond).
_MAX_PIXELS = 20_000_000


def quantile_position(levels, u):
    """Where uniform numbers ``u`` fall among increasing quantile ``levels`` (0 to 1):
    ``(index, fraction)``, for an inverse CDF piecewise linear between the quantiles."""
    index = np.clip(np.searchsorted(levels, u, side="right") - 1, 0, len(levels) - 2)
    lo, hi = levels[index], levels[index + 1]
    return index, (u - lo) / (hi - lo)


def signal_view(batch):
    """Training targets of a pixel-response model: the signal, not the DL1 image.

    Parameters
    ----------
    batch : dict
        ``image``, ``peak_time``, ``true_image`` ``(N, n_pixels)`` and ``conditions``.

    Returns
    -------
    dict
        ``image`` = the true p.e., ``peak_time`` = the DL1 peak time where a pixel has
        signal and the event's p.e.-weighted mean signal time elsewhere (a smooth field
        the network learns cheaply; the response replaces those times), ``conditions``.
    """
    true = np.asarray(batch["true_image"], dtype=np.float32)
    time = np.asarray(batch["peak_time"], dtype=np.float32)
    signal = true > 0
    weight = np.where(signal, true, 0.0)
    total = weight.sum(axis=1, keepdims=True)
    mean_time = (weight * time).sum(axis=1, keepdims=True) / np.maximum(total, 1.0)
    # events without any signal pixel (not selectable in practice) keep their median time
    mean_time = np.where(total > 0, mean_time, np.median(time, axis=1, keepdims=True))
    return {
        "image": true,
        "peak_time": np.where(signal, time, mean_time).astype(np.float32),
        "conditions": batch["conditions"],
    }


class PixelResponse:
    """DL1 charge and peak time of a pixel given its true p.e., as learned quantile tables.

    Parameters
    ----------
    bin_edges : sequence of int
        Lower edges of the true-p.e. bins (the last bin is open).
    charge_quantiles : array-like, shape (n_bins, n_levels)
        Quantiles of ``z = (charge - n) / sqrt(n + 1)`` of the pixels in each bin.
    noise_time_quantiles : array-like, shape (n_levels,)
        Quantiles of the DL1 peak time of the pixels without signal (ns).
    levels : array-like, shape (n_levels,)
        The quantile levels, increasing from 0 to 1.
    n_pixels_fitted : sequence of int, optional
        Pixels behind each bin's table (bookkeeping).
    """

    def __init__(
        self,
        bin_edges,
        charge_quantiles,
        noise_time_quantiles,
        levels,
        n_pixels_fitted=None,
    ):
        self.bin_edges = np.asarray(bin_edges, dtype=np.float64)
        self.charge_quantiles = np.asarray(charge_quantiles, dtype=np.float64)
        self.noise_time_quantiles = np.asarray(noise_time_quantiles, dtype=np.float64)
        self.levels = np.asarray(levels, dtype=np.float64)
        self.n_pixels_fitted = None if n_pixels_fitted is None else list(n_pixels_fitted)
        n_bins, n_levels = self.charge_quantiles.shape
        if (
            n_bins != len(self.bin_edges)
            or n_levels != len(self.levels)
            or self.noise_time_quantiles.shape != (n_levels,)
        ):
            raise ValueError("pixel response tables do not match their bins and levels")
        if not (np.all(np.diff(self.levels) > 0) and self.levels[0] == 0 and self.levels[-1] == 1):
            raise ValueError("pixel response levels must increase from 0 to 1")

    @classmethod
    def fit(cls, true_image, image, peak_time, seed=0):
        """Learn the tables from training pairs.

        Parameters
        ----------
        true_image, image, peak_time : array-like, shape (N, n_pixels)
            True p.e., DL1 charge (p.e.) and DL1 peak time (ns) of the same pixels.
        seed : int
            Seed of the subset used when there are more than 20 million pixels.
        """
        true = np.asarray(true_image, dtype=np.float64).ravel()
        charge = np.asarray(image, dtype=np.float64).ravel()
        time = np.asarray(peak_time, dtype=np.float64).ravel()
        if not (true.shape == charge.shape == time.shape):
            raise ValueError("true_image, image and peak_time must have the same shape")
        if not (np.isfinite(true).all() and np.isfinite(charge).all() and np.isfinite(time).all()):
            raise ValueError("cannot fit the pixel response: NaN or inf in the training pairs")
        if np.any(true < 0) or np.any(true != np.rint(true)):
            raise ValueError("true images must hold non-negative whole photo-electron counts")
        if len(true) > _MAX_PIXELS:
            keep = np.random.default_rng(seed).choice(len(true), _MAX_PIXELS, replace=False)
            true, charge, time = true[keep], charge[keep], time[keep]

        bins = np.searchsorted(_BIN_EDGES, true, side="right") - 1
        noise = true == 0
        if noise.sum() < _MIN_PIXELS:
            raise ValueError(f"need at least {_MIN_PIXELS} pixels without signal to fit")
        z = (charge - true) / np.sqrt(true + 1)
        tables, counts = [], []
        for b in range(len(_BIN_EDGES)):
            in_bin = bins == b
            counts.append(int(in_bin.sum()))
            if counts[-1] >= _MIN_PIXELS:
                tables.append(np.quantile(z[in_bin], QUANTILE_LEVELS))
            else:  # too few pixels: the nearest lower bin's shape (bin 0 always has enough)
                tables.append(tables[-1])
        return cls(
            _BIN_EDGES,
            np.array(tables),
            np.quantile(time[noise], QUANTILE_LEVELS),
            QUANTILE_LEVELS,
            n_pixels_fitted=counts,
        )

    def apply(self, true_image, signal_time, rngs):
        """DL1 images from generated signals.

        Parameters
        ----------
        true_image : array-like, shape (N, n_pixels)
            Generated true p.e. (rounded to whole counts, negative values to 0).
        signal_time : array-like, shape (N, n_pixels)
            Generated peak times (ns), used where a pixel has signal.
        rngs : sequence of numpy.random.Generator
            One per event, so an event's noise does not depend on its batch.

        Returns
        -------
        image, peak_time : numpy.ndarray
            ``(N, n_pixels)`` float32 DL1 charge (p.e.) and peak time (ns).
        """
        n = np.rint(np.clip(np.asarray(true_image, dtype=np.float64), 0, None))
        n_events, n_pixels = n.shape
        if len(rngs) != n_events:
            raise ValueError(f"need one random generator per event, got {len(rngs)}")
        if n_events == 0:
            return np.empty((0, n_pixels), np.float32), np.empty((0, n_pixels), np.float32)
        u = np.stack([rng.random((2, n_pixels)) for rng in rngs])
        # charge: the inverse CDF of the pixel's bin, piecewise linear between quantiles
        bins = np.searchsorted(self.bin_edges, n, side="right") - 1
        index, frac = quantile_position(self.levels, u[:, 0])
        table = self.charge_quantiles
        z = table[bins, index] * (1 - frac) + table[bins, index + 1] * frac
        charge = n + np.sqrt(n + 1) * z
        index, frac = quantile_position(self.levels, u[:, 1])
        noise_time = (
            self.noise_time_quantiles[index] * (1 - frac)
            + self.noise_time_quantiles[index + 1] * frac
        )
        time = np.where(n > 0, np.asarray(signal_time, dtype=np.float64), noise_time)
        return charge.astype(np.float32), time.astype(np.float32)

    def to_dict(self):
        """JSON-able dict (stored in the checkpoint's transforms)."""
        return {
            "bin_edges": self.bin_edges.tolist(),
            "charge_quantiles": self.charge_quantiles.tolist(),
            "noise_time_quantiles": self.noise_time_quantiles.tolist(),
            "levels": self.levels.tolist(),
            "n_pixels_fitted": self.n_pixels_fitted,
        }

    @classmethod
    def from_dict(cls, data):
        """Inverse of :meth:`to_dict`."""
        return cls(
            data["bin_edges"],
            data["charge_quantiles"],
            data["noise_time_quantiles"],
            data["levels"],
            n_pixels_fitted=data.get("n_pixels_fitted"),
        )

    def __repr__(self):
        return f"PixelResponse(bins={len(self.bin_edges)}, levels={len(self.levels)})"
