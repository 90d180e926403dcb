"""Input files of a training run: globs, missing files, one prepared training file."""

import pytest

from ctapipe_genshower.data.inputs import expand_inputs, is_prepared_input, training_inputs


def test_globs_are_expanded_in_order(tmp_path):
    for name in ("b.h5", "a.h5", "c.txt"):
        (tmp_path / name).write_bytes(b"")
    paths = expand_inputs([str(tmp_path / "*.h5"), tmp_path / "c.txt"])
    assert [p.name for p in paths] == ["a.h5", "b.h5", "c.txt"]
    with pytest.raises(ValueError, match="No input file matches"):
        expand_inputs([str(tmp_path / "*.fits")])
    with pytest.raises(FileNotFoundError, match="Input file not found"):
        expand_inputs([tmp_path / "missing.h5"])


def test_one_prepared_file_or_dl1_files(tmp_path):
    dl1, prepared = tmp_path / "a.h5", tmp_path / "damaged.train.safetensors"
    dl1.write_bytes(b"")
    prepared.write_bytes(b"\0" * 4)  # damaged: known by its name, reported when opened
    assert is_prepared_input(prepared) and not is_prepared_input(dl1)
    assert training_inputs([dl1]) == ([dl1], False)
    assert training_inputs([prepared]) == ([prepared], True)
    with pytest.raises(ValueError, match="not a mix"):
        training_inputs([dl1, prepared])
