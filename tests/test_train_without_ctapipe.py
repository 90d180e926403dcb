"""examples/train_without_ctapipe.py trains on a machine without ctapipe (tiny, on the CPU)."""

import subprocess
import sys
from pathlib import Path

from ctapipe_genshower.checkpoint import read_metadata
from ctapipe_genshower.data import write_training_file
from ctapipe_genshower.training.dataset import pixel_fov

SCRIPT = Path(__file__).parent.parent / "examples" / "train_without_ctapipe.py"

# ctapipe, astropy, PyTables and traitlets cannot be imported in the child process
BLOCK = """
import runpy, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("ctapipe", "astropy", "tables", "traitlets", "pyirf"):
            raise ImportError(f"{name} is not installed on this machine")
sys.meta_path.insert(0, Block())
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_trains_a_geometry_model_without_ctapipe(synthetic_training_arrays, tmp_path):
    arrays = synthetic_training_arrays.subset(slice(0, 64))
    arrays.meta["pixel_fov"] = pixel_fov(arrays.meta)  # what --prepare-only writes
    data = write_training_file(tmp_path / "train.safetensors", arrays)
    out = tmp_path / "model.safetensors"
    argv = [str(SCRIPT), str(data), str(out), "--model=tiny-geo", "--steps=2"]
    argv += ["--batch-size=8", "--shower-steps=10", "--device=cpu"]
    result = subprocess.run(
        [sys.executable, "-c", BLOCK, *argv], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "training images/s" in result.stdout
    meta = read_metadata(out)
    assert meta["config"]["model"]["geometry_maps"] is True
    assert meta["config"]["train"]["min_snr_gamma"] == 0.0  # the default recipe

    # continued from the model file (what a GPU node does with a model trained elsewhere)
    longer = tmp_path / "longer.safetensors"
    again = [*argv[:2], str(longer), *argv[3:], f"--init-model={out}"]
    result = subprocess.run(
        [sys.executable, "-c", BLOCK, *again], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    continued = read_metadata(longer)
    assert continued["config"]["train"]["init_model"] == out.name  # by name
    assert continued["transforms"] == meta["transforms"]

    bad = subprocess.run(
        [sys.executable, "-c", BLOCK, str(SCRIPT), str(out), str(tmp_path / "m2.safetensors")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and "not a ctapipe-genshower training file" in bad.stderr


def test_distils_on_the_teachers_own_images_without_ctapipe(synthetic_training_arrays, tmp_path):
    arrays = synthetic_training_arrays.subset(slice(0, 64))
    arrays.meta["pixel_fov"] = pixel_fov(arrays.meta)
    data = write_training_file(tmp_path / "train.safetensors", arrays)
    teacher = tmp_path / "teacher.safetensors"
    common = ["--model=tiny", "--batch-size=8", "--shower-steps=10", "--device=cpu"]

    def run(*argv):
        return subprocess.run(
            [sys.executable, "-c", BLOCK, str(SCRIPT), str(data), *argv, *common],
            capture_output=True,
            text=True,
            timeout=300,
        )

    result = run(str(teacher), "--steps=2")
    assert result.returncode == 0, result.stderr[-3000:]
    student = tmp_path / "student.safetensors"
    result = run(
        str(student),
        f"--init-model={teacher}",
        "--distill-steps=2",
        "--teacher-substeps=2",
        "--teacher-images=24",
        "--steps=2",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "the teacher generated 24 images" in result.stdout
    meta = read_metadata(student)
    assert meta["config"]["model"]["distilled_steps"] == 2
    assert meta["config"]["train"]["distill_steps"] == 2

    # teacher images without a teacher to make them: refused before anything is written
    refused = run(str(tmp_path / "no.safetensors"), "--teacher-images=8", "--steps=2")
    assert refused.returncode == 2 and "--teacher-images needs" in refused.stderr
    assert not (tmp_path / "no.safetensors").exists()
