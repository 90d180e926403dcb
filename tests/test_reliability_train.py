"""ctapipe-genshower-train with bad settings, damaged inputs and interruptions.

Each case: exit code 2 and one line naming the problem, nothing left behind that makes
the corrected rerun fail; a run stopped after a checkpoint keeps what ``--resume`` needs.
"""

import json
import subprocess
import sys

import pytest
from ctapipe.core import run_tool

from ctapipe_genshower.data import TrainingFile, write_training_file
from ctapipe_genshower.tools.train import TrainTool

TINY = [
    "--model=tiny",
    "--shower-steps=20",
    "--device=cpu",
    "--TrainTool.calibration_events=5000",
    "--TrainTool.fit_events=200",
    "--TrainTool.chunk_size=64",
    "--TrainTool.validation_events=16",
    "--TrainTool.warmup_steps=1",
]


@pytest.fixture(scope="module")
def training_file(tmp_path_factory, request):
    arrays = request.getfixturevalue("synthetic_training_arrays")
    path = tmp_path_factory.mktemp("reliability_train") / "synthetic.train.safetensors"
    return write_training_file(path, arrays.subset(slice(0, 96)))


def _exit_code(argv, cwd):
    return run_tool(TrainTool(), argv=[str(a) for a in argv], cwd=cwd, raises=False)


def _error_lines(capsys):
    err = capsys.readouterr().err
    return [line for line in err.splitlines() if "ERROR" in line or "CRITICAL" in line]


@pytest.mark.parametrize(
    "option, named",
    [
        ("--steps=0", "steps must be >= 1"),
        ("--batch-size=0", "batch_size must be >= 1"),
        ("--lr=-1", "learning_rate must be > 0"),
        ("--epochs=0", "epochs must be > 0"),
        ("--min-snr-gamma=-5", "min_snr_gamma must be >= 0"),
        ("--shower-pixel-weight=0.5", "shower_pixel_weight must be >= 1"),
    ],
)
def test_impossible_settings_are_one_line_exit_2(option, named, training_file, tmp_path, capsys):
    out = tmp_path / "model.safetensors"
    defaults = [
        o for o in ("--steps=2", "--batch-size=8") if o.split("=")[0] != option.split("=")[0]
    ]
    assert _exit_code(["-i", training_file, "-o", out, *TINY, *defaults, option], tmp_path) == 2
    errors = _error_lines(capsys)
    assert any(named in line for line in errors), errors
    assert "Traceback" not in capsys.readouterr().err
    assert _left(tmp_path) == []


def test_unusable_init_model_is_one_line_exit_2(training_file, tiny_model_path, tmp_path, capsys):
    """--init-model of another preset or not a model file: refused before anything is written."""
    out = tmp_path / "model.safetensors"
    tiny = [o for o in TINY if not o.startswith("--model")]
    base = ["-i", training_file, "-o", out, *tiny, "--steps=2", "--batch-size=8"]
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a model")
    cases = [
        (["--model=tiny-geo", f"--init-model={tiny_model_path}"], "is not a 'tiny-geo' network"),
        (["--model=tiny", f"--init-model={junk}"], "Unusable --init-model"),
    ]
    for extra, named in cases:
        assert _exit_code([*base, *extra], tmp_path) == 2
        errors = _error_lines(capsys)
        assert any(named in line for line in errors), errors
        assert _left(tmp_path) == ["junk.safetensors"]


@pytest.mark.parametrize("cut", [8, 200, -1000])
def test_truncated_training_file_is_named(cut, training_file, tmp_path, capsys):
    data = training_file.read_bytes()
    damaged = tmp_path / "damaged.train.safetensors"
    damaged.write_bytes(data[:cut])
    with pytest.raises(ValueError, match="truncated or corrupt training file"):
        TrainingFile(damaged)
    out = tmp_path / "model.safetensors"
    argv = ["-i", damaged, "-o", out, *TINY, "--steps=2", "--batch-size=8"]
    assert _exit_code(argv, tmp_path) == 2
    errors = _error_lines(capsys)
    assert any("truncated or corrupt training file" in line for line in errors), errors
    assert _left(tmp_path) == ["damaged.train.safetensors"]


def test_too_few_events_for_one_batch(training_file, tmp_path, capsys):
    out = tmp_path / "model.safetensors"
    argv = ["-i", training_file, "-o", out, *TINY, "--steps=2", "--batch-size=500"]
    assert _exit_code(argv, tmp_path) == 2
    assert any("fewer than one batch of 500" in line for line in _error_lines(capsys))
    assert _left(tmp_path) == []


def _run_in_subprocess(argv, cwd, kill_in_phase=None):
    """The tool in a child process, sent SIGTERM at the first progress of a training phase."""
    script = f"""
import os, signal, sys
from ctapipe_genshower.tools import train as train_tool
original = train_tool.TrainTool._move_bar
def move_bar(self, record):
    if record["phase"] == {kill_in_phase!r}:
        os.kill(os.getpid(), signal.SIGTERM)
    return original(self, record)
train_tool.TrainTool._move_bar = move_bar
sys.argv = ["ctapipe-genshower-train", *{[str(a) for a in argv]!r}]
train_tool.main()
"""
    return subprocess.run(
        [sys.executable, "-c", script], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_interrupted_shower_phase_leaves_nothing(training_file, tmp_path):
    """SIGTERM before the first checkpoint: nothing to resume, so nothing is kept."""
    out = tmp_path / "model.safetensors"
    argv = ["-i", training_file, "-o", out, *TINY, "--steps=2", "--batch-size=8"]
    result = _run_in_subprocess(argv, tmp_path, kill_in_phase="shower")
    assert result.returncode == 143, result.stderr[-2000:]
    assert _left(tmp_path) == []
    rerun = _run_in_subprocess(argv, tmp_path)  # the same command, no --overwrite
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert out.is_file()


def test_interrupted_pixel_phase_keeps_what_resume_needs(training_file, tmp_path):
    """SIGTERM after the checkpoint that follows the shower model: resumable, and said so."""
    out = tmp_path / "model.safetensors"
    argv = ["-i", training_file, "-o", out, *TINY, "--steps=2", "--batch-size=8"]
    result = _run_in_subprocess(argv, tmp_path, kill_in_phase="pixel")
    assert result.returncode == 143, result.stderr[-2000:]
    assert "model.state.safetensors" in _left(tmp_path)
    assert "--resume" in result.stderr
    resumed = _run_in_subprocess([*argv, "--resume"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert out.is_file()


def test_failed_dl1_run_removes_the_converted_file(
    toy_proton_dl1_path, training_file, tmp_path, capsys
):
    """A run whose training fails in setup after the DL1 conversion removes what it wrote."""
    out = tmp_path / "model.safetensors"
    argv = ["-i", toy_proton_dl1_path, "-o", out, *TINY, "--steps=2", "--batch-size=100000"]
    assert _exit_code(argv, tmp_path) == 2
    assert any("fewer than one batch" in line for line in _error_lines(capsys))
    assert _left(tmp_path) == []
    # the corrected command runs without --overwrite
    fixed = ["-i", toy_proton_dl1_path, "-o", out, *TINY, "--steps=1", "--batch-size=4"]
    assert _exit_code(fixed, tmp_path) == 0


def test_progress_bars_for_each_phase_and_provenance_outputs(training_file, tmp_path):
    out = tmp_path / "model.safetensors"
    log = tmp_path / "train.provenance.log"
    argv = ["-i", training_file, "-o", out, *TINY, "--steps=3", "--batch-size=8", "--progress"]
    result = _run_in_subprocess([*argv, "--provenance-log", log], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "shower model: 100%" in result.stderr and "20/20" in result.stderr
    assert "pixel model: 100%" in result.stderr and "3/3" in result.stderr
    activity = json.loads(log.read_text())[0]
    outputs = {entry["role"]: entry["url"] for entry in activity["output"]}
    assert outputs["DiffusionEventSource model"].endswith("model.safetensors")
    for role in ("training state", "loss log", "loss curve"):
        assert role in outputs, outputs
    assert (tmp_path / "model.loss.png").stat().st_mode & 0o777 == 0o666 & ~_umask()


def _left(directory):
    """Files in ``directory`` (ctapipe's provenance log is written by every tool run)."""
    return sorted(p.name for p in directory.iterdir() if not p.name.endswith(".provenance.log"))


def _umask():
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask
