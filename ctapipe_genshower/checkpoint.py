"""The generator checkpoint: one safetensors file with EMA weights and JSON metadata.

Layout (safetensors): 8-byte little-endian header length, a JSON header, the tensor bytes.
The header's ``__metadata__`` (string -> string) holds

* ``format = "ctapipe-genshower-model"`` and ``format_version``;
* JSON strings ``config`` (networks, sampler defaults, training settings), ``transforms``
  (normalisation statistics, grid mapping, saturation), ``training_meta`` (the training
  data's ``meta``: camera, ``subarray`` (the training files' ``SubarrayDescription`` as
  plain JSON, :mod:`ctapipe_genshower.instrument.description`), ``thrown``, ``n_thrown``,
  ``n_selected``, selection, input files), ``domain`` (min/max of every condition and of
  the size seen in training) and ``provenance`` (versions, steps, seed, creation time).

Input files are recorded by name, without their directories (:func:`local_paths_removed`):
a model file is shared, and a path on the machine that trained it says nothing elsewhere
but where someone kept their files; the inputs' content is identified by the recorded
sha256 where one is recorded (the teacher, the refined model's input). The training-state
file, which never leaves the training machine, keeps the full paths its resume check reads.

Nothing in the file can run code when it is loaded: tensors are read with safetensors,
everything else is JSON decoded into plain values. Format version 1 embedded the subarray
as an HDF5 image, which PyTables would unpickle; such files are refused, and
:func:`upgrade_checkpoint` converts one the user trusts.

Tensors: ``pixel.*`` (U-Net, EMA) and ``shower.*`` (shower-level model, EMA-free); a refined
model (:func:`save_refined`) adds ``refiner.*`` (the density-ratio classifier,
:mod:`ctapipe_genshower.model.density_ratio`) and the JSON field ``refiner``. No optimizer
state: that lives in a separate training-state file (``training/state.py``).

:func:`save_generator` and :func:`load_generator_modules` turn the networks into this file
and back; they are the only code that knows the tensor prefixes and the metadata keys.
:func:`read_metadata`, :func:`claims_file` and :func:`parameter_counts` need only the
standard library (cheap enough for an EventSource's ``is_compatible``); torch, safetensors
and the model package are imported only to write or load weights. Writes are atomic
(:func:`ctapipe_genshower.atomic.atomic_output`).
"""

import hashlib
import json
import struct
import time
from pathlib import Path
from typing import NamedTuple

from .atomic import atomic_output

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "CheckpointError",
    "GeneratorModules",
    "claims_file",
    "file_sha256",
    "is_checkpoint",
    "load_checkpoint",
    "load_generator_modules",
    "local_paths_removed",
    "parameter_counts",
    "read_header",
    "read_metadata",
    "save_checkpoint",
    "save_generator",
    "save_refined",
    "upgrade_checkpoint",
    "write_safetensors_atomic",
]

FORMAT = "ctapipe-genshower-model"
FORMAT_VERSION = "2"
#: The version whose instrument description was an HDF5 image (unsafe to decode).
_HDF5_SUBARRAY_VERSION = "1"
JSON_KEYS = ("config", "transforms", "training_meta", "domain", "provenance")
#: Tensor-name prefixes of the two networks and of the optional refiner.
PIXEL_PREFIX, SHOWER_PREFIX, REFINER_PREFIX = "pixel", "shower", "refiner"
#: Metadata field of the optional refiner (JSON).
REFINER_KEY = "refiner"
_MAX_HEADER = 100_000_000
#: Metadata entries (at any depth) that hold local file paths, and the command line.
_PATH_KEYS = frozenset({"input_files", "training_file", "init_model"})
_COMMAND_KEY = "command_line"


class CheckpointError(ValueError):
    """A file is not a readable checkpoint (missing, truncated, corrupt, other format/version)."""


def read_header(path):
    """Read and check the safetensors JSON header of ``path`` (standard library only).

    Raises :class:`CheckpointError` when the file is missing, shorter than its header says,
    or its header is not valid safetensors JSON.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    file_size = path.stat().st_size
    with path.open("rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise CheckpointError(
                f"{path}: truncated or not a safetensors file ({file_size} bytes)"
            )
        (n,) = struct.unpack("<Q", raw)
        if n > _MAX_HEADER or 8 + n > file_size:
            raise CheckpointError(
                f"{path}: truncated or not a safetensors file "
                f"(header length {n}, file {file_size} bytes)"
            )
        try:
            header = json.loads(f.read(n).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise CheckpointError(f"{path}: corrupt safetensors header (not JSON)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: corrupt safetensors header")
    end = 0
    for key, info in header.items():
        if key == "__metadata__":
            continue
        try:
            end = max(end, int(info["data_offsets"][1]))
        except (TypeError, KeyError, IndexError, ValueError):
            raise CheckpointError(f"{path}: corrupt safetensors header (tensor {key!r})") from None
    if 8 + n + end != file_size:
        raise CheckpointError(
            f"{path}: truncated or corrupt: expected {8 + n + end} bytes, found {file_size}"
        )
    return header


def read_metadata(path, expected_format=FORMAT, expected_version=FORMAT_VERSION):
    """Metadata of a checkpoint, JSON fields decoded (standard library only).

    Returns
    -------
    dict
        ``format``, ``format_version`` and the decoded ``config``, ``transforms``,
        ``training_meta``, ``domain``, ``provenance``.
    """
    header = read_header(path)
    meta = header.get("__metadata__") or {}
    fmt = meta.get("format")
    if fmt != expected_format:
        raise CheckpointError(f"{path}: not a {expected_format} file (format {fmt!r})")
    version = meta.get("format_version")
    if expected_format == FORMAT and version == _HDF5_SUBARRAY_VERSION != expected_version:
        raise CheckpointError(
            f"{path}: format_version 1 model files embed their instrument as HDF5, which can"
            " run code when decoded, and are refused; convert a file you trust with"
            " ctapipe_genshower.checkpoint.upgrade_checkpoint(path, new_path,"
            " trust_embedded_hdf5=True), or retrain"
        )
    if version != expected_version:
        raise CheckpointError(
            f"{path}: {expected_format} format_version {version!r} is not supported "
            f"(this version reads {expected_version!r})"
        )
    out = {"format": fmt, "format_version": version}
    for key, value in meta.items():
        if key in ("format", "format_version"):
            continue
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            raise CheckpointError(f"{path}: corrupt metadata field {key!r}") from None
    missing = [k for k in JSON_KEYS if k not in out] if expected_format == FORMAT else []
    if missing:
        raise CheckpointError(f"{path}: checkpoint metadata lacks {', '.join(missing)}")
    return out


def is_checkpoint(path):
    """True if ``path`` is a readable checkpoint of this format and version (never raises)."""
    try:
        read_metadata(path)
    except (CheckpointError, OSError):
        return False
    return True


def claims_file(path, max_scanned=1 << 20):
    """True if ``path`` is, or names itself, a file of this format (never raises).

    A damaged model (truncated, another ``format_version``) whose header still names the
    format is claimed too, so that an EventSource can refuse it with the reader's clear
    error instead of ctapipe's "no compatible EventSource".
    """
    try:
        path = Path(path)
        if not path.is_file():
            return False
        if is_checkpoint(path):
            return True
        with path.open("rb") as f:
            raw = f.read(8)
            if len(raw) < 8:
                return False
            (header_length,) = struct.unpack("<Q", raw)
            header = f.read(min(header_length, max_scanned))
        return f'"{FORMAT}"'.encode() in header
    except OSError:
        return False


def file_sha256(path, chunk_size=1 << 20):
    """sha256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def parameter_counts(path):
    """Number of weights per network (``pixel``, ``shower``) from the header alone."""
    counts = {}
    for key, info in read_header(path).items():
        if key == "__metadata__":
            continue
        n = 1
        for dim in info["shape"]:
            n *= dim
        group = key.split(".")[0]
        counts[group] = counts.get(group, 0) + n
    return counts


def write_safetensors_atomic(path, tensors, metadata):
    """Write torch ``tensors`` with string ``metadata`` to ``path`` atomically."""
    from safetensors.torch import save_file

    with atomic_output(path) as tmp:
        save_file(
            {k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp, metadata=metadata
        )


def _file_name(text):
    """``text`` without its directories if it is a path (``/a/b.h5`` -> ``b.h5``)."""
    return text.replace("\\", "/").rsplit("/", 1)[-1] if isinstance(text, str) else text


def _is_local_path(text):
    """Whether a command-line value names a file here (absolute, home-relative, or an
    existing relative path); ``x/y > 1`` in a selection is left alone."""
    if "/" not in text and "\\" not in text:
        return False
    return text.startswith(("/", "~", "\\")) or Path(text).exists()


def _command_without_directories(command):
    """A command line with each path argument (``-i /a/b.h5``, ``--input=/a/b.h5``) reduced
    to its file name; the program too."""
    words = []
    for word in command.split(" "):
        option, sep, value = word.partition("=") if word.startswith("-") else ("", "", word)
        words.append(option + sep + (_file_name(value) if _is_local_path(value) else value))
    return " ".join(words)


def local_paths_removed(value):
    """A copy of the JSON-able ``value`` whose file paths keep only the file names.

    The entries named ``input_files``, ``training_file`` and ``init_model`` (at any depth)
    and the ``command_line`` are rewritten; everything else is returned unchanged.
    """
    if isinstance(value, list):
        return [local_paths_removed(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        if key in _PATH_KEYS:
            item = [_file_name(v) for v in item] if isinstance(item, list) else _file_name(item)
        elif key == _COMMAND_KEY and isinstance(item, str):
            item = _command_without_directories(item)
        else:
            item = local_paths_removed(item)
        out[key] = item
    return out


def save_checkpoint(path, tensors, config, transforms, training_meta, domain, provenance):
    """Write a checkpoint (EMA weights ``tensors`` + JSON-able metadata) atomically.

    File paths in ``config``, ``training_meta`` and ``provenance`` are recorded by name
    (:func:`local_paths_removed`).
    """
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION}
    for key, value in zip(
        JSON_KEYS, (config, transforms, training_meta, domain, provenance), strict=True
    ):
        if key in ("config", "training_meta", "provenance"):
            value = local_paths_removed(value)
        metadata[key] = json.dumps(value)
    write_safetensors_atomic(path, tensors, metadata)


def load_checkpoint(path, device="cpu"):
    """``(tensors, metadata)`` of a checkpoint; weights loaded with safetensors (no pickle)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    metadata = read_metadata(path)
    try:
        tensors = load_file(str(path), device=str(device))
    except SafetensorError as err:
        raise CheckpointError(f"{path}: cannot read tensors: {err}") from None
    return tensors, metadata


# -- the generator's networks <-> the file ------------------------------------------------
class GeneratorModules(NamedTuple):
    """What a checkpoint holds, built: networks in eval mode, transforms, metadata."""

    pixel_net: object
    shower_model: object
    transforms: dict
    metadata: dict
    refiner: object = None


def _prefixed(module, prefix):
    return {f"{prefix}.{k}": v for k, v in module.state_dict().items()}


def _unprefixed(tensors, prefix):
    start = len(prefix) + 1
    return {k[start:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def _versions():
    from importlib.metadata import PackageNotFoundError, version

    import numpy as np
    import torch

    out = {"torch": torch.__version__, "numpy": np.__version__}
    for pkg in ("ctapipe", "ctapipe-genshower", "safetensors"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def _jsonable(obj):
    return json.loads(
        json.dumps(obj, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
    )


def save_generator(
    path, pixel_net, shower_model, transforms, *, config, training_meta, domain, provenance
):
    """Write a generator's networks and metadata as a checkpoint (atomically).

    Parameters
    ----------
    path : path-like
    pixel_net : UNet
        The EMA weights of the pixel model.
    shower_model : ShowerModel
    transforms : dict
        ``{"grid", "image", "time", "conditions"}``.
    config : dict
        ``{"model": ModelConfig.to_dict(), "train": ..., "world_size": ...}``.
    training_meta : dict
        The training data's meta; ``grid_index`` is dropped (the grid transform holds it).
    domain : dict
        ``{name: [min, max]}`` of the conditions and the size seen in training.
    provenance : dict
        Training provenance; package versions and the creation time are added.

    Returns
    -------
    pathlib.Path
    """
    from .model.transforms import transforms_to_dict

    tensors = {**_prefixed(pixel_net, PIXEL_PREFIX), **_prefixed(shower_model, SHOWER_PREFIX)}
    meta = {k: v for k, v in training_meta.items() if k != "grid_index"}
    provenance = {
        **provenance,
        "versions": _versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    save_checkpoint(
        path,
        tensors,
        config=config,
        transforms=transforms_to_dict(transforms),
        training_meta=_jsonable(meta),
        domain=domain,
        provenance=provenance,
    )
    return Path(path)


def load_generator_modules(path, device="cpu"):
    """Build the networks and transforms of a checkpoint.

    Parameters
    ----------
    path : path-like
    device : str or torch.device
        Where the networks go (weights are read on the CPU first).

    Returns
    -------
    GeneratorModules

    Raises
    ------
    CheckpointError
        For a missing, truncated, corrupt or other-format file.
    """
    from .model.config import ModelConfig
    from .model.networks import UNet
    from .model.shower_model import ShowerModel
    from .model.transforms import transforms_from_dict

    tensors, metadata = load_checkpoint(path, device="cpu")
    non_finite = [name for name, tensor in tensors.items() if not tensor.isfinite().all()]
    if non_finite:
        raise CheckpointError(
            f"{path}: {len(non_finite)} weight tensors hold NaN or inf"
            f" (first: {non_finite[0]}); the model cannot generate"
        )
    try:
        config = ModelConfig.from_dict(metadata["config"]["model"])
        pixel_net = UNet(config.unet)
        shower_model = ShowerModel.from_config(config)
        transforms = transforms_from_dict(metadata["transforms"])
        if config.geometry_maps != ("geometry" in transforms):
            raise ValueError(
                f"geometry_maps is {config.geometry_maps} but the transforms "
                f"{'lack' if config.geometry_maps else 'hold'} the geometry channels"
            )
        night_sky = transforms.get("night_sky")
        recorded = (None, "centre") if night_sky is None else (night_sky.charge, night_sky.target)
        if (config.night_sky_charge, config.night_sky_target) != recorded:
            raise ValueError(
                f"night_sky_charge, night_sky_target are {config.night_sky_charge}, "
                f"{config.night_sky_target} but the transforms' night-sky times {recorded}"
            )
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise CheckpointError(
            f"{path}: corrupt model metadata ({type(err).__name__}: {err})"
        ) from None
    for module, prefix in ((pixel_net, PIXEL_PREFIX), (shower_model, SHOWER_PREFIX)):
        _load_weights(path, module, _unprefixed(tensors, prefix), prefix)
    return GeneratorModules(
        pixel_net.to(device).eval(),
        shower_model.to(device).eval(),
        transforms,
        metadata,
        _load_refiner(path, metadata, tensors),
    )


def _load_refiner(path, metadata, tensors):
    """The model's refiner (a ``DensityRatio`` on the CPU), None when it has none."""
    from .model.density_ratio import DensityRatio, density_ratio_net

    meta = metadata.get(REFINER_KEY)
    state = _unprefixed(tensors, REFINER_PREFIX)
    if meta is None and not state:
        return None
    # an ensemble's members are the file's tensors: never build more than it holds
    stored = len({k.split(".")[1] for k in state if k.startswith("members.")}) or 1
    try:
        features = meta["features"]
        members = meta.get("members", 1)  # refiners written before ensembles: one
        if members != stored:
            raise ValueError(f"{members} members recorded, {stored} stored")
        net = density_ratio_net(len(features) + 5, meta["width"], meta["depth"], members)
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(
            f"{path}: corrupt refiner metadata ({type(err).__name__}: {err})"
        ) from None
    _load_weights(path, net, state, REFINER_PREFIX)
    try:
        return DensityRatio.from_metadata(meta, net.state_dict())
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(
            f"{path}: corrupt refiner metadata ({type(err).__name__}: {err})"
        ) from None


def save_refined(path, output, refiner, provenance=None, model_config=None):
    """Write the model of ``path`` with ``refiner`` (replacing any it had) to ``output``.

    Parameters
    ----------
    path : path-like
        The model file (read with safetensors and JSON only).
    output : path-like
        Written atomically; may be ``path``.
    refiner : DensityRatio
    provenance : dict, optional
        Added to the file's provenance as ``refinement`` (with the input model's sha256).
    model_config : ModelConfig, optional
        Replaces the model's config (its sampler settings: the network must be the same).

    Returns
    -------
    pathlib.Path
    """
    tensors, metadata = load_checkpoint(path)
    if model_config is not None:
        from .model.config import ModelConfig

        old = ModelConfig.from_dict(metadata["config"]["model"])
        if old.network_dict() != model_config.network_dict():
            raise ValueError("a refined model keeps its network: only sampler settings may change")
        metadata["config"] = {**metadata["config"], "model": model_config.to_dict()}
    tensors = {k: v for k, v in tensors.items() if not k.startswith(REFINER_PREFIX + ".")}
    tensors.update(_prefixed(refiner.net, REFINER_PREFIX))
    out = {"format": FORMAT, "format_version": FORMAT_VERSION}
    for key, value in metadata.items():
        if key not in ("format", "format_version", REFINER_KEY):
            out[key] = json.dumps(value)
    out[REFINER_KEY] = json.dumps(_jsonable(refiner.to_metadata()))
    record = {
        **(provenance or {}),
        "input_model_sha256": file_sha256(path),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    prov = dict(metadata.get("provenance") or {})
    prov["refinement"] = _jsonable(record)
    out["provenance"] = json.dumps(local_paths_removed(prov))
    for key in ("config", "training_meta"):  # models written before names-only
        out[key] = json.dumps(local_paths_removed(metadata[key]))
    write_safetensors_atomic(output, tensors, out)
    return Path(output)


def _load_weights(path, module, state, prefix):
    """Load ``state`` into ``module``, or say in one line how the file does not fit it."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing (first: {prefix}.{missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (first: {prefix}.{unexpected[0]})")
    if wrong_shape:
        k = wrong_shape[0]
        problems.append(
            f"{len(wrong_shape)} of the wrong shape (first: {prefix}.{k}"
            f" {tuple(state[k].shape)}, network expects {tuple(expected[k].shape)})"
        )
    if problems:
        raise CheckpointError(
            f"{path}: the weights do not fit the network its config describes: "
            + "; ".join(problems)
        )
    module.load_state_dict(state)


def upgrade_checkpoint(path, output, *, trust_embedded_hdf5=False):
    """Convert a format-version-1 model file into the current format.

    Version 1 stored the training subarray as an HDF5 image; decoding it with PyTables can
    run code hidden in the file (pickled attributes). Only convert files you trust.

    Parameters
    ----------
    path : path-like
        The version-1 model file.
    output : path-like
        The converted file (written atomically; weights are copied unchanged).
    trust_embedded_hdf5 : bool
        Must be True: the caller vouches for the file.

    Returns
    -------
    pathlib.Path
    """
    if not trust_embedded_hdf5:
        raise CheckpointError(
            f"{path}: converting decodes its embedded HDF5, which can run code;"
            " pass trust_embedded_hdf5=True only for a file you trust"
        )
    from safetensors.torch import load_file

    from .instrument.description import subarray_to_dict

    metadata = read_metadata(path, expected_version=_HDF5_SUBARRAY_VERSION)
    training_meta = dict(metadata["training_meta"])
    subarray = _decode_trusted_hdf5_subarray(training_meta.pop("subarray_hdf5"))
    training_meta["subarray"] = subarray_to_dict(subarray)
    save_checkpoint(
        output,
        load_file(str(path)),
        **{key: metadata[key] for key in JSON_KEYS if key != "training_meta"},
        training_meta=training_meta,
    )
    return Path(output)


def _decode_trusted_hdf5_subarray(text):
    """The ``SubarrayDescription`` of a version-1 file's base64 HDF5 image (trusted input)."""
    import base64
    import os

    import tables
    from ctapipe.instrument import SubarrayDescription

    with tables.open_file(
        f"genshower-upgrade-{os.getpid()}.h5",  # the core driver wants a (never created) name
        mode="r",
        driver="H5FD_CORE",
        driver_core_image=base64.b64decode(text),
        driver_core_backing_store=0,
    ) as h5file:
        return SubarrayDescription.from_hdf(h5file)
