"""Bad inputs give one clear line: settings and model files for ctapipe-process, DL1 files
for the readers of training and validation, and interrupted runs that look complete."""

import json
import shutil
import struct

import numpy as np
import pytest
import tables
from astropy.table import Table
from ctapipe.core import ToolConfigurationError, run_tool
from ctapipe.io import EventSource, read_table
from ctapipe.tools.process import ProcessorTool

from ctapipe_genshower import checkpoint
from ctapipe_genshower.data import dl1_file
from ctapipe_genshower.data.dl1 import DL1TrainingReader
from ctapipe_genshower.io import diffusion, toymc
from ctapipe_genshower.io.diffusion import DiffusionEventSource
from ctapipe_genshower.io.toymc import ToyShowerEventSource
from ctapipe_genshower.tools.background import BackgroundTool
from ctapipe_genshower.tools.generate import GenerateTool
from ctapipe_genshower.tools.refine import RefineTool
from ctapipe_genshower.tools.validate import ValidateTool
from ctapipe_genshower.validation.samples import DL1ValidationReader


def process(input_path, output, raises=True, extra=()):
    argv = [f"--input={input_path}", f"--output={output}", "--write-images", *extra]
    return run_tool(ProcessorTool(), argv=argv, cwd=output.parent, raises=raises)


def process_error(input_path, tmp_path):
    """The one-line message and exit code of ``ctapipe-process -i input_path``; no output."""
    output = tmp_path / "out.dl1.h5"
    with pytest.raises(ToolConfigurationError) as info:
        process(input_path, output)
    assert process(input_path, output, raises=False) == 2
    assert not output.exists()
    message = str(info.value)
    assert "\n" not in message
    return message


# -- toy settings files -----------------------------------------------------------------------
TOY_FILES = {
    "empty": (b"", "are empty"),
    "comments": (b"# nothing here\n\n", "are empty"),
    "malformed": (b"n_showers: [1, 2\n  bad: : yaml\n", "Cannot read toy simulation settings"),
    "list": (b"- 1\n- 2\n", "must be a YAML mapping"),
    "binary": (b"\x00\xff\xfe\x80 not text", "Cannot read toy simulation settings"),
    "unknown_key": (b"n_shower: 10\n", "Unknown settings ['n_shower']"),
}


@pytest.mark.parametrize("case", TOY_FILES)
def test_bad_toy_settings_are_claimed_and_refused_with_the_reason(case, tmp_path):
    content, expected = TOY_FILES[case]
    path = tmp_path / f"{case}.toymc.yaml"
    path.write_bytes(content)
    assert ToyShowerEventSource.is_compatible(path)
    message = process_error(path, tmp_path)
    assert expected in message
    assert str(path) in message


def test_toy_claims_only_its_suffix(tmp_path, toy_settings_path):
    assert ToyShowerEventSource.is_compatible(toy_settings_path("good"))
    other = tmp_path / "settings.yaml"
    other.write_text("n_showers: 10\n")
    assert not ToyShowerEventSource.is_compatible(other)
    folder = tmp_path / "folder.toymc.yaml"
    folder.mkdir()
    assert not ToyShowerEventSource.is_compatible(folder)
    assert not ToyShowerEventSource.is_compatible(tmp_path / "missing.toymc.yaml")


# -- model files --------------------------------------------------------------------------------
def _safetensors(path, header):
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    return path


@pytest.mark.parametrize("case", ["empty", "random", "truncated", "short"])
def test_unreadable_model_files_are_claimed_and_refused(case, tmp_path, tiny_model_path):
    path = tmp_path / f"{case}.safetensors"
    content = {
        "empty": b"",
        "random": np.random.default_rng(1).bytes(1000),
        "truncated": tiny_model_path.read_bytes()[:5000],
        "short": b"\x01\x02",
    }[case]
    path.write_bytes(content)
    assert DiffusionEventSource.is_compatible(path)
    message = process_error(path, tmp_path)
    assert "Cannot read generator model" in message
    assert "truncated or not a safetensors file" in message


def test_readable_safetensors_of_other_formats_are_not_claimed(tmp_path):
    other = _safetensors(tmp_path / "other.safetensors", {"__metadata__": {"format": "x"}})
    training = _safetensors(
        tmp_path / "train.safetensors",
        {"__metadata__": {"format": "ctapipe-genshower-training", "format_version": "1"}},
    )
    random_bin = tmp_path / "random.bin"
    random_bin.write_bytes(np.random.default_rng(2).bytes(100))
    for path in (other, training, random_bin):
        assert not DiffusionEventSource.is_compatible(path), path
    with pytest.raises(ValueError, match="Could not find compatible EventSource"):
        EventSource(other)


# -- DL1 inputs of training and validation ---------------------------------------------------------
def _bad_dl1_inputs(tmp_path, model_path, dl1_path):
    """(path, expected message) of files that are not usable DL1 files."""
    empty = tmp_path / "empty.dl1.h5"
    empty.write_bytes(b"")
    random_file = tmp_path / "random.dl1.h5"
    random_file.write_bytes(np.random.default_rng(3).bytes(5000))
    truncated = tmp_path / "truncated.dl1.h5"
    truncated.write_bytes(dl1_path.read_bytes()[:4096])
    training = _safetensors(
        tmp_path / "train.safetensors",
        {"__metadata__": {"format": "ctapipe-genshower-training", "format_version": "1"}},
    )
    folder = tmp_path / "folder.h5"
    folder.mkdir(exist_ok=True)
    return {
        "missing": (tmp_path / "missing.dl1.h5", "Input file not found"),
        "folder": (folder, "is a directory, expected a DL1 HDF5 file"),
        "empty": (empty, "is empty (0 bytes), expected a DL1 HDF5 file"),
        "random": (random_file, "is not an HDF5 file, expected a DL1 HDF5 file"),
        "model": (model_path, "is a ctapipe-genshower model file, expected a DL1 HDF5 file"),
        "training": (training, "is a ctapipe-genshower training file, expected a DL1"),
        "truncated": (truncated, "damaged or truncated file"),
    }


BAD_DL1 = ["missing", "folder", "empty", "random", "model", "training", "truncated"]


@pytest.mark.parametrize("case", BAD_DL1)
def test_readers_name_the_problem_in_one_line(case, tmp_path, tiny_model_path, toy_proton_dl1_path):
    path, expected = _bad_dl1_inputs(tmp_path, tiny_model_path, toy_proton_dl1_path)[case]
    for read in (
        lambda: DL1TrainingReader(input_files=[str(path)]),
        lambda: DL1ValidationReader().inspect([path]),
    ):
        with pytest.raises((OSError, ValueError)) as info:
            read()
        message = str(info.value)
        assert expected in message
        assert "\n" not in message and "HDF5 error back trace" not in message


@pytest.mark.parametrize("case", ["missing", "folder", "model", "truncated"])
def test_validate_exits_2_for_bad_inputs(case, tmp_path, tiny_model_path, toy_proton_dl1_path):
    path, expected = _bad_dl1_inputs(tmp_path, tiny_model_path, toy_proton_dl1_path)[case]
    output = tmp_path / "report"
    argv = [f"--generated={path}", f"--reference={toy_proton_dl1_path}", f"--output={output}"]
    with pytest.raises(ToolConfigurationError, match=expected.split(",")[0]):
        run_tool(ValidateTool(), argv=[*argv, "--no-progress"], cwd=tmp_path, raises=True)
    assert run_tool(ValidateTool(), argv=[*argv, "--no-progress"], cwd=tmp_path, raises=False) == 2
    assert not output.exists()


def test_format_constants_match_the_modules_that_own_them():
    assert f'"{checkpoint.FORMAT}"' in json.dumps(list(dl1_file._SAFETENSORS_FORMATS))
    assert dl1_file.OWN_RUNS.keys() == {diffusion.DETECTOR_PROG_ID, toymc.DETECTOR_PROG_ID}


# -- interrupted runs ------------------------------------------------------------------------------
def _interrupted_run(source_class, input_path, output, monkeypatch, extra=()):
    """``ctapipe-process`` stopped by Ctrl-C after 3 events (ctapipe closes the file)."""
    original = source_class._make_event
    calls = []

    def interrupting(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > 3:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(source_class, "_make_event", interrupting)
    assert process(input_path, output, raises=False, extra=extra) == 130
    monkeypatch.undo()
    with tables.open_file(output) as h5:  # readable, with the full requested n_showers
        assert "/configuration/simulation/run" in h5
        assert "/simulation/service/shower_distribution" not in h5
        assert h5.root.dl1.event.telescope.images.tel_001.nrows == 3
    return output


def _assert_refused_as_incomplete(path, obs_id):
    expected = rf"incomplete \(interrupted\) run: obs_id {obs_id} is"
    with pytest.raises(ValueError, match=expected):
        DL1TrainingReader(input_files=[str(path)])
    with pytest.raises(ValueError, match=expected):
        DL1ValidationReader().inspect([path])


def test_interrupted_generated_run_is_refused(tiny_model_path, tmp_path, monkeypatch):
    output = _interrupted_run(
        DiffusionEventSource,
        tiny_model_path,
        tmp_path / "interrupted.dl1.h5",
        monkeypatch,
        extra=["--DiffusionEventSource.n_showers=2000", "--DiffusionEventSource.n_steps=1"],
    )
    config = read_table(output, "/configuration/simulation/run")
    assert config["n_showers"][0] == 2000 and config["detector_prog_id"][0] == 100
    _assert_refused_as_incomplete(output, diffusion.DEFAULT_OBS_ID)

    report = tmp_path / "report"
    argv = [f"--generated={output}", f"--reference={output}", f"--output={report}"]
    assert run_tool(ValidateTool(), argv=[*argv, "--no-progress"], cwd=tmp_path, raises=False) == 2
    assert not report.exists()


def test_interrupted_toy_run_is_refused(toy_settings_path, tmp_path, monkeypatch):
    settings = toy_settings_path("interrupted", n_showers=1000, obs_id=5)
    output = _interrupted_run(ToyShowerEventSource, settings, tmp_path / "toy.dl1.h5", monkeypatch)
    assert read_table(output, "/configuration/simulation/run")["detector_prog_id"][0] == 101
    _assert_refused_as_incomplete(output, 5)


def test_sim_telarray_without_distribution_is_still_read(toy_proton_dl1_path, tmp_path):
    """Only the package's own runs are refused; other simulations keep the fallback."""
    path = tmp_path / "simtel_like.dl1.h5"
    shutil.copy(toy_proton_dl1_path, path)
    with tables.open_file(path, "a") as h5:
        h5.remove_node("/simulation/service/shower_distribution")
        run = h5.root.configuration.simulation.run
        run.modify_column(colname="detector_prog_id", column=np.ones(run.nrows, dtype=np.int64))
    infos = DL1ValidationReader().inspect([path])
    assert infos[0].shower_distribution is None


def test_merged_file_with_one_incomplete_run():
    config = Table({"obs_id": [1, 2], "detector_prog_id": [100, 100], "n_showers": [10, 10]})
    dist = Table({"obs_id": [1], "n_entries": [10]})
    dl1_file.check_complete_runs("ok.h5", config[:1], dist)
    with pytest.raises(ValueError, match="obs_id 2 is a generated run"):
        dl1_file.check_complete_runs("merged.h5", config, dist)
    with pytest.raises(ValueError, match="obs_id 1 is a generated run"):
        dl1_file.check_complete_runs("none.h5", config, None)


STRAY_WORD_TOOLS = {
    "generate": (GenerateTool, ["--output=out.dl1.h5", "model.safetensors"]),
    "validate": (
        ValidateTool,
        ["--generated=g.dl1.h5", "--reference=r.dl1.h5", "-o", "report", "extra"],
    ),
    "background": (BackgroundTool, ["--input=a.dl2.h5", "--output=bkg.fits", "b.dl2.h5"]),
    "refine": (RefineTool, ["--model=m", "--input=t", "--output=o.safetensors", "--eta", "1", "0"]),
}


@pytest.mark.parametrize("name", STRAY_WORD_TOOLS)
def test_words_no_option_took_are_refused_not_ignored(name, tmp_path):
    """A word without an option (a second input, a list option given like argparse's) is
    named in one line, exit 2, before anything is read or written."""
    tool_class, argv = STRAY_WORD_TOOLS[name]
    with pytest.raises(ToolConfigurationError, match="Unexpected arguments") as info:
        run_tool(tool_class(), argv=argv, cwd=tmp_path)
    assert "\n" not in str(info.value)
    assert run_tool(tool_class(), argv=argv, cwd=tmp_path, raises=False) == 2
    assert not [p for p in tmp_path.iterdir() if not p.name.endswith(".provenance.log")]
