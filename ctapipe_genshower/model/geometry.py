"""Geometry channels: where the shower conditions say the image should be, per pixel.

Without them the U-Net must learn from five scalars (through FiLM) where on the camera an
image belongs. CaloDiffusion (arXiv 2308.03876) adds the detector geometry as input
channels; here the geometry channels are computed from each shower's conditions, so the
convolutions see the expected image position and axis directly (CoordConv):

``u``
    Pixel offset from the true source position along the expected image axis (deg).
``v``
    Pixel offset across the expected image axis (deg).
``u - r``
    ``u`` minus the expected distance ``r`` of the image centroid from the source (deg).

The image axis of a hadronic or electromagnetic shower points from the source position in
the direction of the impact point, as the telescope sees it. The direction in the camera is
``psi = sign * atan2(impact_y, impact_x) + offset`` and the centroid distance ``r = scale *
impact_distance``; ``sign``, ``offset`` and ``scale`` depend on the frame conventions and
the telescope and are *fitted on the training images* (charge-weighted centroids of bright,
near showers), not assumed. Everything else is up to the network: the channels only save it
from having to invent the coordinate system.
"""

import math

import numpy as np
import torch

__all__ = ["N_GEOMETRY_MAPS", "GeometryMaps"]

#: Number of geometry channels ``(u, v, u - r)``.
N_GEOMETRY_MAPS = 3
#: Number of per-event scalars the maps are built from: source lon, lat, axis angle, ``r``.
N_GEOMETRY_SCALARS = 4

# condition columns (``CONDITION_NAMES``): log10 E, impact_x, impact_y, source lon, lat
_IMPACT_X, _IMPACT_Y, _SOURCE_LON, _SOURCE_LAT = 1, 2, 3, 4


class GeometryMaps:
    """Per-pixel geometry channels of each shower (fitted once, stored in the checkpoint).

    Parameters
    ----------
    pixel_lon, pixel_lat : array-like, shape (n_pixels,)
        Pixel positions in the telescope frame (deg), camera pixel order.
    sign : {1, -1}
        Orientation of the impact azimuth in the camera.
    offset : float
        Rotation of the image axis relative to the impact azimuth (rad).
    scale : float
        Expected centroid distance per metre of impact distance (deg / m).
    """

    def __init__(self, pixel_lon, pixel_lat, sign=-1, offset=-0.5 * math.pi, scale=0.007):
        self.pixel_lon = np.asarray(pixel_lon, dtype=np.float64)
        self.pixel_lat = np.asarray(pixel_lat, dtype=np.float64)
        if self.pixel_lon.shape != self.pixel_lat.shape or self.pixel_lon.ndim != 1:
            raise ValueError("pixel_lon and pixel_lat must be 1d arrays of the same length")
        if sign not in (1, -1):
            raise ValueError(f"sign must be 1 or -1, got {sign}")
        self.sign = int(sign)
        self.offset = float(offset)
        self.scale = float(scale)

    @property
    def n_pixels(self):
        """Number of camera pixels."""
        return len(self.pixel_lon)

    def fit(self, image, conditions, min_events=20):
        """Fit ``sign``, ``offset`` and ``scale`` on training images.

        Uses the brightest half of the images with the source inside the inner half of the
        camera and the impact point within the median distance: there the charge-weighted
        centroid of the image (pixels above 5 % of the brightest) is a good estimate of
        where the image is.

        Parameters
        ----------
        image : array-like, shape (N, n_pixels)
            Charges (p.e.).
        conditions : array-like, shape (N, 5)
            ``CONDITION_NAMES`` of each image.
        min_events : int
            Fewer usable images keep the current (default) values.
        """
        image = np.asarray(image, dtype=np.float64)
        c = np.asarray(conditions, dtype=np.float64)
        size = image.sum(1)
        distance = np.hypot(c[:, _IMPACT_X], c[:, _IMPACT_Y])
        fov_radius = np.hypot(self.pixel_lon, self.pixel_lat).max()
        near = (
            (size >= np.median(size))
            & (distance <= np.median(distance))
            & (distance > 0)
            & (np.hypot(c[:, _SOURCE_LON], c[:, _SOURCE_LAT]) < 0.5 * fov_radius)
        )
        if near.sum() < min_events:
            return self
        weight = np.clip(image[near] - 0.05 * image[near].max(1, keepdims=True), 0, None)
        weight_sum = np.maximum(weight.sum(1), 1e-9)
        dx = (weight * self.pixel_lon).sum(1) / weight_sum - c[near, _SOURCE_LON]
        dy = (weight * self.pixel_lat).sum(1) / weight_sum - c[near, _SOURCE_LAT]
        theta = np.arctan2(dy, dx)
        azimuth = np.arctan2(c[near, _IMPACT_Y], c[near, _IMPACT_X])
        # the orientation whose axis directions agree best (largest mean resultant length)
        resultants = {s: np.exp(1j * (theta - s * azimuth)).mean() for s in (1, -1)}
        self.sign = max(resultants, key=lambda s: abs(resultants[s]))
        self.offset = float(np.angle(resultants[self.sign]))
        self.scale = float(np.median(np.hypot(dx, dy) / distance[near]))
        return self

    def scalars(self, conditions):
        """Per-event ``(N, 4)`` float32: source lon, lat (deg), axis angle (rad), ``r`` (deg)."""
        c = torch.as_tensor(np.asarray(conditions, dtype=np.float64))
        psi = self.sign * torch.atan2(c[:, _IMPACT_Y], c[:, _IMPACT_X]) + self.offset
        r = self.scale * torch.hypot(c[:, _IMPACT_X], c[:, _IMPACT_Y])
        return torch.stack([c[:, _SOURCE_LON], c[:, _SOURCE_LAT], psi, r], dim=1).float()

    def pixel_positions(self):
        """``(1, 2, n_pixels)`` float32 pixel lon, lat (deg), for ``PixelGrid.to_grid``."""
        positions = np.stack([self.pixel_lon, self.pixel_lat])[None]
        return torch.as_tensor(positions, dtype=torch.float32)

    @staticmethod
    def maps(scalars, positions):
        """Geometry channels ``(N, 3, H, W)`` from :meth:`scalars` and gridded positions.

        Parameters
        ----------
        scalars : torch.Tensor, shape (N, 4)
        positions : torch.Tensor, shape (1, 2, H, W)
            Pixel lon, lat on the grid (``PixelGrid.to_grid(pixel_positions())``).
        """
        s = scalars[:, :, None, None]
        dx = positions[:, :1] - s[:, 0:1]
        dy = positions[:, 1:2] - s[:, 1:2]
        cos, sin = torch.cos(s[:, 2:3]), torch.sin(s[:, 2:3])
        u = dx * cos + dy * sin
        v = -dx * sin + dy * cos
        return torch.cat([u, v, u - s[:, 3:4]], dim=1)

    def to_dict(self):
        """JSON-able dict."""
        return {
            "pixel_lon": self.pixel_lon.tolist(),
            "pixel_lat": self.pixel_lat.tolist(),
            "sign": self.sign,
            "offset": self.offset,
            "scale": self.scale,
        }

    @classmethod
    def from_dict(cls, data):
        """Inverse of :meth:`to_dict`."""
        return cls(**data)
