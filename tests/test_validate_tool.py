"""``ctapipe-genshower-validate`` end to end on small toy-simulator DL1 files."""

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import tables
from ctapipe.core import run_tool
from traitlets.config import Config

from ctapipe_genshower.tools.validate import ValidateTool
from ctapipe_genshower.validation.samples import PARAMETERS, check_same_telescope

# small samples: a looser size cut than the training's 250 p.e. keeps ~100 images per file
FAST = ["--no-progress", "--ValidateTool.classifier_threads=1", "--ValidateTool.n_gallery=2"]
LOOSE_SELECTION = Config(
    {"ValidationSelection": {"quality_criteria": [["size", "hillas_intensity >= 50"]]}}
)


def _validate(tmp_path, generated, reference, name="report", extra=()):
    output = tmp_path / name
    argv = [f"--generated={generated}", f"--reference={reference}", f"--output={output}"]
    code = run_tool(
        ValidateTool(config=LOOSE_SELECTION),
        argv=[*argv, *FAST, *extra],
        cwd=tmp_path,
        raises=False,
    )
    return code, output


@pytest.fixture(scope="module")
def second_proton_dl1_path(toy_settings_path, tmp_path_factory):
    """An independent toy proton run with the same settings (other seed and obs_id)."""
    from fixtures_toymc import process_toy

    settings = toy_settings_path("protons_seed2", seed=2, obs_id=2)
    output = tmp_path_factory.mktemp("validate_protons2") / "protons2.dl1.h5"
    return process_toy(settings, output)


@pytest.fixture(scope="module")
def proton_report(toy_proton_dl1_path, second_proton_dl1_path, tmp_path_factory):
    """Two independent runs of one simulation: the report of a perfect generator."""
    tmp = tmp_path_factory.mktemp("validate_protons")
    code, output = _validate(tmp, second_proton_dl1_path, toy_proton_dl1_path)
    assert code == 0
    return output


def test_outputs_and_html_reference_every_png(proton_report):
    pngs = sorted(p.name for p in proton_report.glob("*.png"))
    # one per parameter, pixel values, 2 efficiencies, 3 correlations, 2 galleries
    assert len(pngs) == len(PARAMETERS) + 1 + 2 + 3 + 2
    html = (proton_report / "report.html").read_text()
    for name in pngs:
        assert f"id='{name}'" in html
    assert html.count("src='data:image/png;base64,") == len(pngs)
    assert not list(proton_report.parent.glob(".report.*")), "temporary folder left behind"


def test_samples_of_one_simulation_give_auc_half_and_floor_ratio_one(proton_report):
    metrics = json.loads((proton_report / "metrics.json").read_text())
    assert set(PARAMETERS) | {"pixel_values"} == set(metrics["parameters"])
    overall = metrics["classifier"]["overall"]
    assert overall["n_per_class"] > 50
    assert overall["auc"] == pytest.approx(0.5, abs=0.12)
    # conditional (parameters + true energy, impact) and CNN tests: also indistinguishable
    conditional = metrics["classifier_conditional"]
    assert conditional["conditions"] == ["log10_true_energy", "true_impact_distance"]
    assert conditional["overall"]["n_per_class"] == overall["n_per_class"]
    assert abs(conditional["overall"]["auc"] - 0.5) < max(0.12, 4 * overall["auc_error"])
    assert len(conditional["energy_bins"]) == len(metrics["classifier"]["energy_bins"])
    low = metrics["classifier_low_level"]
    assert low["channels"] == ["image / size", "peak time"]
    assert low["n_folds"] == 5 and low["n_per_class"] > 50
    assert abs(low["auc"] - 0.5) < 4 * low["auc_error"]
    html = (proton_report / "report.html").read_text()
    assert "AUC conditional" in html and "Low-level classifier" in html
    ratios = [row["w1_ratio"] for row in metrics["parameters"].values()]
    # each ratio scatters (small samples); their median is ~1 for a perfect generator
    assert 0.6 < np.median(ratios) < 1.6
    gen, ref = metrics["samples"]["generated"], metrics["samples"]["reference"]
    assert gen["n_selected"] > 50 and ref["n_selected"] > 50
    # inputs by name: a shared report holds no directory of the machine it was made on
    assert gen["files"] == ["protons2.dl1.h5"] and ref["files"] == ["protons.dl1.h5"]
    assert metrics["selection"] == [["size", "hillas_intensity >= 50"]]
    assert metrics["warnings"] == []


def test_reading_is_reproducible_and_identical_files_give_zero_distance(toy_proton_dl1_path):
    from ctapipe_genshower.validation.comparison import compare_samples
    from ctapipe_genshower.validation.samples import DL1ValidationReader

    reader = DL1ValidationReader(config=LOOSE_SELECTION, progress_bar=False, max_events=150)
    a = reader.read([toy_proton_dl1_path], name="a")
    b = reader.read([toy_proton_dl1_path], name="b")
    assert a.n_processed == 150 < a.n_read
    assert a.subsample_fraction == pytest.approx(150 / a.n_read)
    metrics = compare_samples(a, b, n_threads=1, progress=False)
    for name, row in metrics["parameters"].items():
        assert row["w1"] == 0.0, name
        assert row["ks"] == 0.0, name
    # same events in both classes: the out-of-fold classifier can only memorise twins
    assert metrics["classifier"]["overall"]["auc"] <= 0.55


def test_proton_vs_gamma_is_distinguished(toy_proton_dl1_path, toy_gamma_dl1_path, tmp_path):
    code, output = _validate(
        tmp_path, toy_gamma_dl1_path, toy_proton_dl1_path, extra=["--no-low-level"]
    )
    assert code == 0
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["classifier"]["overall"]["auc"] > 0.7
    assert metrics["classifier_conditional"]["overall"]["auc"] > 0.7
    assert metrics["classifier_low_level"] is None  # --no-low-level
    assert "Not run" in (output / "report.html").read_text()
    # the gamma run was thrown differently: said in metrics.json and the report
    assert any("energy_range_min" in w for w in metrics["warnings"])
    assert "Warning: thrown distributions differ" in (output / "report.html").read_text()
    # gammas are narrower than protons: a distance well above the reference's own floor
    assert metrics["parameters"]["hillas_width"]["w1_ratio"] > 2


def test_missing_images_is_a_clear_error(toy_proton_dl1_path, tmp_path):
    from ctapipe_genshower.validation.samples import DL1ValidationReader

    no_images = tmp_path / "no_images.dl1.h5"
    shutil.copy(toy_proton_dl1_path, no_images)
    with tables.open_file(no_images, "a") as h5:
        h5.remove_node("/dl1/event/telescope/images", recursive=True)
    code, output = _validate(tmp_path, no_images, toy_proton_dl1_path)
    assert code == 2
    assert not output.exists()
    with pytest.raises(ValueError, match=r"has no DL1 images.*--write-images"):
        DL1ValidationReader().inspect([no_images])


def test_unknown_telescope_type_and_existing_output(toy_proton_dl1_path, tmp_path):
    code, output = _validate(
        tmp_path, toy_proton_dl1_path, toy_proton_dl1_path, extra=["--telescope-type=LSTCam"]
    )
    assert code == 2
    assert not output.exists()
    output.mkdir()
    code, _ = _validate(tmp_path, toy_proton_dl1_path, toy_proton_dl1_path)
    assert code == 2


def test_different_cameras_are_refused():
    from ctapipe_genshower.instrument import flashcam_like_geometry

    geom = flashcam_like_geometry()
    a = SimpleNamespace(telescope_type="LST_LST_CT5Like", geometry=geom)
    check_same_telescope(a, a)
    with pytest.raises(ValueError, match="Telescope types differ"):
        check_same_telescope(a, SimpleNamespace(telescope_type="MST_MST_X", geometry=geom))
    shifted = flashcam_like_geometry()
    shifted.pix_x[:] = shifted.pix_x * 1.1
    with pytest.raises(ValueError, match="Cameras differ"):
        check_same_telescope(a, SimpleNamespace(telescope_type=a.telescope_type, geometry=shifted))
    assert np.all(np.isfinite(geom.pix_x.value))
