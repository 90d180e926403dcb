"""The night-sky pixels' peak times, learned as a table instead of by the network.

In a pixel without Cherenkov light the peak time is where the extractor found the largest
night-sky fluctuation: a draw from the readout window that does not depend on the shower.
Such pixels are most of the camera (in the toy's training images 92 % hold at most 1 p.e.,
with times uniform over the 100 ns window; above 2 p.e. the times follow the shower), so
without this a DL1 model spends ~97 % of its time channel's loss on noise it cannot predict
(``docs/ablation.md``, *The channels' weights in the loss*).

A model with night-sky times (``ModelConfig.night_sky_charge``) does not learn them:

* **training**: the peak-time target of every pixel with DL1 charge at or below
  ``charge`` p.e. is one fixed time, the time transform's centre (the bright pixels'
  median time, :meth:`NightSkyTimes.training_times`); the time transform itself is fitted
  on the images as they are, so the shower pixels keep their units;
* **generation**: every generated pixel at or below ``charge`` p.e. gets a time drawn from
  the quantile table of the training pixels at or below it (:meth:`NightSkyTimes.apply`).

Pixels are drawn independently of their charge, position and shower. That is the noise
pixels' own behaviour; the few pixels at or below the threshold that hold a photo-electron
of the shower (1.2 % of them in the toy, with times near the shower's) lose that
correlation, which is what the low-level classifier is there to see.

Everything here is numpy: the table is stored as JSON in the checkpoint's transforms.
"""

import math

import numpy as np

from .pixel_response import QUANTILE_LEVELS, quantile_position

__all__ = ["NightSkyTimes"]
#: Fewest pixels the table needs.
_MIN_PIXELS = 200
#: Pixels used to fit the table at most (a seeded subset beyond).
_MAX_PIXELS = 20_000_000


class NightSkyTimes:
    """Peak times of the pixels at or below a charge threshold, as a quantile table.

    Parameters
    ----------
    charge : float
        The threshold (p.e.): pixels with DL1 charge ``<= charge`` are night-sky pixels.
    target_time : float
        Their peak-time target in training (ns).
    time_quantiles : array-like, shape (n_levels,)
        Quantiles of the training night-sky pixels' peak times (ns).
    levels : array-like, shape (n_levels,)
        The quantile levels, increasing from 0 to 1.
    n_pixels_fitted : int, optional
        Pixels behind the table (bookkeeping).
    """

    def __init__(self, charge, target_time, time_quantiles, levels, n_pixels_fitted=None):
        self.charge = float(charge)
        self.target_time = float(target_time)
        self.time_quantiles = np.asarray(time_quantiles, dtype=np.float64)
        self.levels = np.asarray(levels, dtype=np.float64)
        self.n_pixels_fitted = None if n_pixels_fitted is None else int(n_pixels_fitted)
        if not (math.isfinite(self.charge) and math.isfinite(self.target_time)):
            raise ValueError("night-sky charge threshold and target time must be finite")
        if self.time_quantiles.shape != self.levels.shape or self.levels.ndim != 1:
            raise ValueError("night-sky time table does not match its levels")
        if not (np.all(np.diff(self.levels) > 0) and self.levels[0] == 0 and self.levels[-1] == 1):
            raise ValueError("night-sky time levels must increase from 0 to 1")
        if not (
            np.isfinite(self.time_quantiles).all() and np.all(np.diff(self.time_quantiles) >= 0)
        ):
            raise ValueError("night-sky time quantiles must be finite and non-decreasing")

    @classmethod
    def fit(cls, image, peak_time, charge, target_time, seed=0):
        """Learn the table from training images.

        Parameters
        ----------
        image, peak_time : array-like, shape (N, n_pixels)
            DL1 charge (p.e.) and peak time (ns).
        charge : float
            The threshold (p.e.).
        target_time : float
            The training target of the night-sky pixels' times (ns).
        seed : int
            Seed of the subset used when there are more than 20 million night-sky pixels.
        """
        image = np.asarray(image, dtype=np.float64)
        time = np.asarray(peak_time, dtype=np.float64)
        if image.shape != time.shape:
            raise ValueError("image and peak_time must have the same shape")
        night_sky = time[image <= charge]
        if len(night_sky) < _MIN_PIXELS:
            raise ValueError(
                f"need at least {_MIN_PIXELS} pixels at or below {charge} p.e. to fit the "
                f"night-sky times, got {len(night_sky)}"
            )
        if not np.isfinite(night_sky).all():
            raise ValueError("cannot fit the night-sky times: peak times contain NaN or inf")
        if len(night_sky) > _MAX_PIXELS:
            keep = np.random.default_rng(seed).choice(len(night_sky), _MAX_PIXELS, replace=False)
            night_sky = night_sky[keep]
        return cls(
            charge,
            target_time,
            np.quantile(night_sky, QUANTILE_LEVELS),
            QUANTILE_LEVELS,
            n_pixels_fitted=len(night_sky),
        )

    def mask(self, image):
        """Which pixels are night-sky pixels (``image <= charge``)."""
        return np.asarray(image) <= self.charge

    def training_times(self, image, peak_time):
        """The peak-time targets of training: ``target_time`` in the night-sky pixels."""
        peak_time = np.asarray(peak_time)
        return np.where(self.mask(image), self.target_time, peak_time).astype(peak_time.dtype)

    def apply(self, image, peak_time, rngs):
        """Peak times of generated images: drawn from the table in the night-sky pixels.

        Parameters
        ----------
        image, peak_time : array-like, shape (N, n_pixels)
            Generated DL1 charge (p.e.) and peak time (ns).
        rngs : sequence of numpy.random.Generator
            One per event, so an event's times do not depend on its batch.

        Returns
        -------
        numpy.ndarray
            ``(N, n_pixels)`` float32 peak times.
        """
        image, peak_time = np.asarray(image), np.asarray(peak_time)
        n_events, n_pixels = image.shape
        if len(rngs) != n_events:
            raise ValueError(f"need one random generator per event, got {len(rngs)}")
        if n_events == 0:
            return np.empty((0, n_pixels), np.float32)
        u = np.stack([rng.random(n_pixels) for rng in rngs])
        index, frac = quantile_position(self.levels, u)
        drawn = self.time_quantiles[index] * (1 - frac) + self.time_quantiles[index + 1] * frac
        return np.where(self.mask(image), drawn, peak_time).astype(np.float32)

    def to_dict(self):
        """JSON-able dict (stored in the checkpoint's transforms)."""
        return {
            "charge": self.charge,
            "target_time": self.target_time,
            "time_quantiles": self.time_quantiles.tolist(),
            "levels": self.levels.tolist(),
            "n_pixels_fitted": self.n_pixels_fitted,
        }

    @classmethod
    def from_dict(cls, data):
        """Inverse of :meth:`to_dict`."""
        return cls(
            data["charge"],
            data["target_time"],
            data["time_quantiles"],
            data["levels"],
            n_pixels_fitted=data.get("n_pixels_fitted"),
        )

    def __repr__(self):
        return f"NightSkyTimes(charge={self.charge}, levels={len(self.levels)})"
