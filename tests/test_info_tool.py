"""ctapipe-genshower-info: version, bundled model path, model card."""

import pytest
from ctapipe.core import ToolConfigurationError, run_tool

from ctapipe_genshower import __version__
from ctapipe_genshower.io.diffusion import default_model_path
from ctapipe_genshower.tools.info import InfoTool, model_card


def test_model_path_only(capsys, tmp_path):
    assert run_tool(InfoTool(), argv=["--model-path"], cwd=tmp_path) == 0
    assert capsys.readouterr().out == f"{default_model_path()}\n"
    assert not list(tmp_path.iterdir())  # no provenance log for a read-only command


def test_card_of_given_model(capsys, tiny_model_path, tmp_path):
    assert run_tool(InfoTool(), argv=[f"--model={tiny_model_path}"], cwd=tmp_path) == 0
    out = capsys.readouterr().out
    assert f"ctapipe-genshower {__version__}" in out
    assert str(default_model_path()) in out
    assert str(tiny_model_path.resolve()) in out
    assert "ctapipe-genshower-model version 2" in out
    assert "sha256: " in out
    assert "thrown distribution" in out and "max_scatter_radius: " in out
    assert out.strip().endswith(model_card(tiny_model_path).strip())


def test_version_and_bundled_model(capsys, tmp_path):
    assert run_tool(InfoTool(), argv=[], cwd=tmp_path) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"ctapipe-genshower {__version__}\n")
    assert default_model_path().is_file()
    assert "not present" not in out
    assert str(default_model_path()) in out
    # the bundled model's peak-time normalisation is stated (docs/model.md)
    assert "peak times: asinh+linear transform around" in out


def test_bad_models(tmp_path):
    with pytest.raises(ToolConfigurationError, match="not found"):
        run_tool(InfoTool(), argv=[f"--model={tmp_path / 'missing.safetensors'}"], cwd=tmp_path)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"12345")
    with pytest.raises(ToolConfigurationError, match="truncated or not a safetensors"):
        run_tool(InfoTool(), argv=[f"--model={bad}"], cwd=tmp_path)


def test_a_model_given_alone_is_the_model(capsys, tiny_model_path, tmp_path):
    assert run_tool(InfoTool(), argv=[str(tiny_model_path)], cwd=tmp_path) == 0
    assert capsys.readouterr().out.strip().endswith(model_card(tiny_model_path).strip())
    with pytest.raises(ToolConfigurationError, match="Unexpected arguments"):
        run_tool(InfoTool(), argv=[str(tiny_model_path), "other.safetensors"], cwd=tmp_path)
    assert run_tool(InfoTool(), argv=[str(tiny_model_path), "x"], cwd=tmp_path, raises=False) == 2
