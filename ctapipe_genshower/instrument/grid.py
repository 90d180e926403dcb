"""Camera pixels <-> square grid, taken from ctapipe's own cartesian representation.

Convolutional networks need a square grid. ctapipe's
``CameraGeometry.image_to_cartesian_representation`` maps a hexagonal (or square) camera
to such a grid bit-exactly. Here that mapping is computed once, with ctapipe, as integer
index arrays, so the training core (torch + numpy, e.g. on a GPU machine without ctapipe)
can scatter and gather images without ctapipe.
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["CameraGridMapping", "pixel_fov_positions"]


@dataclass(frozen=True)
class CameraGridMapping:
    """Index mapping between camera pixel order and a ``(height, width)`` grid.

    Attributes
    ----------
    shape : tuple of int
        Grid shape ``(height, width)`` as in ctapipe's cartesian representation.
    flat_index : numpy.ndarray
        For each camera pixel, its flat index into the grid (int64, shape ``(n_pixels,)``).
    """

    shape: tuple
    flat_index: np.ndarray

    @classmethod
    def from_geometry(cls, geometry):
        """Derive the mapping from ctapipe by mapping the image ``[0, 1, ..., n_pixels-1]``."""
        pixel_ids = np.arange(geometry.n_pixels, dtype=np.float64)
        grid = geometry.image_to_cartesian_representation(pixel_ids)
        valid = np.isfinite(grid)
        flat_index = np.empty(geometry.n_pixels, dtype=np.int64)
        flat_index[grid[valid].astype(np.int64)] = np.flatnonzero(valid.ravel())
        if np.count_nonzero(valid) != geometry.n_pixels:
            raise ValueError(
                f"Camera {geometry.name!r}: cartesian representation holds "
                f"{np.count_nonzero(valid)} of {geometry.n_pixels} pixels"
            )
        return cls(shape=tuple(int(s) for s in grid.shape), flat_index=flat_index)

    @property
    def n_pixels(self):
        return len(self.flat_index)

    @property
    def mask(self):
        """Boolean grid, True where a real camera pixel sits."""
        mask = np.zeros(self.shape[0] * self.shape[1], dtype=bool)
        mask[self.flat_index] = True
        return mask.reshape(self.shape)

    def to_grid(self, images, fill_value=0.0):
        """Images ``(..., n_pixels)`` -> grids ``(..., height, width)``, empty cells filled."""
        images = np.asarray(images)
        lead = images.shape[:-1]
        grid = np.full((*lead, self.shape[0] * self.shape[1]), fill_value, dtype=images.dtype)
        grid[..., self.flat_index] = images
        return grid.reshape(*lead, *self.shape)

    def from_grid(self, grids):
        """Grids ``(..., height, width)`` -> images ``(..., n_pixels)`` in camera pixel order."""
        grids = np.asarray(grids)
        lead = grids.shape[:-2]
        return grids.reshape(*lead, -1)[..., self.flat_index]


def pixel_fov_positions(geometry):
    """Pixel positions in ctapipe's ``TelescopeFrame`` (deg): ``(lon, lat)`` lists.

    The frame of the true source position in the training conditions; the geometry
    channels of the pixel model (``ctapipe_genshower.model.geometry``) are built on it.
    """
    from ctapipe.coordinates import TelescopeFrame

    fov = geometry.transform_to(TelescopeFrame())
    return fov.pix_x.to_value("deg").tolist(), fov.pix_y.to_value("deg").tolist()
