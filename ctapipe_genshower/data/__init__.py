"""Training data: ctapipe DL1 HDF5 -> :class:`TrainingArrays` -> compact training file.

``arrays``, ``training_file`` and ``inputs`` (a training run's input files: DL1 globs or one
prepared training file) need numpy (+ safetensors) only, so the training core can read
prepared data on a machine without ctapipe. The modules that need ctapipe are
imported only when used: ``dl1_file`` (the DL1 file layer: table paths, checks, telescope
types, simulation bookkeeping; shared with the validation reader) and ``dl1`` (the
training reader, imported on first access of :class:`DL1TrainingReader`).
"""

from .arrays import CONDITION_COLUMNS, CONDITION_UNITS, TrainingArrays
from .training_file import (
    TRAINING_FILE_FORMAT,
    TRAINING_FILE_FORMAT_VERSION,
    TrainingFile,
    TrainingFileWriter,
    is_training_file,
    write_training_file,
)

__all__ = [
    "CONDITION_COLUMNS",
    "CONDITION_UNITS",
    "TRAINING_FILE_FORMAT",
    "TRAINING_FILE_FORMAT_VERSION",
    "DL1TrainingReader",
    "TrainingArrays",
    "TrainingFile",
    "TrainingFileWriter",
    "is_training_file",
    "write_training_file",
]


def __getattr__(name):
    # the reader needs ctapipe; keep it out of the import of the numpy-only parts
    if name in ("DL1TrainingReader", "DEFAULT_SELECTION"):
        from . import dl1

        return getattr(dl1, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
