"""A miniature of ``examples/irf_chain.sh``: ctapipe's mono ML + IRF tools on toy DL1 files
and generated protons, then the background comparison.

Uses the session fixtures ``toy_gamma_dl1_path``, ``toy_proton_dl1_path`` (toy simulator DL1
parameters) and ``tiny_model_path`` (a tiny generator checkpoint); the same toy file serves
for training and testing, which is fine for checking that the chain runs.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
import yaml
from astropy.io import fits
from ctapipe.core import run_tool
from ctapipe.io import read_table
from ctapipe.irf.optimize import OptimizationResult
from ctapipe.reco.sklearn import MLQualityQuery
from ctapipe.tools.compute_irf import IrfTool
from traitlets.config import Config

from ctapipe_genshower.irf.background import read_background_2d_hdu
from ctapipe_genshower.tools.background import BackgroundTool

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPT = EXAMPLES / "irf_chain.sh"

#: Small models and loose cuts: with training and test on the same tiny files a strong
#: classifier rejects every proton and the background would be empty.
QUICK_CONFIG = """
TrainEnergyRegressor:
  CrossValidator: {n_cross_validations: 2}
  EnergyRegressor:
    model_config: {n_estimators: 5, max_depth: 5, random_state: 0}
TrainDispReconstructor:
  CrossValidator: {n_cross_validations: 2}
  DispReconstructor:
    norm_config: {n_estimators: 5, max_depth: 5, random_state: 0}
    sign_config: {n_estimators: 5, max_depth: 5, random_state: 0}
TrainParticleClassifier:
  CrossValidator: {n_cross_validations: 2}
  ParticleClassifier:
    model_config: {n_estimators: 3, max_depth: 2, random_state: 0}
GhPercentileCutCalculator:
  target_percentile: 95
  min_counts: 3
"""


def _fixture(request, name):
    try:
        return Path(request.getfixturevalue(name))
    except pytest.FixtureLookupError:
        pytest.skip(f"fixture {name} is not available")


def run_example(script, args, tmp_path, **environment):
    """Run an example pipeline with ``QUICK_CONFIG``, this Python's tools first on the PATH and
    ``environment``; returns the ``CompletedProcess`` (stdout and stderr as text)."""
    quick = tmp_path / "quick.yaml"
    quick.write_text(QUICK_CONFIG)
    env = dict(os.environ)
    env.update(
        EXTRA_CONFIG=str(quick),
        GENERATOR_OPTIONS="--DiffusionEventSource.device=cpu --DiffusionEventSource.n_steps=2",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        **environment,
    )
    return subprocess.run(
        ["bash", str(script), *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )


def _loose_cuts(path, out):
    """The cuts of ``path`` with every G/H cut set to 0 (a read result does not re-write)."""
    cuts = OptimizationResult.read(path)
    gh_cuts = cuts.gh_cuts.copy()
    gh_cuts["cut"] = 0.0

    def scalar(q):
        return u.Quantity(q).ravel()[0]

    OptimizationResult(
        valid_energy_min=scalar(cuts.valid_energy.min),
        valid_energy_max=scalar(cuts.valid_energy.max),
        valid_offset_min=scalar(cuts.valid_offset.min),
        valid_offset_max=scalar(cuts.valid_offset.max),
        gh_cuts=gh_cuts,
        clf_prefix=cuts.clf_prefix,
        spatial_selection_table=cuts.spatial_selection_table,
        quality_query=cuts.quality_query.quality_criteria,
    ).write(out)


@pytest.mark.slow
def test_irf_chain_miniature(request, tmp_path):
    gamma = _fixture(request, "toy_gamma_dl1_path")
    proton = _fixture(request, "toy_proton_dl1_path")
    model = _fixture(request, "tiny_model_path")

    work = tmp_path / "chain"
    work.mkdir()
    for name, source in [
        ("gamma_train", gamma),
        ("gamma_test", gamma),
        ("proton_train", proton),
        ("proton_test", proton),
    ]:
        (work / f"{name}.dl1.h5").symlink_to(source)

    result = run_example(SCRIPT, [work, model], tmp_path, N_GENERATED="2000")
    (work / "chain.log").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]

    for name in (
        "energy.pkl",
        "disp.pkl",
        "classifier.pkl",
        "proton_generated.dl2.h5",
        "cuts.fits",
        "irf_simulated.fits",
        "irf_generated.fits",
        "background_comparison.fits",
        "background_comparison.png",
        "background_comparison.md",
        "background_hdu_ratio.md",
    ):
        assert (work / name).is_file(), name
    assert not list(work.glob("*.part.*"))
    summary = json.loads((work / "background_comparison.json").read_text())
    assert {"chi2", "ndf", "ratio", "z"} <= set(summary)

    with fits.open(work / "irf_simulated.fits") as hdul:
        assert "BACKGROUND" in hdul

    # ctapipe-compute-irf and our tool on the same protons, with ctapipe's binning and a
    # G/H cut that keeps everything (so the rates are not empty): the backgrounds agree
    _loose_cuts(work / "cuts.fits", tmp_path / "loose.fits")
    config = f"--config={EXAMPLES / 'irf' / 'irf_mono.yaml'}"
    irf_argv = [
        f"--cuts={tmp_path / 'loose.fits'}",
        f"--gamma-file={work / 'gamma_test.dl2.h5'}",
        f"--proton-file={work / 'proton_test.dl2.h5'}",
        f"--output={tmp_path / 'ctapipe.fits'}",
        config,
    ]
    assert run_tool(IrfTool(), argv=irf_argv, cwd=tmp_path, raises=True) == 0
    argv = [
        f"--input={work / 'proton_test.dl2.h5'}",
        f"--cuts={tmp_path / 'loose.fits'}",
        f"--output={tmp_path / 'ours.fits'}",
        config,
        "--no-progress",
    ]
    assert run_tool(BackgroundTool(), argv=argv, cwd=tmp_path, raises=True) == 0
    with fits.open(tmp_path / "ctapipe.fits") as hdul:
        ctapipe_rate, e_bins, o_bins = read_background_2d_hdu(hdul["BACKGROUND"])
    with fits.open(tmp_path / "ours.fits") as hdul:
        ours, e_ours, o_ours = read_background_2d_hdu(hdul["BACKGROUND"])
    assert ctapipe_rate.sum() > 0
    np.testing.assert_allclose(e_ours, e_bins)
    np.testing.assert_allclose(o_ours, o_bins)
    np.testing.assert_allclose(ours, ctapipe_rate, rtol=1e-6)


SELECTION_SCRIPT = EXAMPLES / "irf" / "selection_config.py"


def _selection_config(tmp_path, model):
    out = tmp_path / "selection.json"
    result = subprocess.run(
        [sys.executable, str(SELECTION_SCRIPT), str(model), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result, out


def _example_criteria(tool, filename, reconstructor):
    example = yaml.safe_load((EXAMPLES / "irf" / filename).read_text())
    return [list(c) for c in example[tool][reconstructor]["QualityQuery"]["quality_criteria"]]


def test_selection_config_applies_the_models_selection(request, tmp_path, toy_proton_dl1_path):
    """The chain's reconstructors get the model's training selection before the example's
    criteria; in ctapipe's query it rejects exactly the images below the selection."""
    model = _fixture(request, "selecting_model_path")
    result, out = _selection_config(tmp_path, model)
    assert result.returncode == 0, result.stderr
    config = json.loads(out.read_text())
    selection = [["size", "hillas_intensity >= 250"]]
    for tool, (filename, reconstructor) in {
        "TrainEnergyRegressor": ("train_energy_regressor.yaml", "EnergyRegressor"),
        "TrainDispReconstructor": ("train_disp_reconstructor.yaml", "DispReconstructor"),
        "TrainParticleClassifier": ("train_particle_classifier.yaml", "ParticleClassifier"),
    }.items():
        criteria = config[tool][reconstructor]["QualityQuery"]["quality_criteria"]
        assert criteria == selection + _example_criteria(tool, filename, reconstructor)

    criteria = config["TrainEnergyRegressor"]["EnergyRegressor"]["QualityQuery"]
    query = MLQualityQuery(config=Config({"MLQualityQuery": criteria}))
    table = read_table(toy_proton_dl1_path, "/dl1/event/telescope/parameters/tel_001")
    passed = query.get_table_mask(table)
    size = np.asarray(table["hillas_intensity"])
    assert np.any(size < 250) and np.any(passed)
    assert not np.any(passed & (size < 250))


def test_selection_config_without_selection_and_bad_model(request, tmp_path):
    model = _fixture(request, "tiny_model_path")  # records no selection
    result, out = _selection_config(tmp_path, model)
    assert result.returncode == 0, result.stderr
    config = json.loads(out.read_text())
    criteria = config["TrainEnergyRegressor"]["EnergyRegressor"]["QualityQuery"]
    expected = _example_criteria(
        "TrainEnergyRegressor", "train_energy_regressor.yaml", "EnergyRegressor"
    )
    assert criteria["quality_criteria"] == expected

    not_a_model = tmp_path / "not_a_model.safetensors"
    not_a_model.write_text("no model")
    result, out = _selection_config(tmp_path / "missing", not_a_model)
    assert result.returncode == 2
    assert "cannot read model" in result.stderr and len(result.stderr.splitlines()) == 1
    assert not out.exists()
