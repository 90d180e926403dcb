"""Several validated samples in one table (``validation.summary``)."""

import json

import numpy as np
import pytest

from ctapipe_genshower.validation.summary import gh_survivors, sample_figures, summary_table


def _metrics(auc, ratios, bins=(0.52, 0.57), n_selected=1794):
    """A ``metrics.json``-like dict with the fields the summary reads."""

    def overall(value):
        return {"overall": {"auc": value, "auc_error": 0.01}}

    conditional = overall(auc + 0.01)
    conditional["energy_bins"] = [{"auc": b, "n_per_class": 300} for b in bins]
    return {
        "classifier": overall(auc),
        "classifier_conditional": conditional,
        "classifier_low_level": {"auc": 0.51, "auc_error": 0.01},
        "parameters": {
            name: {"w1_ratio": r, "n_generated": n_selected} for name, r in ratios.items()
        },
        "samples": {"generated": {"n_selected": n_selected}},
    }


def _background(test, ref, chi2_ndf=1.0):
    return {"n_eff_test": test, "n_eff_ref": ref, "chi2_ndf": chi2_ndf}


def test_gh_survivors_scaled_reference_and_both_errors():
    counts = gh_survivors(_background([10.0, np.nan, 6.0], [30.0, 10.0, np.nan]), scale=0.4)
    assert counts["survivors"] == pytest.approx(16.0)
    assert counts["expected"] == pytest.approx(16.0)  # 40 reference events x 0.4
    assert counts["sigma"] == pytest.approx(0.0)
    low = gh_survivors(_background([4.0], [40.0]), scale=0.4)
    # the reference's error scaled twice (its events times scale^2), the sample's Poisson
    assert low["sigma"] == pytest.approx((4 - 16) / np.sqrt(16 * 0.4 + 4))


def test_sample_figures_reads_a_metrics_file(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(_metrics(0.54, {"a": 1.2, "b": 2.5, "c": np.nan, "d": 2.0})))
    figures = sample_figures(path)
    assert figures["auc"] == 0.54
    assert figures["auc_conditional"] == pytest.approx(0.55)
    assert figures["auc_cnn"] == 0.51
    assert figures["bins_conditional"] == (0.52, 0.57)
    assert figures["n_events"] == 1794
    assert figures["n_parameters"] == 3  # the NaN ratio is not counted
    assert figures["above_limit"] == ["b"]  # 2.0 is at the limit, not above it


def test_summary_table_columns_and_totals():
    metrics = [
        _metrics(0.53, {"a": 2.4, "b": 1.0}),
        _metrics(0.55, {"a": 1.5, "b": 2.2}, bins=(0.47, 0.60)),
    ]
    table = summary_table(
        metrics,
        names=["s7", "s8"],
        gh=[_background([12.0], [30.0]), _background([9.0], [30.0])],
        quality=[_background([], [], 0.8), _background([], [], 1.6)],
        scale=0.4,
        parameters=["c"],
    )
    lines = table.splitlines()
    assert lines[0] == "|  | s7 | s8 | all |"
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[1:] for line in lines[2:]}
    assert rows["classifier AUC"][-1] == "0.540 (mean) |"
    assert rows["conditional AUC per energy bin"] == ["0.520-0.570", "0.470-0.600", "0.470-0.600 |"]
    assert rows["parameters with W1 > 2x floor"] == ["1 of 2", "1 of 2", "2 (sum) |"]
    # the asked-for parameter (absent: '-') and every parameter above the limit in any sample
    assert rows["`c` W1 / floor"] == ["-", "-", "- (max) |"]
    assert rows["`a` W1 / floor"] == ["2.40", "1.50", "2.40 (max) |"]
    assert rows["`b` W1 / floor"] == ["1.00", "2.20", "2.20 (max) |"]
    sigma = (21 - 24) / np.sqrt(24 * 0.4 + 21)
    assert rows["G/H-cut survivors (expected, sigma)"][-1] == f"21.0 (24.0, {sigma:+.1f}) |"
    assert rows["quality cuts chi2/ndf"] == ["0.80", "1.60", "1.60 (max) |"]


def test_summary_table_without_chi2_bins_or_expected_events():
    """A comparison with no bin of enough events (chi2_ndf None) and an empty reference."""
    table = summary_table(
        [_metrics(0.5, {"a": 1.0})],
        gh=[_background([0.0], [0.0])],
        quality=[_background([], [], None)],
        scale=0.4,
    )
    assert "| quality cuts chi2/ndf | - | - (max) |" in table
    assert "| G/H-cut survivors (expected, sigma) | 0.0 (0.0, +nan) | 0.0 (0.0, +nan) |" in table


def test_summary_table_refuses_mismatched_inputs():
    metrics = [_metrics(0.53, {"a": 1.0})]
    with pytest.raises(ValueError, match="2 names for 1 samples"):
        summary_table(metrics, names=["a", "b"])
    with pytest.raises(ValueError, match="2 gh summaries for 1 samples"):
        summary_table(metrics, gh=[_background([1.0], [1.0])] * 2, scale=1.0)
    with pytest.raises(ValueError, match="need the scale"):
        summary_table(metrics, gh=[_background([1.0], [1.0])])
