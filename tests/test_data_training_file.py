"""TrainingArrays and the compact training file (numpy + safetensors only)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from ctapipe_genshower.data import (
    CONDITION_COLUMNS,
    TrainingArrays,
    TrainingFile,
    TrainingFileWriter,
    is_training_file,
    write_training_file,
)


def _arrays(n=23, n_pixels=11, seed=0):
    rng = np.random.default_rng(seed)
    return TrainingArrays(
        image=rng.normal(size=(n, n_pixels)) * 50,
        peak_time=rng.uniform(0, 40, size=(n, n_pixels)),
        conditions=rng.normal(size=(n, len(CONDITION_COLUMNS))),
        meta={"camera_name": "Test", "n_selected": n, "grid_index": list(range(n_pixels))},
    )


def test_training_arrays_checks_shapes():
    a = _arrays()
    assert a.image.dtype == np.float32 and a.conditions.dtype == np.float32
    assert np.array_equal(a.condition("impact_y"), a.conditions[:, 2])
    with pytest.raises(ValueError, match="peak_time shape"):
        TrainingArrays(a.image, a.peak_time[:, :3], a.conditions)
    with pytest.raises(ValueError, match="conditions must be"):
        TrainingArrays(a.image, a.peak_time, a.conditions[:, :4])
    both = TrainingArrays.concatenate([a, a.subset(slice(0, 5))])
    assert len(both) == len(a) + 5
    assert np.array_equal(both.image[-5:], a.image[:5])


def test_roundtrip_and_chunked_reads(tmp_path):
    a = _arrays()
    path = write_training_file(tmp_path / "train.safetensors", a)
    assert is_training_file(path)
    f = TrainingFile(path)
    assert len(f) == len(a) and f.n_pixels == a.n_pixels
    assert f.meta == a.meta
    full = f.read()
    for name in ("image", "peak_time", "conditions"):
        assert np.array_equal(full[name], getattr(a, name))
    part = f.read(5, 9)
    assert np.array_equal(part["image"], a.image[5:9])
    chunks = list(f.iter_chunks(chunk_size=7))
    assert [len(c["image"]) for c in chunks] == [7, 7, 7, 2]
    assert np.array_equal(np.concatenate([c["conditions"] for c in chunks]), a.conditions)
    idx = [17, 3, 3, 0]
    assert np.array_equal(f.take(idx)["peak_time"], a.peak_time[idx])


def test_true_images_are_kept(tmp_path):
    a = _arrays()
    with_true = TrainingArrays(
        a.image, a.peak_time, a.conditions, a.meta, true_image=np.rint(np.abs(a.image))
    )
    path = write_training_file(tmp_path / "train.safetensors", with_true)
    f = TrainingFile(path)
    assert f.tensors == ("conditions", "image", "peak_time", "true_image")
    np.testing.assert_array_equal(f.read(3, 8)["true_image"], with_true.true_image[3:8])
    np.testing.assert_array_equal(f.take([4, 1])["true_image"], with_true.true_image[[4, 1]])
    np.testing.assert_array_equal(f.to_arrays().true_image, with_true.true_image)
    assert "true_image" not in TrainingFile(write_training_file(tmp_path / "a.st", a)).read()
    # subsets keep them, a join only if every part has them
    assert np.array_equal(with_true.subset([2, 0]).true_image, with_true.true_image[[2, 0]])
    assert TrainingArrays.concatenate([with_true, with_true]).true_image.shape == (46, 11)
    assert TrainingArrays.concatenate([with_true, a]).true_image is None
    with pytest.raises(ValueError, match="true_image shape"):
        TrainingArrays(a.image, a.peak_time, a.conditions, true_image=a.image[:, :3])
    # chunks must agree on them
    with (
        pytest.raises(ValueError, match="earlier chunks"),
        TrainingFileWriter(tmp_path / "mixed.safetensors") as writer,
    ):
        writer.append(with_true)
        writer.append(a)
    assert not (tmp_path / "mixed.safetensors").exists()


def test_file_is_plain_safetensors(tmp_path):
    from safetensors.numpy import load_file

    a = _arrays()
    path = write_training_file(tmp_path / "train.safetensors", a)
    loaded = load_file(path)
    assert np.array_equal(loaded["image"], a.image)
    assert np.array_equal(loaded["conditions"], a.conditions)


def test_streaming_writer_equals_single_write(tmp_path):
    a = _arrays(n=50)
    with TrainingFileWriter(tmp_path / "streamed.safetensors", meta={"x": 1}) as writer:
        for start in range(0, 50, 8):
            writer.append(a.subset(slice(start, start + 8)))
        writer.meta.update(a.meta)
    write_training_file(tmp_path / "single.safetensors", a)
    streamed = TrainingFile(tmp_path / "streamed.safetensors")
    single = TrainingFile(tmp_path / "single.safetensors")
    assert streamed.meta == {"x": 1, **a.meta}
    for name in ("image", "peak_time", "conditions"):
        assert np.array_equal(streamed.read()[name], single.read()[name])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_failed_write_leaves_no_file(tmp_path):
    a = _arrays()
    path = tmp_path / "out.safetensors"
    with pytest.raises(RuntimeError), TrainingFileWriter(path) as writer:
        writer.append(a)
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="No rows"):
        TrainingFileWriter(path).close()
    assert list(tmp_path.iterdir()) == []


def test_bad_files_give_clear_errors(tmp_path):
    a = _arrays()
    path = write_training_file(tmp_path / "train.safetensors", a)
    with pytest.raises(FileNotFoundError, match="not found"):
        TrainingFile(tmp_path / "missing.safetensors")

    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match="truncated"):
        TrainingFile(truncated)

    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file at all")
    assert not is_training_file(garbage)
    with pytest.raises(ValueError, match="not a safetensors file"):
        TrainingFile(garbage)

    from safetensors.numpy import save_file

    other = tmp_path / "other.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, other, metadata={"format": "something-else"})
    with pytest.raises(ValueError, match="not a ctapipe-genshower training file"):
        TrainingFile(other)

    future = tmp_path / "future.safetensors"
    save_file(
        {k: getattr(a, k) for k in ("image", "peak_time", "conditions")},
        future,
        metadata={
            "format": "ctapipe-genshower-training",
            "format_version": "99",
            "meta": json.dumps({}),
        },
    )
    with pytest.raises(ValueError, match="format version '99'"):
        TrainingFile(future)


def test_reading_needs_no_ctapipe(tmp_path):
    path = write_training_file(tmp_path / "train.safetensors", _arrays())
    code = (
        "import sys\n"
        "sys.modules['ctapipe'] = None  # any ctapipe import now fails\n"
        "from ctapipe_genshower.data import TrainingFile\n"
        f"f = TrainingFile({str(path)!r})\n"
        "assert f.read(2, 4)['image'].shape == (2, 11)\n"
        "assert 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
