"""A model file must never run code, and a broken one is refused in one clear line."""

import base64
import json
import os
import struct
import subprocess

import pytest
import tables
import torch
from safetensors.torch import load_file, save_file

from ctapipe_genshower.checkpoint import (
    CheckpointError,
    load_generator_modules,
    read_metadata,
    upgrade_checkpoint,
)
from ctapipe_genshower.generator import ShowerGenerator
from ctapipe_genshower.instrument.description import subarray_from_dict


class _Payload:
    """Unpickling this runs ``touch <marker>``: what a hostile model file would carry."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _rewrite(src, dst, update_metadata=None, tensors=None):
    """Copy a model file with its ``__metadata__`` and/or tensors replaced."""
    raw = src.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    metadata = json.loads(raw[8 : 8 + n])["__metadata__"]
    if update_metadata is not None:
        update_metadata(metadata)
    save_file(load_file(str(src)) if tensors is None else tensors, str(dst), metadata=metadata)
    return dst


def _hostile_version_1_file(tiny_model_path, dst, marker):
    """A format-1 model whose embedded subarray HDF5 carries a pickled attribute."""
    meta = read_metadata(tiny_model_path)
    subarray = subarray_from_dict(meta["training_meta"]["subarray"])
    with tables.open_file(
        "hostile.h5", mode="w", driver="H5FD_CORE", driver_core_backing_store=0
    ) as h5file:
        subarray.to_hdf(h5file)
        h5file.root._v_attrs.payload = _Payload(marker)
        h5file.flush()
        image = h5file.get_file_image()

    def downgrade(metadata):
        training_meta = json.loads(metadata["training_meta"])
        del training_meta["subarray"]
        training_meta["subarray_hdf5"] = base64.b64encode(image).decode()
        metadata["training_meta"] = json.dumps(training_meta)
        metadata["format_version"] = "1"

    return _rewrite(tiny_model_path, dst, downgrade)


def test_hostile_model_runs_no_code(tiny_model_path, tmp_path):
    marker = tmp_path / "code_was_run"
    hostile = _hostile_version_1_file(tiny_model_path, tmp_path / "hostile.safetensors", marker)

    with pytest.raises(CheckpointError, match="can run code"):
        ShowerGenerator.from_file(hostile)
    assert not marker.exists()

    output = tmp_path / "out.dl1.h5"
    result = subprocess.run(
        [
            "ctapipe-process",
            "-i",
            str(hostile),
            "-o",
            str(output),
            "--DiffusionEventSource.n_showers=100",
            f"--provenance-log={tmp_path / 'provenance.log'}",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    assert "can run code" in result.stderr
    assert not marker.exists()
    assert not output.exists()


def test_upgrade_needs_explicit_trust(tiny_model_path, tmp_path):
    marker = tmp_path / "code_was_run"
    hostile = _hostile_version_1_file(tiny_model_path, tmp_path / "hostile.safetensors", marker)
    with pytest.raises(CheckpointError, match="trust_embedded_hdf5"):
        upgrade_checkpoint(hostile, tmp_path / "upgraded.safetensors")
    assert not marker.exists()
    assert not (tmp_path / "upgraded.safetensors").exists()


def test_upgrade_of_a_trusted_file(tiny_model_path, tmp_path):
    """A genuine version-1 file converts; weights and instrument are unchanged."""
    old = _hostile_version_1_file(tiny_model_path, tmp_path / "v1.safetensors", tmp_path / "m")
    # a genuine file: strip the payload by writing the subarray again without it
    meta = read_metadata(tiny_model_path)
    subarray = subarray_from_dict(meta["training_meta"]["subarray"])
    with tables.open_file(
        "genuine.h5", mode="w", driver="H5FD_CORE", driver_core_backing_store=0
    ) as h5file:
        subarray.to_hdf(h5file)
        h5file.flush()
        image = base64.b64encode(h5file.get_file_image()).decode()

    def genuine(metadata):
        training_meta = json.loads(metadata["training_meta"])
        training_meta["subarray_hdf5"] = image
        metadata["training_meta"] = json.dumps(training_meta)

    old = _rewrite(old, tmp_path / "genuine_v1.safetensors", genuine)
    new = upgrade_checkpoint(old, tmp_path / "v2.safetensors", trust_embedded_hdf5=True)
    upgraded = read_metadata(new)
    assert upgraded["format_version"] == "2"
    assert subarray_from_dict(upgraded["training_meta"]["subarray"]) == subarray
    before, after = load_file(str(tiny_model_path)), load_file(str(new))
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_non_finite_weights_are_refused(tiny_model_path, tmp_path):
    tensors = load_file(str(tiny_model_path))
    name = sorted(k for k in tensors if k.startswith("pixel."))[0]
    tensors[name] = torch.full_like(tensors[name], float("nan"))
    path = _rewrite(tiny_model_path, tmp_path / "nan.safetensors", tensors=tensors)
    with pytest.raises(CheckpointError, match="NaN or inf"):
        load_generator_modules(path)


def test_weights_of_another_network_are_refused(tiny_model_path, tmp_path):
    tensors = load_file(str(tiny_model_path))
    name = sorted(k for k in tensors if k.startswith("pixel.") and tensors[k].ndim > 1)[0]
    tensors[name] = torch.zeros(*(s + 1 for s in tensors[name].shape))
    path = _rewrite(tiny_model_path, tmp_path / "shape.safetensors", tensors=tensors)
    with pytest.raises(CheckpointError, match="wrong shape") as info:
        load_generator_modules(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "damage",
    [
        lambda config: config["model"].update(not_a_setting=1),
        lambda config: config["model"]["unet"].update(base_channels="sixteen"),
        lambda config: config.pop("model"),
    ],
)
def test_corrupt_model_config_is_refused(tiny_model_path, tmp_path, damage):
    def update(metadata):
        config = json.loads(metadata["config"])
        damage(config)
        metadata["config"] = json.dumps(config)

    path = _rewrite(tiny_model_path, tmp_path / "config.safetensors", update)
    with pytest.raises(CheckpointError, match=r"corrupt model metadata|do not fit"):
        load_generator_modules(path)


def test_loading_unpickles_nothing(tiny_model_path, monkeypatch):
    """Loading a model and its instrument works with unpickling forbidden."""
    import pickle

    def forbidden(*args, **kwargs):
        raise AssertionError("a model file was unpickled")

    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    generator = ShowerGenerator.from_file(tiny_model_path, device="cpu")
    assert generator.subarray.tel[1].camera.geometry.n_pixels == generator.n_pixels
