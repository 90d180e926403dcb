"""Validation under bad statistics: non-finite images, small samples, the AUC's uncertainty."""

import json
import shutil

import numpy as np
import pytest
import tables
from ctapipe.core import run_tool
from traitlets.config import Config

from ctapipe_genshower.tools.validate import ValidateTool
from ctapipe_genshower.validation.comparison import MIN_SELECTED, compare_samples
from ctapipe_genshower.validation.metrics import (
    auc_standard_error,
    classifier_two_sample_test,
)
from ctapipe_genshower.validation.samples import DL1ValidationReader

LOOSE = Config({"ValidationSelection": {"quality_criteria": [["size", "hillas_intensity >= 50"]]}})
IMAGES = "/dl1/event/telescope/images/tel_001"


def with_nan_images(source, path, rows):
    """A copy of ``source`` whose images ``rows`` (slice or index array) are NaN."""
    shutil.copy(source, path)
    with tables.open_file(path, "a") as h5:
        table = h5.get_node(IMAGES)
        image = table.col("image")
        image[rows] = np.nan
        table.modify_column(colname="image", column=image)
        n_images = table.nrows
    return path, n_images


# -- the AUC's statistical error ----------------------------------------------------------------
@pytest.mark.parametrize("n", [10, 100, 20_000])
def test_hanley_mcneil_at_one_half_is_the_mann_whitney_error(n):
    expected = np.sqrt((2 * n + 1) / (12 * n * n))
    assert auc_standard_error(0.5, n, n) == pytest.approx(expected)
    if n >= 100:
        assert auc_standard_error(0.5, n, n) == pytest.approx(0.41 / np.sqrt(n), rel=0.02)


def test_hanley_mcneil_edge_cases():
    assert auc_standard_error(None, 10, 10) is None
    assert auc_standard_error(0.7, 0, 10) is None
    assert auc_standard_error(1.0, 50, 50) == 0.0
    # falls with the sample size, shrinks towards perfect separation
    assert auc_standard_error(0.6, 400, 400) < auc_standard_error(0.6, 100, 100)
    assert auc_standard_error(0.95, 100, 100) < auc_standard_error(0.6, 100, 100)


def test_classifier_reports_its_error_and_it_covers_the_scatter():
    rng = np.random.default_rng(0)
    aucs = []
    for seed in range(8):
        a, b = rng.normal(size=(2, 150, 3))
        result = classifier_two_sample_test(a, b, seed=seed, n_threads=1)
        assert result["auc_error"] == pytest.approx(auc_standard_error(result["auc"], 150, 150))
        aucs.append(result["auc"])
    # indistinguishable samples: the AUCs scatter around 0.5 by about the stated error
    error = auc_standard_error(0.5, 150, 150)
    assert abs(np.mean(aucs) - 0.5) < 3 * error
    too_few = classifier_two_sample_test(np.zeros((5, 3)), np.zeros((5, 3)))
    assert too_few["auc"] is None and too_few["auc_error"] is None


# -- non-finite images -----------------------------------------------------------------------------
def test_nan_images_are_counted_and_warned(toy_proton_dl1_path, tmp_path):
    path, n_images = with_nan_images(toy_proton_dl1_path, tmp_path / "nan.dl1.h5", slice(0, 7))
    reader = DL1ValidationReader(config=LOOSE, progress_bar=False)
    sample = reader.read([path], name="generated")
    assert sample.n_nonfinite == 7 and sample.n_processed == n_images
    reference = reader.read([toy_proton_dl1_path], name="reference")
    assert reference.n_nonfinite == 0
    metrics = compare_samples(sample, reference, n_threads=1, progress=False)
    expected = f"generated: 7 of {n_images} images have non-finite (NaN or inf) pixels"
    assert [w for w in metrics["warnings"] if w.startswith(expected)]
    assert metrics["samples"]["generated"]["n_nonfinite"] == 7
    assert metrics["samples"]["reference"]["n_nonfinite"] == 0


def test_all_nan_reference_is_named_as_such(toy_proton_dl1_path, tmp_path):
    path, n_images = with_nan_images(toy_proton_dl1_path, tmp_path / "all_nan.dl1.h5", slice(None))
    reader = DL1ValidationReader(config=LOOSE, progress_bar=False)
    with pytest.raises(ValueError, match=f"reference: all {n_images} images have non-finite"):
        reader.read([path], name="reference")


# -- small samples, end to end -------------------------------------------------------------------
def test_small_samples_warn_and_the_report_states_the_auc_error(
    toy_proton_dl1_path, toy_gamma_dl1_path, tmp_path
):
    generated, _ = with_nan_images(toy_gamma_dl1_path, tmp_path / "gen.dl1.h5", slice(0, None, 5))
    output = tmp_path / "report"
    argv = [
        f"--generated={generated}",
        f"--reference={toy_proton_dl1_path}",
        f"--output={output}",
        "--max-events=60",
        "--no-progress",
        "--ValidateTool.classifier_threads=1",
        "--ValidateTool.n_gallery=1",
    ]
    assert run_tool(ValidateTool(config=LOOSE), argv=argv, cwd=tmp_path) == 0
    metrics = json.loads((output / "metrics.json").read_text())
    warnings = metrics["warnings"]
    for name in ("generated", "reference"):
        n = metrics["samples"][name]["n_selected"]
        assert n < MIN_SELECTED
        assert f"{name}: only {n} selected images (fewer than {MIN_SELECTED})" in " ".join(warnings)
    overall = metrics["classifier"]["overall"]
    if overall["auc"] is not None:
        assert overall["auc_error"] == pytest.approx(
            auc_standard_error(overall["auc"], overall["n_per_class"], overall["n_per_class"])
        )
    html = (output / "report.html").read_text()
    assert "Hanley" in html and "<th>&plusmn;</th>" in html
    assert "only" in html and "fewer than" in html
    assert "non-finite" in html
