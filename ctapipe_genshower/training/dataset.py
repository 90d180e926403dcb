"""Training datasets: events read in row ranges (numpy only).

A dataset is duck-typed: ``len(dataset)``, ``dataset.meta`` (the training data's meta, see
``docs/design.md``) and ``dataset.read(start, stop) -> {"image", "peak_time",
"conditions"}`` (plus ``"true_image"`` where the simulation gave them). The compact training
file (``data.TrainingFile``) is one; an in-memory ``TrainingArrays`` becomes one with
:func:`as_dataset`; :class:`SignalDataset` shows another dataset as a pixel-response model
learns it. ("Source" is kept for ctapipe's EventSources in this project.)
"""

import numpy as np

from ..model.pixel_response import signal_view

__all__ = [
    "REQUIRED_META",
    "ArrayDataset",
    "SignalDataset",
    "SubsetDataset",
    "as_dataset",
    "check_training_meta",
    "read_checked",
    "split_dataset",
]

#: Meta keys training needs: the camera grid and the thrown/selected bookkeeping.
REQUIRED_META = ("grid_shape", "grid_index", "subarray", "thrown", "n_thrown", "n_selected")
_ARRAYS = ("image", "peak_time", "conditions")


class ArrayDataset:
    """In-memory dataset (e.g. of a ``TrainingArrays``) with the chunked-read protocol."""

    def __init__(self, image, peak_time, conditions, meta, true_image=None):
        self.image, self.peak_time, self.conditions, self.meta = image, peak_time, conditions, meta
        self.true_image = true_image
        if not len(image) == len(peak_time) == len(conditions):
            raise ValueError("image, peak_time and conditions differ in length")
        if true_image is not None and len(true_image) != len(image):
            raise ValueError("true_image and image differ in length")

    def __len__(self):
        return len(self.image)

    def read(self, start, stop):
        """Events ``start..stop`` as a dict of numpy arrays."""
        batch = {
            "image": self.image[start:stop],
            "peak_time": self.peak_time[start:stop],
            "conditions": self.conditions[start:stop],
        }
        if self.true_image is not None:
            batch["true_image"] = self.true_image[start:stop]
        return batch


class SignalDataset:
    """Another dataset as a pixel-response model learns it: true images and signal times
    (:func:`~ctapipe_genshower.model.pixel_response.signal_view`) in place of the DL1 images.
    """

    def __init__(self, dataset):
        self.dataset, self.meta = dataset, dataset.meta

    def __len__(self):
        return len(self.dataset)

    def read(self, start, stop):
        """Events ``start..stop``: ``image`` = true p.e., ``peak_time`` = signal times."""
        batch = self.dataset.read(start, stop)
        if batch.get("true_image") is None:
            raise ValueError(
                "a model with a learned pixel response needs training data with true images "
                "(prepare it from simulated DL1 files that have them)"
            )
        return signal_view(batch)


class SubsetDataset:
    """Events ``start..stop`` of another dataset."""

    def __init__(self, dataset, start, stop):
        n = len(dataset)
        self.dataset, self.start, self.stop = dataset, max(0, int(start)), min(n, int(stop))
        self.meta = dataset.meta

    def __len__(self):
        return max(0, self.stop - self.start)

    def read(self, start, stop):
        """Events ``start..stop`` of the subset."""
        stop = min(stop, len(self))
        return self.dataset.read(self.start + start, self.start + stop)


def as_dataset(data):
    """A dataset from a ``TrainingArrays``-like object; a dataset passes through."""
    if hasattr(data, "read") and hasattr(data, "meta"):
        return data
    if all(hasattr(data, k) for k in (*_ARRAYS, "meta")):
        return ArrayDataset(
            data.image,
            data.peak_time,
            data.conditions,
            data.meta,
            true_image=getattr(data, "true_image", None),
        )
    raise TypeError(f"{type(data).__name__} is neither a training dataset nor TrainingArrays")


def split_dataset(dataset, validation_fraction):
    """``(train, validation)``: the last ``validation_fraction`` of the events validate.

    ``validation`` is None for a fraction of zero.
    """
    dataset = as_dataset(dataset)
    if not 0 <= validation_fraction < 1:
        raise ValueError(f"validation fraction must be in [0, 1), got {validation_fraction}")
    n = len(dataset)
    n_val = round(n * validation_fraction)
    if validation_fraction > 0 and n_val == 0:
        n_val = 1
    if n - n_val < 1:
        raise ValueError(
            f"{n} events are too few for a validation fraction of {validation_fraction}"
        )
    return SubsetDataset(dataset, 0, n - n_val), (
        SubsetDataset(dataset, n - n_val, n) if n_val else None
    )


def read_checked(dataset, start, stop):
    """``dataset.read(start, stop)``, refusing missing arrays and NaN or inf values."""
    batch = dataset.read(start, stop)
    for key in _ARRAYS:
        if key not in batch:
            raise ValueError(f"dataset.read({start}, {stop}) lacks {key!r}")
    for key in (*_ARRAYS, "true_image"):
        if key in batch and not np.isfinite(batch[key]).all():
            raise ValueError(f"training events {start}..{stop} contain NaN or inf in {key!r}")
    return batch


def check_training_meta(dataset):
    """Refuse a dataset that cannot train a generator (empty, meta incomplete)."""
    meta = dataset.meta
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise ValueError(f"training data meta lacks {', '.join(missing)}")
    if len(dataset) < 1:
        raise ValueError("the training data holds no events")
    if not 0 < int(meta["n_selected"]) <= int(meta["n_thrown"]):
        raise ValueError(
            f"need 0 < n_selected <= n_thrown, got {meta['n_selected']} and {meta['n_thrown']}"
        )


def pixel_fov(meta):
    """``(lon, lat)`` of every camera pixel in the telescope frame (deg) of a training file.

    From ``meta["pixel_fov"]`` (written with the training file); files without it (older
    ones) need ctapipe to derive it from the stored instrument.
    """
    if "pixel_fov" in meta:
        return meta["pixel_fov"]
    from ..instrument.description import subarray_from_dict
    from ..instrument.grid import pixel_fov_positions

    subarray = subarray_from_dict(meta["subarray"])
    return pixel_fov_positions(subarray.tel[int(meta["tel_ids"][0])].camera.geometry)
