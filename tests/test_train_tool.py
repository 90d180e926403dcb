"""The ctapipe-genshower-train tool: inputs, outputs, errors, resume and torchrun (DDP)."""

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tables
from ctapipe.core import ToolConfigurationError, run_tool
from safetensors.numpy import load_file

from ctapipe_genshower.checkpoint import read_metadata
from ctapipe_genshower.data import TrainingArrays, TrainingFile, write_training_file
from ctapipe_genshower.tools.train import TrainTool

# a tiny model and a handful of steps: seconds on a loaded 2-core machine
TINY = [
    "--model=tiny",
    "--batch-size=8",
    "--shower-steps=20",
    "--checkpoint-interval=1",
    "--validation-interval=2",
    "--device=cpu",
    "--TrainTool.calibration_events=5000",
    "--TrainTool.fit_events=200",
    "--TrainTool.chunk_size=64",
    "--TrainTool.log_interval=1",
    "--TrainTool.validation_events=16",
    "--TrainTool.warmup_steps=1",
]


@pytest.fixture(scope="module")
def training_file(tmp_path_factory, request):
    """A small prepared training file of synthetic showers (full meta)."""
    arrays = request.getfixturevalue("synthetic_training_arrays")
    path = tmp_path_factory.mktemp("train_tool") / "synthetic.train.safetensors"
    return write_training_file(path, arrays.subset(slice(0, 96)))


def _run(argv, cwd):
    return run_tool(TrainTool(), argv=[str(a) for a in argv], cwd=cwd, raises=True)


def _tensors(path):
    return load_file(str(path))


def test_train_from_training_file(training_file, tmp_path):
    out = tmp_path / "model.safetensors"
    # settings from a YAML config file, the command line adds to them
    config = tmp_path / "train.yaml"
    config.write_text("TrainTool:\n  steps: 2\n  model: tiny\n  seed: 5\n")
    argv = ["--config", config, "-i", training_file, "-o", out, *TINY[1:]]
    assert _run(argv, tmp_path) == 0
    for name in ("model.safetensors", "model.state.safetensors", "model.loss.csv"):
        assert (tmp_path / name).is_file(), name
    assert (tmp_path / "model.loss.png").read_bytes()[:4] == b"\x89PNG"
    with (tmp_path / "model.loss.csv").open() as f:
        rows = list(csv.DictReader(f))
    train_rows = [r for r in rows if r["kind"] == "train"]
    val_rows = [r for r in rows if r["kind"] == "validation"]
    assert [int(r["step"]) for r in train_rows] == [1, 2]
    # one step per row: its gradient norm before clipping, and whether grad_clip (1) cut it
    for r in train_rows:
        assert float(r["grad_norm"]) > 0
        assert float(r["clipped"]) == float(float(r["grad_norm"]) > 1.0)
    assert [int(r["step"]) for r in val_rows] == [2]
    assert all(np.isfinite(float(r["val_loss"])) for r in val_rows)
    # each channel's part of it, unweighted (the channels weigh equally here: their mean)
    for r in val_rows:
        charge, time = float(r["val_loss_charge"]), float(r["val_loss_time"])
        assert float(r["val_loss"]) == pytest.approx((charge + time) / 2, rel=1e-5)
    meta = read_metadata(out)
    assert meta["provenance"]["steps"] == 2
    assert meta["config"]["train"]["seed"] == 5
    # inputs by name: a shared model file does not tell where its trainer kept files
    assert meta["provenance"]["training_file"] == training_file.name
    assert str(training_file.parent) not in json.dumps(meta)
    assert meta["training_meta"]["n_selected"] == TrainingFile(training_file).meta["n_selected"]
    # no DL1 conversion happened for a prepared file
    assert not (tmp_path / "model.training.safetensors").exists()


def test_log_snr_shift_option_moves_the_training_times(training_file, tmp_path):
    common = ["-i", training_file, "--steps=2", "--seed=3", *TINY]
    plain, shifted = tmp_path / "plain.safetensors", tmp_path / "shifted.safetensors"
    assert _run([*common, "-o", plain], tmp_path) == 0
    assert _run([*common, "-o", shifted, "--log-snr-shift=2"], tmp_path) == 0
    assert read_metadata(shifted)["config"]["train"]["log_snr_shift"] == 2.0
    assert read_metadata(plain)["config"]["train"]["log_snr_shift"] == 0.0
    time_only = tmp_path / "time_only.safetensors"
    assert _run([*common, "-o", time_only, "--time-log-snr-shift=2"], tmp_path) == 0
    assert read_metadata(time_only)["config"]["train"]["time_log_snr_shift"] == 2.0
    a = _tensors(plain)
    for other in (_tensors(shifted), _tensors(time_only)):
        # the same data, noise and start: only the times (or weights) differ, and the weights
        assert a.keys() == other.keys()
        assert not all(np.array_equal(a[k], other[k]) for k in a if k.startswith("pixel."))
    with pytest.raises(ToolConfigurationError, match="log_snr_shift must be finite"):
        _run([*common, "-o", tmp_path / "nan.safetensors", "--log-snr-shift=nan"], tmp_path)
    assert not (tmp_path / "nan.safetensors").exists()


def test_channel_weights_option_weights_the_loss(training_file, tmp_path):
    common = ["-i", training_file, "--steps=2", "--seed=3", *TINY]
    plain, weighted = tmp_path / "plain.safetensors", tmp_path / "weighted.safetensors"
    assert _run([*common, "-o", plain], tmp_path) == 0
    argv = [*common, "-o", weighted, "--channel-weights", "1", "--channel-weights", "3"]
    assert _run(argv, tmp_path) == 0
    # recorded in the model file, and the training moved differently with them
    assert read_metadata(plain)["config"]["model"]["channel_weights"] == [1.0, 1.0]
    assert read_metadata(weighted)["config"]["model"]["channel_weights"] == [1.0, 3.0]
    a, b = _tensors(plain), _tensors(weighted)
    assert not all(np.array_equal(a[k], b[k]) for k in a if k.startswith("pixel."))
    # a weighted teacher starts a student of the plain preset: the networks are the same
    student = tmp_path / "student.safetensors"
    assert _run([*common, "-o", student, "--init-model", weighted], tmp_path) == 0
    for bad in (["0", "1"], ["1", "nan"], ["1"]):
        out = tmp_path / "bad.safetensors"
        argv = [*common, "-o", out, *[f"--channel-weights={w}" for w in bad]]
        with pytest.raises(ToolConfigurationError, match="channel_weights must be 2 finite"):
            _run(argv, tmp_path)
        assert run_tool(TrainTool(), argv=[str(a) for a in argv], cwd=tmp_path, raises=False) == 2
        assert not out.exists()


def test_night_sky_charge_option_leaves_those_times_to_a_table(training_file, tmp_path):
    from ctapipe_genshower.generator import ShowerGenerator
    from ctapipe_genshower.tools.info import model_card

    common = ["-i", training_file, "--steps=2", "--seed=3", *TINY]
    model = tmp_path / "night_sky.safetensors"
    assert _run([*common, "-o", model, "--night-sky-charge", "1"], tmp_path) == 0
    meta = read_metadata(model)
    assert meta["config"]["model"]["night_sky_charge"] == 1.0
    table = meta["transforms"]["night_sky"]
    assert table["charge"] == 1.0 and table["target_time"] == meta["transforms"]["time"]["center"]
    assert re.search(
        r"night-sky times: pixels at or below 1 p.e. .* tables of [1-9]\d* training pixels in "
        r"1 charge bin, not from the network",
        model_card(model),
    )

    generator = ShowerGenerator.from_file(model, device="cpu")
    conditions = TrainingFile(training_file).to_arrays().conditions[:6].astype(np.float64)
    seeds = np.arange(20, 26)
    out = generator.generate(conditions, seeds, n_steps=2, batch_size=4)
    again = generator.generate(conditions, seeds, n_steps=2, batch_size=6)
    np.testing.assert_array_equal(out["peak_time"], again["peak_time"])
    # without the table the network's own times: the same images, other night-sky times
    generator.transforms.pop("night_sky")
    network = generator.generate(conditions, seeds, n_steps=2, batch_size=4)
    np.testing.assert_array_equal(network["image"], out["image"])
    night_sky = out["image"] <= 1.0
    assert night_sky.mean() > 0.3
    np.testing.assert_array_equal(out["peak_time"][~night_sky], network["peak_time"][~night_sky])
    drawn = out["peak_time"][night_sky]
    assert not np.any(drawn == network["peak_time"][night_sky])
    lo, hi = np.min(table["time_quantiles"]), np.max(table["time_quantiles"])
    assert np.all((drawn >= lo) & (drawn <= hi)) and np.std(drawn) > 0.1 * (hi - lo)

    # the other training target: each image's time plane, recorded, and kept by a student
    plane = tmp_path / "plane.safetensors"
    argv = [*common, "-o", plane, "--night-sky-charge=1", "--night-sky-target=plane"]
    assert _run(argv, tmp_path) == 0
    assert read_metadata(plane)["transforms"]["night_sky"]["target"] == "plane"
    assert "its training target there: plane" in model_card(plane)
    assert not np.array_equal(
        _tensors(plane)["pixel.out.weight"], _tensors(model)["pixel.out.weight"]
    )

    # a student keeps its teacher's night-sky pixels; a wrong or bad setting is refused
    student = tmp_path / "student.safetensors"
    student_argv = [*common, "--init-model", model, "--distill-steps=1"]
    assert _run([*student_argv, "-o", student, "--night-sky-charge=1"], tmp_path) == 0
    assert read_metadata(student)["transforms"]["night_sky"] == table
    # a fine-tune (no distillation) may change them: this data's table, or none
    tuned = tmp_path / "tuned.safetensors"
    argv = [*common, "--init-model", model, "--night-sky-charge=1", "--night-sky-target=plane"]
    assert _run([*argv, "-o", tuned], tmp_path) == 0
    tuned_table = read_metadata(tuned)["transforms"]["night_sky"]
    assert tuned_table == read_metadata(plane)["transforms"]["night_sky"] != table
    assert "its training target there: plane" in model_card(tuned)
    untuned = tmp_path / "untuned.safetensors"
    assert _run([*common, "--init-model", model, "-o", untuned], tmp_path) == 0
    assert "night_sky" not in read_metadata(untuned)["transforms"]
    assert read_metadata(untuned)["config"]["model"]["night_sky_charge"] is None
    for argv, message in (
        (student_argv, "trained with --night-sky-charge 1 --night-sky-target centre; train with"),
        (
            [*common, "--init-model", plane, "--distill-steps=1", "--night-sky-charge=1"],
            "--night-sky-target plane; train with the same",
        ),
        ([*common, "--night-sky-charge=nan"], "night_sky_charge must be finite"),
        ([*common, "--night-sky-target=plane"], "set night_sky_charge"),
    ):
        out_path = tmp_path / "refused.safetensors"
        argv = [*argv, "-o", out_path]
        with pytest.raises(ToolConfigurationError, match=message):
            _run(argv, tmp_path)
        assert run_tool(TrainTool(), argv=[str(a) for a in argv], cwd=tmp_path, raises=False) == 2
        assert not out_path.exists()


def test_output_exists_and_resume_errors(training_file, tmp_path):
    out = tmp_path / "model.safetensors"
    out.write_bytes(b"old")
    with pytest.raises(ToolConfigurationError, match="exists, but overwrite=False"):
        _run(["-i", training_file, "-o", out, "--steps=2", *TINY], tmp_path)
    with pytest.raises(ToolConfigurationError, match=r"training-state file .* does not exist"):
        _run(["-i", training_file, "-o", out, "--steps=2", "--resume", *TINY], tmp_path)
    assert out.read_bytes() == b"old"


def test_input_errors(training_file, tmp_path):
    out = tmp_path / "model.safetensors"
    with pytest.raises(ToolConfigurationError, match="No input files"):
        _run(["-o", out], tmp_path)
    with pytest.raises(ToolConfigurationError, match="Input file not found"):
        _run(["-i", tmp_path / "missing.h5", "-o", out], tmp_path)
    with pytest.raises(ToolConfigurationError, match="No input file matches"):
        _run(["-i", str(tmp_path / "nothing_*.h5"), "-o", out], tmp_path)
    with pytest.raises(ToolConfigurationError, match="not a mix"):
        _run(["-i", training_file, "-i", training_file, "-o", out], tmp_path)


def test_nan_images_in_training_file(training_file, tmp_path):
    arrays = TrainingFile(training_file).to_arrays()
    image = arrays.image.copy()
    image[5, 17] = np.nan
    bad = write_training_file(
        tmp_path / "nan.safetensors",
        TrainingArrays(image, arrays.peak_time, arrays.conditions, arrays.meta),
    )
    with pytest.raises(ToolConfigurationError, match="NaN"):
        _run(["-i", bad, "-o", tmp_path / "m.safetensors", "--steps=2", *TINY], tmp_path)
    assert not (tmp_path / "m.safetensors").exists()


def test_fixed_energy_simulation_is_refused(training_file, tmp_path):
    arrays = TrainingFile(training_file).to_arrays()
    arrays.meta["thrown"] = None  # what the reader gives for a fixed-energy simulation
    path = write_training_file(tmp_path / "fixed.safetensors", arrays)
    with pytest.raises(ToolConfigurationError, match="not a thrown distribution"):
        _run(["-i", path, "-o", tmp_path / "m.safetensors", "--steps=2", *TINY], tmp_path)


def test_resume_reaches_same_weights(training_file, tmp_path):
    """Stopped after step 1 and resumed == uninterrupted (same seed, same settings)."""
    common = ["-i", training_file, "--steps=3", "--seed=3", *TINY]
    full, parts = tmp_path / "full", tmp_path / "parts"
    full.mkdir()
    parts.mkdir()
    _run([*common, "-o", full / "m.safetensors"], full)
    _run([*common, "-o", parts / "m.safetensors", "--stop-after=1"], parts)
    assert read_metadata(parts / "m.safetensors")["provenance"]["steps"] == 1
    _run([*common, "-o", parts / "m.safetensors", "--resume"], parts)

    a, b = _tensors(full / "m.safetensors"), _tensors(parts / "m.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key]), key
    sa, sb = _tensors(full / "m.state.safetensors"), _tensors(parts / "m.state.safetensors")
    for key in sa:
        assert np.array_equal(sa[key], sb[key]), key
    # the loss log of the resumed run continues the stopped one without duplicates
    with (parts / "m.loss.csv").open() as f:
        steps = [int(r["step"]) for r in csv.DictReader(f) if r["kind"] == "train"]
    assert steps == [1, 2, 3]


@pytest.mark.slow
def test_torchrun_two_cpu_processes_agree(training_file, tmp_path):
    """torchrun --nproc_per_node=2 (gloo): both ranks end with identical weights."""
    script = tmp_path / "run_tool.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            import torch.distributed as dist
            from safetensors.torch import save_file
            from ctapipe_genshower.training import loop
            from ctapipe_genshower.tools.train import main

            original_run = loop.Trainer.run

            def run_and_dump(self):
                result = original_run(self)
                rank = dist.get_rank()
                state = {f"net.{k}": v.contiguous() for k, v in self.net.state_dict().items()}
                state.update({f"ema.{k}": v.contiguous() for k, v in self.ema.state_dict().items()})
                save_file(state, f"rank{rank}.safetensors")
                return result

            loop.Trainer.run = run_and_dump
            sys.argv[0] = "ctapipe-genshower-train"
            main()
            """
        )
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(script),
        "-i",
        str(training_file),
        "-o",
        "model.safetensors",
        "--steps=2",
        *TINY,
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0, rank1 = (
        _tensors(tmp_path / "rank0.safetensors"),
        _tensors(tmp_path / "rank1.safetensors"),
    )
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert np.array_equal(rank0[key], rank1[key]), key
    meta = read_metadata(tmp_path / "model.safetensors")
    assert meta["config"]["world_size"] == 2
    # the checkpoint holds rank 0's EMA weights
    checkpoint = _tensors(tmp_path / "model.safetensors")
    pixel = {k[len("pixel.") :]: v for k, v in checkpoint.items() if k.startswith("pixel.")}
    assert pixel
    for key, value in pixel.items():
        assert np.array_equal(value, rank0[f"ema.{key}"]), key
    # the weights moved away from the initial ones during training
    assert any(not np.array_equal(rank0[f"net.{k}"], rank0[f"ema.{k}"]) for k in pixel)


# -- DL1 inputs ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lst_dl1(simtel_dir, tmp_path_factory):
    from ctapipe.tools.process import ProcessorTool

    out = tmp_path_factory.mktemp("train_tool_dl1") / "multi.dl1.h5"
    argv = [
        f"--input={simtel_dir / 'history_meta_75.simtel.zst'}",
        f"--output={out}",
        "--write-images",
        "--overwrite",
    ]
    assert run_tool(ProcessorTool(), argv=argv, cwd=out.parent) == 0
    return out


@pytest.mark.simtel
def test_prepare_only_from_dl1_glob(lst_dl1, tmp_path):
    prepared = tmp_path / "lst.train.safetensors"
    argv = [
        "-i",
        str(lst_dl1.parent / "*.dl1.h5"),
        "--telescope-type=LSTCam",
        "--selection=hillas_intensity >= 1000",
        "--selection=leakage_intensity_width_2 < 1.0",
        "--prepared-file",
        prepared,
        "--prepare-only",
    ]
    assert _run(argv, tmp_path) == 0
    f = TrainingFile(prepared)
    assert len(f) == 4 and f.n_pixels == 1855
    assert f.meta["telescope_type"] == "LST_LST_LSTCam"
    assert f.meta["selection"] == [
        ["hillas_intensity >= 1000", "hillas_intensity >= 1000"],
        ["leakage_intensity_width_2 < 1.0", "leakage_intensity_width_2 < 1.0"],
    ]
    assert f.meta["input_files"] == [str(lst_dl1)]


@pytest.mark.simtel
def test_every_file_of_an_expanded_glob_is_read(lst_dl1, tmp_path):
    """``-i *.dl1.h5`` expanded by the shell: the files after the first are inputs too."""
    copies = [tmp_path / f"run{i}.dl1.h5" for i in (1, 2)]
    for copy in copies:
        shutil.copy(lst_dl1, copy)
    prepared = tmp_path / "two.train.safetensors"
    argv = [
        "-i",
        *map(str, copies),
        "--telescope-type=LSTCam",
        "--selection=hillas_intensity >= 1000",
        "--prepared-file",
        prepared,
        "--prepare-only",
    ]
    assert _run(argv, tmp_path) == 0
    f = TrainingFile(prepared)
    assert f.meta["input_files"] == [str(c) for c in copies]
    assert len(f) == 2 * len(TrainingFile(_prepared_single(lst_dl1, tmp_path)))


def _prepared_single(lst_dl1, tmp_path):
    prepared = tmp_path / "one.train.safetensors"
    argv = ["-i", lst_dl1, "--telescope-type=LSTCam", "--selection=hillas_intensity >= 1000"]
    assert _run([*argv, "--prepared-file", prepared, "--prepare-only"], tmp_path) == 0
    return prepared


@pytest.mark.simtel
def test_dl1_input_errors(lst_dl1, tmp_path):
    out = tmp_path / "model.safetensors"
    with pytest.raises(ToolConfigurationError, match="several telescope types"):
        _run(["-i", lst_dl1, "-o", out], tmp_path)
    with pytest.raises(ToolConfigurationError, match=r"'FlashCam' not in .* available"):
        _run(["-i", lst_dl1, "-o", out, "--telescope-type=FlashCam"], tmp_path)
    no_cut = ["--telescope-type=LSTCam", "--selection=hillas_intensity > 1e9"]
    with pytest.raises(ToolConfigurationError, match="leaves no events"):
        _run(["-i", lst_dl1, "-o", out, *no_cut], tmp_path)

    no_images = tmp_path / "no_images.h5"
    shutil.copy(lst_dl1, no_images)
    with tables.open_file(no_images, "a") as h5:
        h5.remove_node("/dl1/event/telescope/images", recursive=True)
    with pytest.raises(ToolConfigurationError, match="no DL1 images"):
        _run(["-i", no_images, "-o", out], tmp_path)

    nan_file = tmp_path / "nan.h5"
    shutil.copy(lst_dl1, nan_file)
    with tables.open_file(nan_file, "a") as h5:
        table = h5.root.dl1.event.telescope.images.tel_001
        image = table.cols.image[0]
        image[:2] = np.nan
        table.cols.image[0] = image
    with pytest.raises(ToolConfigurationError, match="2 NaN pixels"):
        _run(["-i", nan_file, "-o", out, "--telescope-type=LSTCam"], tmp_path)
    # nothing but ctapipe's provenance log was left behind by the failed runs
    left = sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith("provenance.log"))
    assert left == ["nan.h5", "no_images.h5"]


def test_train_on_toy_dl1(request, tmp_path):
    """The whole chain on toy-simulator DL1: convert, train, checkpoint with toy meta."""
    try:
        dl1 = request.getfixturevalue("toy_proton_dl1_path")
    except pytest.FixtureLookupError:
        pytest.skip("fixture toy_proton_dl1_path (tests/fixtures_toymc.py) not available")
    out = tmp_path / "model.safetensors"
    argv = ["-i", dl1, "-o", out, "--steps=2", "--batch-size=4", *TINY[2:]]
    assert _run(["--model=tiny", *argv], tmp_path) == 0
    prepared = TrainingFile(tmp_path / "model.training.safetensors")
    meta = read_metadata(out)["training_meta"]
    assert meta["n_selected"] == prepared.meta["n_selected"] == len(prepared)
    assert meta["selection"] == [["size", "hillas_intensity >= 250"]]


def test_help_names_example_files_that_exist(capsys):
    """Every ``examples/...`` file the help text names is in the checkout."""
    with pytest.raises(SystemExit):
        TrainTool().run(argv=["--help"])
    named = set(re.findall(r"examples/[\w.\-]+", capsys.readouterr().out))
    assert named, "the help text shows how to make toy DL1 files"
    root = Path(__file__).parent.parent
    assert [name for name in named if not (root / name).is_file()] == []
