"""SubarrayDescription <-> base64 HDF5 text, for JSON metadata (training file, checkpoint).

The bytes are the HDF5 file ``SubarrayDescription.to_hdf`` writes, made in memory
(HDF5 core driver, no temporary file), so the instrument travels exactly as ctapipe
stores it and comes back with ``SubarrayDescription.from_hdf``.
"""

import base64
import itertools
import os

__all__ = ["subarray_from_base64", "subarray_to_base64"]

_counter = itertools.count()


def _memory_name():
    # the core driver still wants a (never created) file name; keep it unique
    return f"genshower-subarray-{os.getpid()}-{next(_counter)}.h5"


def subarray_to_base64(subarray):
    """Encode a ``SubarrayDescription`` as base64 text of its HDF5 representation."""
    import tables

    with tables.open_file(
        _memory_name(), mode="w", driver="H5FD_CORE", driver_core_backing_store=0
    ) as h5file:
        subarray.to_hdf(h5file)
        h5file.flush()
        image = h5file.get_file_image()
    return base64.b64encode(image).decode("ascii")


def subarray_from_base64(text):
    """Decode text made by :func:`subarray_to_base64` back into a ``SubarrayDescription``."""
    import tables
    from ctapipe.instrument import SubarrayDescription

    image = base64.b64decode(text)
    with tables.open_file(
        _memory_name(),
        mode="r",
        driver="H5FD_CORE",
        driver_core_image=image,
        driver_core_backing_store=0,
    ) as h5file:
        return SubarrayDescription.from_hdf(h5file)
