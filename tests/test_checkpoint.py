"""Checkpoint file: round trip, metadata with the standard library, clear errors, atomic writes."""

import json
import struct

import pytest
import torch

from ctapipe_genshower.checkpoint import (
    FORMAT,
    FORMAT_VERSION,
    CheckpointError,
    is_checkpoint,
    load_checkpoint,
    local_paths_removed,
    read_metadata,
    save_checkpoint,
    write_safetensors_atomic,
)

META = dict(
    config={"model": {"a": 1}},
    transforms={"image": {"q_scale": 1e-3}},
    training_meta={"n_thrown": 10, "thrown": {"spectral_index": -2.0}},
    domain={"log10_energy": [-1.0, 2.0]},
    provenance={"seed": 3},
)


def _write(path, version=FORMAT_VERSION, fmt=FORMAT):
    tensors = {
        "pixel.w": torch.arange(6, dtype=torch.float32).reshape(2, 3),
        "shower.b": torch.ones(4),
    }
    save_checkpoint(path, tensors, **META)
    if version != FORMAT_VERSION or fmt != FORMAT:
        metadata = {
            "format": fmt,
            "format_version": version,
            **{k: json.dumps(v) for k, v in META.items()},
        }
        write_safetensors_atomic(path, tensors, metadata)
    return tensors


def test_round_trip(tmp_path):
    path = tmp_path / "m.safetensors"
    tensors = _write(path)
    meta = read_metadata(path)
    assert meta["format"] == FORMAT and meta["format_version"] == FORMAT_VERSION == "2"
    for key, value in META.items():
        assert meta[key] == value
    loaded, meta2 = load_checkpoint(path)
    assert meta2 == meta
    for key, value in tensors.items():
        assert torch.equal(loaded[key], value)
    assert is_checkpoint(path)
    assert list(tmp_path.iterdir()) == [path]  # no temporary files left


def test_read_metadata_is_stdlib_only(tmp_path):
    """The header parser works from a bare interpreter without torch or safetensors imported."""
    import subprocess
    import sys

    path = tmp_path / "m.safetensors"
    _write(path)
    code = (
        "import sys; from ctapipe_genshower.checkpoint import read_metadata; "
        f"m = read_metadata({str(path)!r}); "
        "assert 'torch' not in sys.modules and 'safetensors' not in sys.modules; "
        "print(m['provenance']['seed'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "3"


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        read_metadata(tmp_path / "nope.safetensors")
    assert not is_checkpoint(tmp_path / "nope.safetensors")


@pytest.mark.parametrize("keep", [0, 5, 8, 40, -3])
def test_truncated(tmp_path, keep):
    path = tmp_path / "m.safetensors"
    _write(path)
    data = path.read_bytes()
    path.write_bytes(data[:keep])
    with pytest.raises(CheckpointError, match=r"truncated|corrupt"):
        read_metadata(path)
    assert not is_checkpoint(path)


def test_corrupt_header(tmp_path):
    path = tmp_path / "m.safetensors"
    path.write_bytes(struct.pack("<Q", 10) + b"not json!!" + b"\0" * 16)
    with pytest.raises(CheckpointError, match="corrupt"):
        read_metadata(path)
    other = tmp_path / "other.txt"
    other.write_text("hello world, this is not a checkpoint at all")
    with pytest.raises(CheckpointError):
        read_metadata(other)


def test_wrong_version_and_format(tmp_path):
    path = tmp_path / "v3.safetensors"
    _write(path, version="3")
    with pytest.raises(CheckpointError, match="format_version '3' is not supported"):
        read_metadata(path)
    path = tmp_path / "other.safetensors"
    _write(path, fmt="ctapipe-genshower-training")
    with pytest.raises(CheckpointError, match="not a ctapipe-genshower-model file"):
        read_metadata(path)
    assert not is_checkpoint(path)


def test_atomic_write_keeps_old_file(tmp_path, monkeypatch):
    """A failing write leaves the previous checkpoint untouched and no temporary file."""
    path = tmp_path / "m.safetensors"
    _write(path)
    before = path.read_bytes()

    import safetensors.torch

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        _write(path)
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]


def test_model_files_record_input_files_by_name(tmp_path):
    provenance = {
        "command_line": "/opt/bin/ctapipe-genshower-train -i /data/run_1.dl1.h5 "
        "--init-model=/home/me/teacher.safetensors -o out.safetensors --lr 1e-4 "
        "--selection=a/b>1",
        "input_files": ["/data/run_1.dl1.h5", "run_2.dl1.h5"],
        "refinement": {"training_file": "/data/t.training.safetensors", "n_events": 3},
        "seed": 3,
    }
    path = tmp_path / "m.safetensors"
    save_checkpoint(
        path,
        {"pixel.w": torch.ones(2)},
        **{
            **META,
            "config": {"train": {"init_model": "/home/me/teacher.safetensors", "lr": 1e-4}},
            "training_meta": {**META["training_meta"], "input_files": ["/data/run_1.dl1.h5"]},
            "provenance": provenance,
        },
    )
    meta = read_metadata(path)
    assert meta["provenance"] == {
        "command_line": "ctapipe-genshower-train -i run_1.dl1.h5 "
        "--init-model=teacher.safetensors -o out.safetensors --lr 1e-4 --selection=a/b>1",
        "input_files": ["run_1.dl1.h5", "run_2.dl1.h5"],
        "refinement": {"training_file": "t.training.safetensors", "n_events": 3},
        "seed": 3,
    }
    assert meta["config"]["train"] == {"init_model": "teacher.safetensors", "lr": 1e-4}
    assert meta["training_meta"]["input_files"] == ["run_1.dl1.h5"]
    assert meta["training_meta"]["thrown"] == META["training_meta"]["thrown"]
    # other entries are not touched, whatever they hold
    assert local_paths_removed({"units": "m/s", "x": [1, "a/b"]}) == {
        "units": "m/s",
        "x": [1, "a/b"],
    }
