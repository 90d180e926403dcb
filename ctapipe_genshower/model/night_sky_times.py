"""The night-sky pixels' peak times, learned as a table instead of by the network.

In a pixel without Cherenkov light the peak time is where the extractor found the largest
night-sky fluctuation: a draw from the readout window that does not depend on the shower.
Such pixels are most of the camera (in the toy's training images 92 % hold at most 1 p.e.,
with times uniform over the 100 ns window; above 2 p.e. the times follow the shower), so
without this a DL1 model spends ~97 % of its time channel's loss on noise it cannot predict
(``docs/ablation.md``, *The channels' weights in the loss*).

A model with night-sky times (``ModelConfig.night_sky_charge``) does not learn them:

* **training**: the peak-time target of every pixel with DL1 charge at or below
  ``charge`` p.e. is not its time (:meth:`NightSkyTimes.training_times`) but, with
  ``target="centre"``, one fixed time, the time transform's centre (the bright pixels'
  median time), or, with ``target="plane"``, the event's own time plane (the charge-weighted
  least-squares plane through the times of its pixels above the threshold, evaluated at
  the pixel), so that a pixel just above the threshold, which the network cannot tell from
  one just below it, is not pulled towards a time off the shower's gradient. The time
  transform itself is fitted on the images as they are, so the shower pixels keep their
  units;
* **generation**: every generated pixel at or below ``charge`` p.e. gets a time drawn from
  the quantile table of the training pixels of its charge bin (1 p.e. wide, the last ending
  at the threshold; :meth:`NightSkyTimes.apply`).

Pixels are drawn independently of their position and shower. That is the noise pixels' own
behaviour (their times do not depend on their charge either); a faint pixel that holds
photo-electrons of the shower (1.2 % of those at or below 1 p.e. in the toy, 97.5 % of those
at 2-5 p.e.) gets its charge bin's time distribution, but not its place on the shower's time
gradient, which is what the low-level classifier is there to see.

Everything here is numpy: the tables are stored as JSON in the checkpoint's transforms.
"""

import math

import numpy as np

from .config import NIGHT_SKY_TARGETS
from .pixel_response import QUANTILE_LEVELS, quantile_position

__all__ = ["NightSkyTimes", "time_plane"]

#: Ridge of the time plane's slopes (squared grid cells): the slopes along a direction in
#: which the fitted pixels do not spread (one pixel, a line of pixels) are 0, not undefined.
_PLANE_RIDGE = 0.1
#: Fewest pixels the table needs.
_MIN_PIXELS = 200
#: Pixels used to fit the table at most (a seeded subset beyond).
_MAX_PIXELS = 20_000_000


class NightSkyTimes:
    """Peak times of the pixels at or below a charge threshold, as quantile tables per charge.

    Parameters
    ----------
    charge : float
        The threshold (p.e.): pixels with DL1 charge ``<= charge`` are night-sky pixels.
    target_time : float
        Their peak-time target in training (ns) with ``target="centre"``; with ``"plane"``,
        that of the events without any pixel above the threshold.
    bin_upper : array-like, shape (n_bins,)
        Upper edges of the charge bins (p.e., increasing, the last = ``charge``); a pixel
        belongs to the first bin whose edge its charge does not exceed.
    time_quantiles : array-like, shape (n_bins, n_levels)
        Quantiles of the training night-sky pixels' peak times in each bin (ns).
    levels : array-like, shape (n_levels,)
        The quantile levels, increasing from 0 to 1.
    n_pixels_fitted : sequence of int, optional
        Pixels behind each bin's table (bookkeeping).
    target : {"centre", "plane"}
        The night-sky pixels' training target: ``target_time``, or the event's time plane
        (:func:`time_plane`; ``target_time`` where the event has no pixel above the
        threshold).
    """

    def __init__(
        self,
        charge,
        target_time,
        bin_upper,
        time_quantiles,
        levels,
        n_pixels_fitted=None,
        target="centre",
    ):
        if target not in NIGHT_SKY_TARGETS:
            raise ValueError(f"night-sky target must be one of {NIGHT_SKY_TARGETS}, got {target!r}")
        self.target = target
        self.charge = float(charge)
        self.target_time = float(target_time)
        self.bin_upper = np.asarray(bin_upper, dtype=np.float64)
        self.time_quantiles = np.asarray(time_quantiles, dtype=np.float64)
        self.levels = np.asarray(levels, dtype=np.float64)
        self.n_pixels_fitted = None if n_pixels_fitted is None else list(n_pixels_fitted)
        if not (math.isfinite(self.charge) and math.isfinite(self.target_time)):
            raise ValueError("night-sky charge threshold and target time must be finite")
        if (
            self.bin_upper.ndim != 1
            or len(self.bin_upper) == 0
            or not np.all(np.diff(self.bin_upper) > 0)
            or self.bin_upper[-1] != self.charge
        ):
            raise ValueError("night-sky charge bins must increase up to the threshold")
        if self.levels.ndim != 1 or self.time_quantiles.shape != (
            len(self.bin_upper),
            len(self.levels),
        ):
            raise ValueError("night-sky time tables do not match their bins and levels")
        if not (np.all(np.diff(self.levels) > 0) and self.levels[0] == 0 and self.levels[-1] == 1):
            raise ValueError("night-sky time levels must increase from 0 to 1")
        if not (
            np.isfinite(self.time_quantiles).all()
            and np.all(np.diff(self.time_quantiles, axis=1) >= 0)
        ):
            raise ValueError("night-sky time quantiles must be finite and non-decreasing")

    @staticmethod
    def charge_bins(charge):
        """Upper edges of the charge bins up to ``charge``: whole p.e., then ``charge``."""
        return np.array([*range(1, math.ceil(charge)), charge], dtype=np.float64)

    @classmethod
    def fit(cls, image, peak_time, charge, target_time, target="centre", seed=0):
        """Learn the tables from training images.

        Parameters
        ----------
        image, peak_time : array-like, shape (N, n_pixels)
            DL1 charge (p.e.) and peak time (ns).
        charge : float
            The threshold (p.e.).
        target_time : float
            The training target of the night-sky pixels' times (ns).
        target : {"centre", "plane"}
            See the class.
        seed : int
            Seed of the subset used when there are more than 20 million night-sky pixels.
        """
        image = np.asarray(image, dtype=np.float64)
        time = np.asarray(peak_time, dtype=np.float64)
        if image.shape != time.shape:
            raise ValueError("image and peak_time must have the same shape")
        night_sky = image <= charge
        charges, times = image[night_sky], time[night_sky]
        if len(times) < _MIN_PIXELS:
            raise ValueError(
                f"need at least {_MIN_PIXELS} pixels at or below {charge} p.e. to fit the "
                f"night-sky times, got {len(times)}"
            )
        if not np.isfinite(times).all():
            raise ValueError("cannot fit the night-sky times: peak times contain NaN or inf")
        if len(times) > _MAX_PIXELS:
            keep = np.random.default_rng(seed).choice(len(times), _MAX_PIXELS, replace=False)
            charges, times = charges[keep], times[keep]
        bin_upper = cls.charge_bins(charge)
        bins = np.searchsorted(bin_upper, charges, side="left")
        tables, counts = [], []
        for b in range(len(bin_upper)):
            in_bin = bins == b
            counts.append(int(in_bin.sum()))
            if counts[-1] >= _MIN_PIXELS:
                tables.append(np.quantile(times[in_bin], QUANTILE_LEVELS))
            elif tables:  # too few pixels: the next fainter bin's table
                tables.append(tables[-1])
            else:  # the faintest bins: all night-sky pixels'
                tables.append(np.quantile(times, QUANTILE_LEVELS))
        return cls(
            charge,
            target_time,
            bin_upper,
            tables,
            QUANTILE_LEVELS,
            n_pixels_fitted=counts,
            target=target,
        )

    def mask(self, image):
        """Which pixels are night-sky pixels (``image <= charge``)."""
        return np.asarray(image) <= self.charge

    def training_times(self, image, peak_time, positions=None):
        """The peak-time targets of training: in the night-sky pixels ``target_time``
        (``target="centre"``) or the event's :func:`time_plane` (``"plane"``, which needs
        the pixels' ``positions``, ``(n_pixels, 2)``)."""
        image, peak_time = np.asarray(image), np.asarray(peak_time)
        night_sky = self.mask(image)
        if self.target == "centre":
            filler = self.target_time
        else:
            if positions is None:
                raise ValueError("the night-sky time plane needs the pixels' positions")
            weight = np.where(night_sky, 0.0, np.clip(image, 0.0, None))
            filler = time_plane(weight, peak_time, positions, self.target_time)
            # a plane extrapolated across the camera stays inside the window
            filler = np.clip(filler, self.time_quantiles.min(), self.time_quantiles.max())
        return np.where(night_sky, filler, peak_time).astype(peak_time.dtype)

    def apply(self, image, peak_time, rngs):
        """Peak times of generated images: drawn from the tables in the night-sky pixels.

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
        bins = np.minimum(
            np.searchsorted(self.bin_upper, image, side="left"), len(self.bin_upper) - 1
        )
        index, frac = quantile_position(self.levels, u)
        table = self.time_quantiles
        drawn = table[bins, index] * (1 - frac) + table[bins, index + 1] * frac
        return np.where(self.mask(image), drawn, peak_time).astype(np.float32)

    def to_dict(self):
        """JSON-able dict (stored in the checkpoint's transforms)."""
        return {
            "charge": self.charge,
            "target_time": self.target_time,
            "bin_upper": self.bin_upper.tolist(),
            "time_quantiles": self.time_quantiles.tolist(),
            "levels": self.levels.tolist(),
            "n_pixels_fitted": self.n_pixels_fitted,
            "target": self.target,
        }

    @classmethod
    def from_dict(cls, data):
        """Inverse of :meth:`to_dict`."""
        return cls(
            data["charge"],
            data["target_time"],
            data["bin_upper"],
            data["time_quantiles"],
            data["levels"],
            n_pixels_fitted=data.get("n_pixels_fitted"),
            target=data.get("target", "centre"),
        )

    def __repr__(self):
        return (
            f"NightSkyTimes(charge={self.charge}, target={self.target!r}, "
            f"bins={len(self.bin_upper)}, levels={len(self.levels)})"
        )


def time_plane(weight, peak_time, positions, default):
    """Each event's weighted least-squares time plane, evaluated at every pixel.

    Parameters
    ----------
    weight : array-like, shape (N, n_pixels)
        Non-negative weights (0: the pixel does not enter the fit).
    peak_time : array-like, shape (N, n_pixels)
        Peak times (ns).
    positions : array-like, shape (n_pixels, 2)
        Pixel positions (grid cells).
    default : float
        The time of events without weight.

    Returns
    -------
    numpy.ndarray
        ``(N, n_pixels)``: ``t0 + g . (x - x0)``, with ``x0``, ``t0`` the weighted mean
        position and time and ``g`` the slopes, ridge-regularised by ``_PLANE_RIDGE``.
    """
    w = np.asarray(weight, dtype=np.float64)
    t = np.asarray(peak_time, dtype=np.float64)
    x = np.asarray(positions, dtype=np.float64)
    total = w.sum(axis=1, keepdims=True)
    p = w / np.maximum(total, 1e-12)
    x0 = p @ x  # (N, 2)
    t0 = (p * t).sum(axis=1, keepdims=True)
    dx = x[None, :, :] - x0[:, None, :]  # (N, n_pixels, 2)
    cov = np.einsum("np,npi,npj->nij", p, dx, dx) + _PLANE_RIDGE * np.eye(2)
    cross = np.einsum("np,npi,np->ni", p, dx, t - t0)
    slopes = np.linalg.solve(cov, cross[..., None])[..., 0]
    plane = t0 + np.einsum("npi,ni->np", dx, slopes)
    return np.where(total > 0, plane, default)
