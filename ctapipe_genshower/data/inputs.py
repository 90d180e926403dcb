"""The input files of a training run: DL1 files (globs allowed) or one prepared training file.

Standard library only (plus the training file's header check), no ctapipe::

    paths, prepared = training_inputs(["dl1/*.h5"])  # -> ([...], False)
    paths, prepared = training_inputs(["lst.train.safetensors"])  # -> ([...], True)
"""

import glob
import os
from pathlib import Path

from .training_file import is_training_file

__all__ = ["expand_inputs", "is_prepared_input", "training_inputs"]


def expand_inputs(patterns):
    """The files named by file names and glob patterns, in the order given.

    Parameters
    ----------
    patterns : iterable of str or path-like
        File names or globs (``~`` is expanded); a glob's matches are sorted.

    Returns
    -------
    list of pathlib.Path

    Raises
    ------
    FileNotFoundError
        ``Input file not found: <path>`` for a named file that is not there.
    ValueError
        ``No input file matches <pattern>`` for a glob without matches.
    """
    paths = []
    for pattern in patterns:
        pattern = os.path.expanduser(pattern)
        if glob.has_magic(pattern):
            matches = sorted(glob.glob(pattern))
            if not matches:
                raise ValueError(f"No input file matches {pattern!r}")
            paths.extend(Path(m) for m in matches)
        else:
            path = Path(pattern)
            if not path.is_file():
                raise FileNotFoundError(f"Input file not found: {path}")
            paths.append(path)
    return paths


def is_prepared_input(path):
    """Whether ``path`` is meant as a prepared training file: by its header or, damaged or
    not, by its name (``*.safetensors``), so that a damaged one is reported as such."""
    return is_training_file(path) or Path(path).name.endswith(".safetensors")


def training_inputs(patterns):
    """The input files of a training run and whether it is one prepared training file.

    Parameters
    ----------
    patterns : iterable of str or path-like
        DL1 files or globs, or one prepared training file (see :func:`expand_inputs`).

    Returns
    -------
    paths : list of pathlib.Path
    prepared : bool
        True for one prepared training file, False for DL1 files.

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`expand_inputs`; ValueError also for a training file among other inputs.
    """
    paths = expand_inputs(patterns)
    n_prepared = sum(is_prepared_input(p) for p in paths)
    if n_prepared and len(paths) > 1:
        raise ValueError(
            "Give either DL1 files or exactly one prepared training file, not a mix "
            f"or several training files ({len(paths)} inputs)"
        )
    return paths, n_prepared == 1
