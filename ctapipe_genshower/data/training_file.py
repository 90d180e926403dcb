"""The compact training file: images, peak times and conditions in one safetensors file.

A DL1 file holds everything ctapipe knows about an event; training needs three arrays
and a little metadata. This module writes them as a safetensors file (tensors ``image``,
``peak_time``, ``conditions``, and ``true_image`` where the simulation gave one;
``__metadata__`` with ``format``, ``format_version`` and the JSON ``meta`` of
:class:`~ctapipe_genshower.data.arrays.TrainingArrays`) and reads them back lazily in row
ranges, so training can stream files larger than memory.

It needs numpy and safetensors only (no ctapipe, no torch): the GPU machine that trains
reads these files without ctapipe installed.

Writing is streaming too: :class:`TrainingFileWriter` appends chunks to one raw spool file
per tensor next to the output and assembles the safetensors file at the end (header, then
the spools copied in blocks), so memory stays bounded by the chunk size. The result goes
to a temporary file renamed into place (:func:`ctapipe_genshower.atomic.atomic_output`),
so a crash never leaves a half-written file.
"""

import json
import os
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np

from ..atomic import atomic_output
from .arrays import CONDITION_COLUMNS, TrainingArrays

__all__ = [
    "TRAINING_FILE_FORMAT",
    "TRAINING_FILE_FORMAT_VERSION",
    "TrainingFile",
    "TrainingFileWriter",
    "is_training_file",
    "write_training_file",
]

TRAINING_FILE_FORMAT = "ctapipe-genshower-training"
TRAINING_FILE_FORMAT_VERSION = "1"

#: Tensor names and their order in the file's byte buffer.
TENSORS = ("conditions", "image", "peak_time")
#: Tensors a file may hold after those (the simulated Cherenkov p.e. per pixel).
OPTIONAL_TENSORS = ("true_image",)
_COPY_BLOCK = 16 * 1024**2
_MAX_HEADER = 100 * 1024**2


def _read_header(path):
    """Header dict of a safetensors file, read with the standard library only.

    Raises
    ------
    ValueError
        Naming what is wrong, without the path (the callers add it).
    """
    path = Path(path)
    with path.open("rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise ValueError(f"not a safetensors file ({len(raw)} bytes, shorter than 8)")
        (n,) = struct.unpack("<Q", raw)
        if n > _MAX_HEADER:
            raise ValueError(f"not a safetensors file (header length {n})")
        text = f.read(n)
    if len(text) != n:
        raise ValueError(f"the header is cut off after {len(text)} of {n} bytes")
    try:
        header = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"not a safetensors file (header: {err})") from None
    if not isinstance(header, dict):
        raise ValueError("not a safetensors file (the header is not a JSON object)")
    return header, 8 + n


def _check_tensors(header, data_start, file_size):
    """Raise ValueError if the tensors of a training-file header are inconsistent."""
    missing = [name for name in TENSORS if name not in header]
    if missing:
        raise ValueError(f"the file lacks the tensors {missing}")
    tensors = _tensors_in(header)
    for name in tensors:
        entry = header[name]
        try:
            shape, (begin, end) = entry["shape"], entry["data_offsets"]
            consistent = (
                entry["dtype"] == "F32"
                and len(shape) == 2
                and 0 <= begin <= end
                and end - begin == 4 * int(np.prod(shape))
            )
        except (KeyError, TypeError, ValueError):
            consistent = False
        if not consistent:
            raise ValueError(f"the header entry of {name!r} is inconsistent: {entry}")
    rows = {header[name]["shape"][0] for name in TENSORS}
    pixel_shapes = {tuple(header[name]["shape"]) for name in tensors if name != "conditions"}
    if len(rows) != 1 or len(pixel_shapes) != 1:
        raise ValueError(f"the tensor shapes do not match: {[header[n]['shape'] for n in tensors]}")
    if header["conditions"]["shape"][1] != len(CONDITION_COLUMNS):
        raise ValueError(
            f"conditions have {header['conditions']['shape'][1]} columns, "
            f"expected {len(CONDITION_COLUMNS)}"
        )
    expected = data_start + max(header[name]["data_offsets"][1] for name in tensors)
    if file_size < expected:
        raise ValueError(f"{file_size} bytes, the header promises {expected}")
    if file_size > expected:
        raise ValueError(f"{file_size} bytes, {file_size - expected} more than the header promises")


def _tensors_in(header):
    """The tensors of a training-file header, in file order."""
    return (*TENSORS, *(name for name in OPTIONAL_TENSORS if name in header))


def is_training_file(path):
    """True if ``path`` is a compact training file (cheap: reads the header only)."""
    try:
        header, _ = _read_header(path)
    except (OSError, ValueError):
        return False
    return header.get("__metadata__", {}).get("format") == TRAINING_FILE_FORMAT


class TrainingFileWriter:
    """Write a training file chunk by chunk with memory bounded by the chunk size.

    Parameters
    ----------
    path : str or pathlib.Path
        Output file. It appears only when :meth:`close` succeeds.
    meta : dict, optional
        JSON-able metadata; can also be given (or updated) at :meth:`close`, e.g. once
        ``n_selected`` is known.

    Examples
    --------
    >>> with TrainingFileWriter("train.safetensors") as writer:  # doctest: +SKIP
    ...     for chunk in reader.iter_chunks():
    ...         writer.append(chunk)
    ...     writer.meta.update(reader.meta)
    """

    def __init__(self, path, meta=None):
        self.path = Path(path)
        self.meta = dict(meta or {})
        self.n_rows = 0
        self.n_pixels = None
        self._dir = tempfile.mkdtemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        self.tensors = None  # fixed by the first chunk: with or without true images
        self._spools = {}
        self._closed = False

    def append(self, arrays):
        """Append the rows of a :class:`TrainingArrays` (or a dict of its arrays).

        The first chunk decides whether the file holds ``true_image``; every later chunk
        must agree.
        """
        if isinstance(arrays, TrainingArrays):
            arrays = {name: getattr(arrays, name) for name in (*TENSORS, *OPTIONAL_TENSORS)}
        tensors = (*TENSORS, *(n for n in OPTIONAL_TENSORS if arrays.get(n) is not None))
        if self.tensors is None:
            self.tensors = tensors
            self._spools = {name: open(Path(self._dir) / name, "wb") for name in tensors}
        elif tensors != self.tensors:
            raise ValueError(
                f"Chunk with the arrays {list(tensors)}, earlier chunks had {list(self.tensors)}"
            )
        data = {name: np.ascontiguousarray(arrays[name], dtype=np.float32) for name in tensors}
        n = len(data["image"])
        n_pixels = data["image"].shape[1]
        if self.n_pixels is None:
            self.n_pixels = n_pixels
        if n_pixels != self.n_pixels or any(
            data[name].shape != (n, n_pixels) for name in tensors if name != "conditions"
        ):
            shapes = ", ".join(f"{k} {data[k].shape}" for k in tensors if k != "conditions")
            raise ValueError(f"Chunk with {shapes} does not match {self.n_pixels} pixels")
        if data["conditions"].shape != (n, len(CONDITION_COLUMNS)):
            raise ValueError(f"Chunk conditions have shape {data['conditions'].shape}")
        for name in tensors:
            data[name].astype("<f4", copy=False).tofile(self._spools[name])
        self.n_rows += n

    def close(self, meta=None):
        """Assemble the safetensors file and move it into place (atomically)."""
        if self._closed:
            return
        if meta is not None:
            self.meta.update(meta)
        for spool in self._spools.values():
            spool.close()
        try:
            if self.n_rows == 0:
                raise ValueError(f"No rows were written to {self.path}")
            self._assemble()
        finally:
            self._closed = True
            shutil.rmtree(self._dir, ignore_errors=True)

    def abort(self):
        """Drop everything written so far; no output file is created."""
        for spool in self._spools.values():
            spool.close()
        self._closed = True
        shutil.rmtree(self._dir, ignore_errors=True)

    def _assemble(self):
        shapes = {name: [self.n_rows, self.n_pixels] for name in self.tensors}
        shapes["conditions"] = [self.n_rows, len(CONDITION_COLUMNS)]
        header = {}
        offset = 0
        for name in self.tensors:
            size = 4 * int(np.prod(shapes[name]))
            header[name] = {
                "dtype": "F32",
                "shape": shapes[name],
                "data_offsets": [offset, offset + size],
            }
            offset += size
        header["__metadata__"] = {
            "format": TRAINING_FILE_FORMAT,
            "format_version": TRAINING_FILE_FORMAT_VERSION,
            "meta": json.dumps(self.meta),
        }
        text = json.dumps(header, separators=(",", ":")).encode()
        text += b" " * (-len(text) % 8)  # align the data like safetensors does

        with atomic_output(self.path) as tmp, Path(tmp).open("wb") as out:
            out.write(struct.pack("<Q", len(text)))
            out.write(text)
            for name in self.tensors:
                with (Path(self._dir) / name).open("rb") as spool:
                    shutil.copyfileobj(spool, out, _COPY_BLOCK)
            out.flush()
            # on disk before the rename, so a crash cannot leave a renamed but empty file
            os.fsync(out.fileno())

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self):
        if not getattr(self, "_closed", True):
            self.abort()


def write_training_file(path, arrays, overwrite=True):
    """Write a :class:`TrainingArrays` to ``path`` (atomic: temp file + rename).

    Parameters
    ----------
    path : str or pathlib.Path
        Output file (conventionally ``*.safetensors``).
    arrays : TrainingArrays
        Data to write; ``arrays.meta`` becomes the file's ``meta``.
    overwrite : bool
        If False, refuse to replace an existing file.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists and overwrite is False")
    with TrainingFileWriter(path, meta=arrays.meta) as writer:
        writer.append(arrays)
    return path


class TrainingFile:
    """Lazy reader of a compact training file.

    Parameters
    ----------
    path : str or pathlib.Path
        File written by :func:`write_training_file` or :class:`TrainingFileWriter`.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        One line naming the problem: ``truncated or corrupt training file <path>: ...``
        (cut off, header and size disagree, inconsistent tensors), another format, or
        another format version. The header and the file size are checked, the data are
        not read.

    Examples
    --------
    >>> f = TrainingFile("train.safetensors")  # doctest: +SKIP
    >>> len(f), f.meta["camera_name"]  # doctest: +SKIP
    >>> batch = f.read(0, 1024)  # dict with image, peak_time, conditions  # doctest: +SKIP
    """

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"Training file not found: {self.path}")
        damaged = f"truncated or corrupt training file {self.path}"
        try:
            header, data_start = _read_header(self.path)
        except ValueError as err:
            raise ValueError(f"{damaged}: {err}") from None
        metadata = header.get("__metadata__")
        metadata = metadata if isinstance(metadata, dict) else {}
        if metadata.get("format") != TRAINING_FILE_FORMAT:
            raise ValueError(
                f"{self.path}: not a ctapipe-genshower training file "
                f"(format {metadata.get('format')!r})"
            )
        if metadata.get("format_version") != TRAINING_FILE_FORMAT_VERSION:
            raise ValueError(
                f"{self.path}: training file format version {metadata.get('format_version')!r} "
                f"is not supported (this version reads {TRAINING_FILE_FORMAT_VERSION!r})"
            )
        try:
            _check_tensors(header, data_start, self.path.stat().st_size)
            self.meta = json.loads(metadata.get("meta", "{}"))
        except ValueError as err:  # json.JSONDecodeError is one
            raise ValueError(f"{damaged}: {err}") from None
        if not isinstance(self.meta, dict):
            raise ValueError(f"{damaged}: its meta is not a JSON object")
        #: the tensors in the file: ``TENSORS``, then ``true_image`` where it was written
        self.tensors = _tensors_in(header)
        self.shapes = {name: tuple(header[name]["shape"]) for name in self.tensors}
        self._offsets = {
            name: data_start + header[name]["data_offsets"][0] for name in self.tensors
        }

    def __len__(self):
        return self.shapes["image"][0]

    @property
    def n_pixels(self):
        return self.shapes["image"][1]

    def read(self, start=0, stop=None):
        """Rows ``start:stop`` as ``dict(image=..., peak_time=..., conditions=...)`` (float32),
        with ``true_image`` where the file has it."""
        from safetensors import safe_open

        start, stop, _ = slice(start, stop).indices(len(self))
        with safe_open(self.path, framework="numpy") as f:
            return {name: f.get_slice(name)[start:stop] for name in self.tensors}

    def take(self, indices):
        """Arbitrary rows (e.g. a shuffled batch), read through a memory map."""
        indices = np.asarray(indices, dtype=np.int64)
        out = {}
        for name in self.tensors:
            mm = np.memmap(
                self.path,
                dtype="<f4",
                mode="r",
                offset=self._offsets[name],
                shape=self.shapes[name],
            )
            out[name] = np.asarray(mm[indices], dtype=np.float32)
            del mm
        return out

    def iter_chunks(self, chunk_size=65536):
        """Yield consecutive row chunks (dicts as in :meth:`read`)."""
        for start in range(0, len(self), chunk_size):
            yield self.read(start, start + chunk_size)

    def to_arrays(self, start=0, stop=None):
        """Rows ``start:stop`` as a :class:`TrainingArrays` with this file's ``meta``."""
        return TrainingArrays(**self.read(start, stop), meta=dict(self.meta))

    def __repr__(self):
        name = self.__class__.__name__
        return f"{name}({str(self.path)!r}, n={len(self)}, n_pixels={self.n_pixels})"
