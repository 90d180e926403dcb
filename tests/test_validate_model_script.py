"""A miniature of ``examples/validate_model.sh``: the model card's validation protocol.

The toy runs, the chain's toy files and the "generated" sample are given up front (the script
skips a step whose output exists): the generated sample is a second toy run, so the
validation compares toy with toy, and the chain's own generated sample comes from the tiny
model. What is checked is the wiring: every step's output, and a summary table that holds
the sample's validation and background figures.
"""

import json
import subprocess
from pathlib import Path

import pytest
from fixtures_toymc import process_toy
from test_irf_chain import _fixture, run_example

from ctapipe_genshower.validation.summary import gh_survivors, sample_figures

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "validate_model.sh"


@pytest.mark.slow
def test_validate_model_miniature(request, tmp_path, toy_settings_path):
    gamma = _fixture(request, "toy_gamma_dl1_path")
    proton = _fixture(request, "toy_proton_dl1_path")
    model = _fixture(request, "tiny_model_path")

    work = tmp_path / "work"
    (work / "chain").mkdir(parents=True)
    for name in ("toy_201", "toy_101"):
        (work / f"{name}.dl1.h5").symlink_to(proton)
    for name in ("gamma_train", "gamma_test"):
        (work / "chain" / f"{name}.dl1.h5").symlink_to(gamma)
    # the "generated" sample: another toy run of the same settings (seed 2)
    other = process_toy(
        toy_settings_path("other"), tmp_path / "other.dl1.h5", ["--ToyShowerEventSource.seed=2"]
    )
    (work / "seed_7.dl1.h5").symlink_to(other)

    result = run_example(
        SCRIPT,
        [work, model],
        tmp_path,
        SAMPLES="7:301",
        N_SHOWERS="1000",
        N_REFERENCE="1000",
        N_CHAIN="2000",
        VALIDATE_OPTIONS="--no-low-level",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]

    for name in (
        "chain/cuts.fits",
        "chain/background_comparison.json",
        "chain/background_quality.json",
        "report_seed_7/metrics.json",
        "report_seed_7/report.html",
        "seed_7.dl2.h5",
        "background_seed_7_gh.json",
        "background_seed_7_quality.json",
        "summary.md",
    ):
        assert (work / name).exists(), name
    assert not list(work.glob("*.part*"))

    summary = (work / "summary.md").read_text()
    assert summary.splitlines()[0] == "|  | seed_7 | all |"
    figures = sample_figures(work / "report_seed_7" / "metrics.json")
    assert f"| classifier AUC | {figures['auc']:.3f} +- " in summary
    quality = json.loads((work / "background_seed_7_quality.json").read_text())
    assert {"chi2_ndf", "n_eff_test", "n_eff_ref"} <= set(quality)
    counts = gh_survivors(work / "background_seed_7_gh.json", scale=1.0)
    assert f"| {counts['survivors']:.1f} ({counts['expected']:.1f}," in summary
    chain = gh_survivors(work / "chain" / "background_comparison.json", scale=2.0)
    assert "The chain's own sample (2,000 showers, seed 0, obs_id 5): G/H-cut survivors" in summary
    assert f"{chain['survivors']:.1f} against {chain['expected']:.1f} expected" in summary


def test_validate_model_refuses_a_missing_model(tmp_path):
    result = subprocess.run(
        ["bash", str(SCRIPT), str(tmp_path / "work"), str(tmp_path / "missing.safetensors")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"validate_model.sh: model file not found: {tmp_path / 'missing.safetensors'}"
    ]
    assert not (tmp_path / "work").exists()
