"""ctapipe-genshower-generate under failure: killed runs, bad options, broken models.

A bad input gives one clear line and exit code 2; a run that fails, is interrupted or is
killed leaves nothing under the output's name, so a batch job can simply be resubmitted.
"""

import os
import signal
import subprocess
import sys
import time

import astropy.units as u
import numpy as np
import pytest
import tables
from ctapipe.core import ToolConfigurationError, run_tool
from ctapipe.io import read_table

from ctapipe_genshower.generator import ShowerGenerator
from ctapipe_genshower.io.diffusion import DiffusionEventSource
from ctapipe_genshower.tools.generate import GenerateTool


def generate(model, output, *options, raises=True):
    argv = [f"--model={model}", f"--output={output}", "--device=cpu", "--no-progress", *options]
    cwd = output.parent if output.parent.is_dir() else None
    return run_tool(GenerateTool(), argv=argv, cwd=cwd, raises=raises)


def leftovers(directory, name):
    """Files in ``directory`` that carry the output's name (the output or a temporary)."""
    return sorted(p.name for p in directory.iterdir() if name in p.name)


# -- killed runs ----------------------------------------------------------------------------
def _command(model, output):
    """A run slow enough to be killed mid-run (batch 1, 50 steps) that ends in seconds."""
    return [
        sys.executable,
        "-m",
        "ctapipe_genshower.tools.generate",
        f"--model={model}",
        f"--output={output}",
        "--device=cpu",
        "--no-progress",
        "--n-showers=100000",
        "--max-events=20",
        "--batch-size=1",
        "--n-steps=50",
    ]


def _wait_for_output_file(directory, name, process, timeout=120):
    """Wait until the run has opened its output (under any name carrying ``name``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before it could be killed"
        if leftovers(directory, name):
            return
        time.sleep(0.05)
    raise AssertionError("the run never opened its output")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killed_run_leaves_no_output_and_resubmission_succeeds(signum, tiny_model_path, tmp_path):
    output = tmp_path / "run.dl1.h5"
    command = _command(tiny_model_path, output)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        _wait_for_output_file(tmp_path, output.name, process)
        time.sleep(1.0)  # events are being generated and written
        assert process.poll() is None, "the run ended before it could be killed"
        process.send_signal(signum)
        log = process.communicate(timeout=60)[0].decode()
    finally:
        process.kill()
        process.wait()

    assert not output.exists(), "a killed run left a file under the output's name"
    left = leftovers(tmp_path, output.name)
    if signum == signal.SIGTERM:
        assert process.returncode == 128 + signal.SIGTERM, log
        assert left == [], "SIGTERM: the temporary file is removed"
    else:  # nothing runs after SIGKILL: only the hidden temporary file stays
        assert all(name.startswith(f".{output.name}.") for name in left), left

    # the same command again: no "Output file exists", a complete file
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert len(read_table(output, "/dl1/event/subarray/trigger")) == 20
    distribution = read_table(output, "/simulation/service/shower_distribution")
    config = read_table(output, "/configuration/simulation/run")
    assert distribution["n_entries"].sum() == config["n_showers"].sum()


def test_failed_run_leaves_no_temporary_and_writes_final_name_in_provenance(
    tiny_model_path, tmp_path, monkeypatch
):
    from ctapipe.core import Provenance

    output = tmp_path / "ok.dl1.h5"
    assert generate(tiny_model_path, output, "--n-showers=300", "--n-steps=1") == 0
    assert leftovers(tmp_path, output.name) == [output.name]
    urls = [entry["url"] for entry in Provenance().finished_activities[-1].output]
    assert urls == [str(output.absolute())]

    original = DiffusionEventSource._make_event
    calls = []

    def failing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > 2:
            raise RuntimeError("simulated crash")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DiffusionEventSource, "_make_event", failing)
    crashed = tmp_path / "crash.dl1.h5"
    assert generate(tiny_model_path, crashed, "--n-showers=1000", raises=False) == 1
    assert leftovers(tmp_path, crashed.name) == []
    assert Provenance().finished_activities[-1].output == []


def test_overwrite_replaces_only_on_success(tiny_model_path, tmp_path):
    output = tmp_path / "exists.dl1.h5"
    output.write_text("keep me")
    with pytest.raises(ToolConfigurationError, match="exists"):
        generate(tiny_model_path, output, "--n-showers=10")
    assert output.read_text() == "keep me"
    assert generate(tiny_model_path, output, "--n-showers=300", "--n-steps=1", "--overwrite") == 0
    with tables.open_file(output) as f:
        assert "/dl1/event/telescope/images/tel_001" in f
    assert leftovers(tmp_path, output.name) == [output.name]


# -- bad options and outputs ------------------------------------------------------------------
def test_missing_output_directory_is_one_line_exit_2(tiny_model_path, tmp_path):
    output = tmp_path / "no" / "such" / "dir" / "out.dl1.h5"
    with pytest.raises(ToolConfigurationError, match=r"Output directory .*no/such/dir does not"):
        generate(tiny_model_path, output, "--n-showers=10")
    assert generate(tiny_model_path, output, "--n-showers=10", raises=False) == 2
    assert not (tmp_path / "no").exists(), "the output directory must not be created"


def test_output_that_is_a_directory_is_refused(tiny_model_path, tmp_path):
    with pytest.raises(ToolConfigurationError, match="is a directory"):
        generate(tiny_model_path, tmp_path, "--n-showers=10")


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("--energy-min", "5 m", "--energy-min"),
        ("--max-scatter-radius", "3 TeV", "--max-scatter-radius"),
        ("--DiffusionEventSource.max_viewcone", "2 m", "--max-viewcone"),
    ],
)
def test_unit_error_names_the_option(option, value, named, tiny_model_path, tmp_path):
    output = tmp_path / "out.dl1.h5"
    with pytest.raises(ToolConfigurationError) as info:
        generate(tiny_model_path, output, f"{option}={value}", "--n-showers=10")
    message = str(info.value)
    assert named in message and "physical type" in message
    assert "\n" not in message
    assert leftovers(tmp_path, output.name) == []


# -- trained domain: angles wrap --------------------------------------------------------------
@pytest.mark.parametrize("azimuth", ["360 deg", "-360 deg", "720 deg", "6.283185307179586 rad"])
def test_pointing_azimuth_wraps(azimuth, tiny_model_path):
    trained = ShowerGenerator.from_file(tiny_model_path, device="cpu").thrown.pointing_az
    assert u.isclose(trained % (360 * u.deg), 0 * u.deg)  # the toy fixture points to az 0
    with DiffusionEventSource(
        tiny_model_path, n_showers=200, pointing_az=u.Quantity(azimuth), device="cpu"
    ) as source:
        assert source.extrapolation == []


def test_other_azimuth_is_still_outside_the_domain(tiny_model_path):
    with pytest.raises(ToolConfigurationError, match=r"pointing_az 10.0 deg differs"):
        DiffusionEventSource(tiny_model_path, n_showers=200, pointing_az=10 * u.deg, device="cpu")
    with pytest.raises(ToolConfigurationError, match=r"pointing_az 350.0 deg differs"):
        DiffusionEventSource(tiny_model_path, n_showers=200, pointing_az=350 * u.deg, device="cpu")


# -- non-finite generated pixels ----------------------------------------------------------------
@pytest.mark.parametrize("column", ["image", "peak_time"])
def test_non_finite_pixels_are_refused(column, tiny_model_path, tmp_path, monkeypatch):
    original = ShowerGenerator.generate

    def broken(self, conditions, *args, **kwargs):
        out = original(self, conditions, *args, **kwargs)
        out[column][::2, 3] = np.nan  # half the images of every batch
        return out

    monkeypatch.setattr(ShowerGenerator, "generate", broken)
    output = tmp_path / "nan.dl1.h5"
    with pytest.raises(ToolConfigurationError) as info:
        generate(tiny_model_path, output, "--n-showers=600", "--n-steps=1", "--batch-size=8")
    message = str(info.value)
    assert str(tiny_model_path.resolve()) in message
    assert "generated 4 of 8 images with non-finite" in message
    assert leftovers(tmp_path, output.name) == []
    assert generate(tiny_model_path, output, "--n-showers=600", "--n-steps=1", raises=False) == 2


# -- help, progress, logs ------------------------------------------------------------------------
def test_help_texts(capsys):
    with pytest.raises(SystemExit):
        GenerateTool().run(argv=["--help"])
    text = capsys.readouterr().out
    for option in ("\n--model=", "\n-i, --input="):
        option_help = text[text.index(option) + 1 :].split("\n-")[0]
        assert "Generator model file" in option_help
        assert "input file containing events" not in option_help
    assert "proton.toymc.yaml" not in text


def test_progress_counts_batches_of_the_cpu_default(tiny_model_path, tmp_path):
    """On the CPU the bar advances every 32 images, not 256; no true_image warning."""
    log = tmp_path / "generate.log"

    def run(name, *options):
        tool = GenerateTool()
        argv = [f"--model={tiny_model_path}", f"--output={tmp_path / name}", "--device=cpu"]
        argv += [f"--log-file={log}", "--log-file-level=INFO", "--n-steps=1"]
        assert run_tool(tool, [*argv, *options], cwd=tmp_path) == 0
        return tool.event_source.resolved_batch_size

    assert run("default.dl1.h5", "--n-showers=300") == 32
    text = log.read_text()
    assert "DataWriter" in text  # the writer's messages reach the log file
    assert "not writable" not in text
    assert [line for line in text.splitlines() if "WARNING" in line] == []
    assert run("explicit.dl1.h5", "--n-showers=100", "--batch-size=7") == 7
