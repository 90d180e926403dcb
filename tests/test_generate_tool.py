"""ctapipe-genshower-generate: the main job on a model, its defaults, and its failure modes."""

import numpy as np
import pytest
import tables
from ctapipe.core import ToolConfigurationError, run_tool
from ctapipe.io import read_table

from ctapipe_genshower.io.diffusion import DiffusionEventSource, default_model_path
from ctapipe_genshower.tools.generate import GenerateTool


def generate(model, output, *options, raises=True):
    argv = [f"--model={model}", f"--output={output}", "--device=cpu", *options]
    return run_tool(GenerateTool(), argv=argv, cwd=output.parent, raises=raises)


def test_generate(tiny_model_path, tmp_path):
    output = tmp_path / "protons.dl1.h5"
    ret = generate(
        tiny_model_path, output, "--n-showers=500", "--seed=4", "--obs-id=9", "--n-steps=2"
    )
    assert ret == 0
    # images and parameters are written by default
    images = read_table(output, "/dl1/event/telescope/images/tel_001")
    params = read_table(output, "/dl1/event/telescope/parameters/tel_001")
    config = read_table(output, "/configuration/simulation/run")
    assert len(images) == len(params) > 0
    assert set(images["obs_id"]) == {9}
    assert config["n_showers"][0] == 500

    with tables.open_file(output) as f:
        attrs = f.root._v_attrs
        assert attrs["CONTEXT GENSHOWER SEED"] == 4
        assert attrs["CONTEXT GENSHOWER N_STEPS"] == 2
        assert attrs["CONTEXT GENSHOWER N_THROWN"] == 500
        assert attrs["CONTEXT GENSHOWER EXTRAPOLATION"] == "none"
        assert len(attrs["CONTEXT GENSHOWER MODEL SHA256"]) == 64


def test_user_options_override_defaults(tiny_model_path, tmp_path):
    output = tmp_path / "params_only.dl1.h5"
    assert (
        generate(tiny_model_path, output, "--n-showers=300", "--n-steps=1", "--no-write-images")
        == 0
    )
    with tables.open_file(output) as f:
        assert "/dl1/event/telescope/parameters/tel_001" in f
        assert "/dl1/event/telescope/images" not in f
        assert f.root._v_attrs["CONTEXT GENSHOWER SOLVER"] == "ddim"


def test_solver_option(tiny_model_path, tmp_path):
    output = tmp_path / "dpmpp.dl1.h5"
    options = ["--n-showers=300", "--n-steps=2", "--solver=dpmpp-2m"]
    assert generate(tiny_model_path, output, *options) == 0
    with tables.open_file(output) as f:
        assert f.root._v_attrs["CONTEXT GENSHOWER SOLVER"] == "dpmpp-2m"
    with pytest.raises(Exception, match="solver"):
        generate(tiny_model_path, tmp_path / "x.dl1.h5", "--solver=euler")
    assert not (tmp_path / "x.dl1.h5").exists()


def test_eta_option(tiny_model_path, tmp_path):
    options = ["--n-showers=300", "--n-steps=3", "--seed=5"]
    paths = [tmp_path / f"{name}.dl1.h5" for name in ("eta0", "eta1", "eta1_again")]
    assert generate(tiny_model_path, paths[0], *options) == 0
    assert generate(tiny_model_path, paths[1], *options, "--eta=1") == 0
    assert generate(tiny_model_path, paths[2], *options, "--eta=1") == 0
    with tables.open_file(paths[1]) as f:
        assert f.root._v_attrs["CONTEXT GENSHOWER ETA"] == 1.0
    deterministic, stochastic, again = (
        read_table(p, "/dl1/event/telescope/images/tel_001")["image"] for p in paths
    )
    # the same showers, other images; reproducible with the same seed
    assert deterministic.shape == stochastic.shape and not np.allclose(deterministic, stochastic)
    np.testing.assert_array_equal(stochastic, again)
    bad = tmp_path / "bad.dl1.h5"
    with pytest.raises(ToolConfigurationError, match="eta applies to the ddim solver only"):
        generate(tiny_model_path, bad, *options, "--eta=1", "--solver=dpmpp-2m")
    assert not bad.exists()


def test_bf16_option(tiny_model_path, tmp_path):
    plain, bf16 = tmp_path / "fp32.dl1.h5", tmp_path / "bf16.dl1.h5"
    assert generate(tiny_model_path, plain, "--n-showers=300", "--n-steps=2") == 0
    assert generate(tiny_model_path, bf16, "--n-showers=300", "--n-steps=2", "--bf16") == 0
    with tables.open_file(plain) as f:
        assert not f.root._v_attrs["CONTEXT GENSHOWER BF16"]  # the CPU default
    with tables.open_file(bf16) as f:
        assert f.root._v_attrs["CONTEXT GENSHOWER BF16"]
    a = read_table(plain, "/dl1/event/telescope/images/tel_001")["image"]
    b = read_table(bf16, "/dl1/event/telescope/images/tel_001")["image"]
    # same showers and noise, the network in bf16: close, not equal
    assert a.shape == b.shape and not (a == b).all()
    assert abs(b.sum() / a.sum() - 1) < 0.05


def test_batch_options_are_recorded_and_keep_the_events(tiny_model_path, tmp_path):
    options = ["--n-showers=500", "--seed=4", "--n-steps=2"]
    default, grouped = tmp_path / "default.dl1.h5", tmp_path / "grouped.dl1.h5"
    assert generate(tiny_model_path, default, *options) == 0
    assert (
        generate(tiny_model_path, grouped, *options, "--batch-size=2", "--events-per-batch=3") == 0
    )
    with tables.open_file(grouped) as f:
        assert f.root._v_attrs["CONTEXT GENSHOWER BATCH_SIZE"] == 2
        assert f.root._v_attrs["CONTEXT GENSHOWER EVENTS_PER_BATCH"] == 3
    with tables.open_file(default) as f:  # the CPU default: one batch of events per call
        batch = f.root._v_attrs["CONTEXT GENSHOWER BATCH_SIZE"]
        assert f.root._v_attrs["CONTEXT GENSHOWER EVENTS_PER_BATCH"] == batch > 3
    a, b = (read_table(p, "/dl1/event/telescope/images/tel_001") for p in (default, grouped))
    np.testing.assert_array_equal(a["event_id"], b["event_id"])
    np.testing.assert_allclose(a["image"], b["image"], atol=1e-3)


def test_distilled_student_samples_only_at_its_steps(
    tiny_model_path, tiny_model_training_arrays, tmp_path
):
    from fixtures_model import tiny_train_config

    from ctapipe_genshower.fit import train
    from ctapipe_genshower.model.config import PRESETS

    student = tmp_path / "student.safetensors"
    config = tiny_train_config(
        steps=2, init_model=str(tiny_model_path), distill_steps=2, teacher_substeps=2
    )
    train(tiny_model_training_arrays, student, PRESETS["tiny"], config)
    output = tmp_path / "student.dl1.h5"
    assert generate(student, output, "--n-showers=300") == 0
    with tables.open_file(output) as f:
        assert f.root._v_attrs["CONTEXT GENSHOWER N_STEPS"] == 2
    bad = tmp_path / "bad.dl1.h5"
    with pytest.raises(ToolConfigurationError, match="distilled for the ddim solver at 2 steps"):
        generate(student, bad, "--n-showers=300", "--n-steps=4")
    assert not bad.exists()


def test_existing_output_is_kept(tiny_model_path, tmp_path):
    output = tmp_path / "exists.h5"
    output.write_text("keep me")
    with pytest.raises(ToolConfigurationError, match="exists"):
        generate(tiny_model_path, output, "--n-showers=10")
    assert output.read_text() == "keep me"


@pytest.mark.parametrize("problem", ["missing", "corrupt", "truncated", "domain"])
def test_bad_input_leaves_no_output(problem, tiny_model_path, tmp_path):
    model = tmp_path / "model.safetensors"
    options = ["--n-showers=10"]
    if problem == "corrupt":
        model.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    elif problem == "truncated":
        model.write_bytes(tiny_model_path.read_bytes()[:-1000])
    elif problem == "domain":
        model = tiny_model_path
        options.append("--energy-max=1000 TeV")
    output = tmp_path / "out.h5"
    messages = {
        "missing": "no such file",
        "corrupt": "corrupt",
        "truncated": "truncated",
        "domain": "outside the trained domain",
    }
    with pytest.raises(ToolConfigurationError, match=messages[problem]):
        generate(model, output, *options)
    assert not output.exists()


def test_failure_during_generation_removes_output(tiny_model_path, tmp_path, monkeypatch):
    original = DiffusionEventSource._make_event
    calls = []

    def failing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > 2:
            raise RuntimeError("simulated crash")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DiffusionEventSource, "_make_event", failing)
    output = tmp_path / "crash.h5"
    assert (
        generate(tiny_model_path, output, "--n-showers=1000", "--batch-size=2", raises=False) == 1
    )
    assert len(calls) == 3
    assert not output.exists()


def test_default_model(tmp_path):
    """Without --model the bundled model (shipped as package data) is used."""
    assert default_model_path().is_file()
    output = tmp_path / "default.h5"
    # ~0.2 % of the thrown showers pass the bundled model's selection
    argv = [f"--output={output}", "--n-showers=10000", "--max-events=2"]
    assert run_tool(GenerateTool(), argv=argv, cwd=tmp_path) == 0
    assert len(read_table(output, "/dl1/event/subarray/trigger")) == 2
