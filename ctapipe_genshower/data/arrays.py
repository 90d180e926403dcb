"""The in-memory training data: images, peak times and conditions (numpy only).

This is the hand-over point between the DL1 reader (ctapipe, units) and the model
(torch, plain floats): every array here is a bare float32 with the unit fixed by
:data:`CONDITION_COLUMNS` and the docstrings below. It must stay importable with numpy
alone, because the training core runs on machines without ctapipe.
"""

from dataclasses import dataclass, field

import numpy as np

__all__ = ["CONDITION_COLUMNS", "CONDITION_UNITS", "TrainingArrays"]

#: Order of the columns of ``TrainingArrays.conditions`` (see docs/design.md).
CONDITION_COLUMNS = (
    "log10_energy",
    "impact_x",
    "impact_y",
    "source_fov_lon",
    "source_fov_lat",
)

#: Unit (or transform) of each condition column.
CONDITION_UNITS = {
    "log10_energy": "log10(true_energy / TeV)",
    "impact_x": "m",
    "impact_y": "m",
    "source_fov_lon": "deg",
    "source_fov_lat": "deg",
}


@dataclass
class TrainingArrays:
    """Images and their shower conditions for one telescope type.

    Attributes
    ----------
    image : numpy.ndarray
        ``(N, n_pixels)`` float32, charge in p.e., camera pixel order.
    peak_time : numpy.ndarray
        ``(N, n_pixels)`` float32, ns.
    conditions : numpy.ndarray
        ``(N, 5)`` float32, columns :data:`CONDITION_COLUMNS`.
    meta : dict
        JSON-able description of the data (camera, grid mapping, thrown distribution,
        ``n_thrown``, ``n_selected``, selection, input files, versions); see docs/design.md.
    true_image : numpy.ndarray or None
        ``(N, n_pixels)`` float32, the simulated Cherenkov photo-electrons of each pixel
        (ctapipe's ``true_image``, no noise), where the simulation provides them: what a
        model with a learned pixel response (``docs/model.md``) generates.
    """

    image: np.ndarray
    peak_time: np.ndarray
    conditions: np.ndarray
    meta: dict = field(default_factory=dict)
    true_image: np.ndarray | None = None

    def __post_init__(self):
        self.image = np.ascontiguousarray(self.image, dtype=np.float32)
        self.peak_time = np.ascontiguousarray(self.peak_time, dtype=np.float32)
        self.conditions = np.ascontiguousarray(self.conditions, dtype=np.float32)
        if self.true_image is not None:
            self.true_image = np.ascontiguousarray(self.true_image, dtype=np.float32)
        n = len(self.image)
        if self.image.ndim != 2:
            raise ValueError(f"image must be (N, n_pixels), got shape {self.image.shape}")
        if self.peak_time.shape != self.image.shape:
            raise ValueError(
                f"peak_time shape {self.peak_time.shape} differs from image shape "
                f"{self.image.shape}"
            )
        if self.true_image is not None and self.true_image.shape != self.image.shape:
            raise ValueError(
                f"true_image shape {self.true_image.shape} differs from image shape "
                f"{self.image.shape}"
            )
        if self.conditions.shape != (n, len(CONDITION_COLUMNS)):
            raise ValueError(
                f"conditions must be ({n}, {len(CONDITION_COLUMNS)}), got {self.conditions.shape}"
            )

    def __len__(self):
        return len(self.image)

    @property
    def n_pixels(self):
        return self.image.shape[1]

    def condition(self, name):
        """One column of ``conditions`` by its name in :data:`CONDITION_COLUMNS`."""
        return self.conditions[:, CONDITION_COLUMNS.index(name)]

    def subset(self, index):
        """A new ``TrainingArrays`` with the rows ``index`` (slice, int array or bool mask).

        ``meta`` is copied; ``n_selected`` is left as it was (it describes the whole
        selection, not the subset).
        """
        return TrainingArrays(
            image=self.image[index],
            peak_time=self.peak_time[index],
            conditions=self.conditions[index],
            meta=dict(self.meta),
            true_image=None if self.true_image is None else self.true_image[index],
        )

    @classmethod
    def concatenate(cls, parts, meta=None):
        """Join several ``TrainingArrays`` row-wise (``meta`` from the first unless given).

        ``true_image`` is kept only if every part has it.
        """
        parts = list(parts)
        if not parts:
            raise ValueError("Nothing to concatenate")
        n_pixels = {p.n_pixels for p in parts}
        if len(n_pixels) != 1:
            raise ValueError(f"Cannot concatenate images with different pixel counts {n_pixels}")
        return cls(
            image=np.concatenate([p.image for p in parts]),
            peak_time=np.concatenate([p.peak_time for p in parts]),
            conditions=np.concatenate([p.conditions for p in parts]),
            meta=dict(parts[0].meta) if meta is None else meta,
            true_image=np.concatenate([p.true_image for p in parts])
            if all(p.true_image is not None for p in parts)
            else None,
        )
