"""Validation metrics on synthetic samples with known answers."""

import numpy as np
import pytest

from ctapipe_genshower.validation.metrics import (
    FLOOR_SPLITS,
    classifier_two_sample_test,
    common_bins,
    compare_parameter,
    efficiency,
    ks_statistic,
    separation_power,
    wasserstein_1,
    wasserstein_floor,
)


def test_wasserstein_of_a_shift_is_the_shift():
    rng = np.random.default_rng(1)
    a = rng.normal(size=20000)
    assert wasserstein_1(a, a + 0.7) == pytest.approx(0.7, rel=1e-9)
    assert wasserstein_1(a, a) == 0.0


def test_ks_and_separation_power_limits():
    rng = np.random.default_rng(2)
    a = rng.uniform(0, 1, 5000)
    b = rng.uniform(2, 3, 5000)
    ks, p = ks_statistic(a, b)
    assert ks == 1.0
    assert p < 1e-10
    bins = np.linspace(0, 3, 31)
    assert separation_power(a, b, bins) == pytest.approx(1.0)
    assert separation_power(a, a, bins) == 0.0


def test_non_finite_values_are_ignored():
    a = np.array([0.0, 1.0, np.nan, np.inf])
    assert wasserstein_1(a, [0.0, 1.0]) == 0.0


def test_floor_ratio_is_about_one_for_samples_of_one_distribution():
    """Two independent samples of one distribution: W1 / floor ~ 1 (averaged over repeats)."""
    rng = np.random.default_rng(3)
    ratios = []
    for _ in range(30):
        ref = rng.gamma(2.0, 1.0, size=4000)
        gen = rng.gamma(2.0, 1.0, size=1000)  # unequal sizes test the scaling
        ratios.append(wasserstein_1(gen, ref) / wasserstein_floor(ref, len(gen), rng))
    assert np.mean(ratios) == pytest.approx(1.0, abs=0.15)


def test_floor_ratio_is_large_for_a_shifted_sample():
    rng = np.random.default_rng(4)
    ref = rng.normal(size=4000)
    gen = rng.normal(0.3, 1.0, size=4000)
    row = compare_parameter(gen, ref, common_bins(ref, gen), rng)
    assert row["w1"] == pytest.approx(0.3, abs=0.05)
    assert row["w1_ratio"] > 5
    assert row["ks"] > 0.08
    assert row["separation_power"] > 0.01


def test_common_bins_integer_and_log():
    bins = common_bins(np.array([1, 2, 2, 3]), np.array([1, 4]))
    np.testing.assert_allclose(bins, [0.5, 1.5, 2.5, 3.5, 4.5])
    log_bins = common_bins(np.array([10.0, 1000.0]), np.array([100.0]), n_bins=4, log=True)
    assert np.all(np.diff(np.log10(log_bins)) > 0)
    assert log_bins[0] >= 10 and log_bins[-1] <= 1000


def test_classifier_auc_is_half_for_identical_distributions():
    rng = np.random.default_rng(5)
    a = rng.normal(size=(1000, 5))
    b = rng.normal(size=(1000, 5))
    result = classifier_two_sample_test(a, b, seed=1, n_threads=1)
    assert result["n_per_class"] == 1000
    assert result["auc"] == pytest.approx(0.5, abs=0.05)


def test_classifier_auc_is_high_for_a_shifted_sample():
    rng = np.random.default_rng(6)
    a = rng.normal(size=(1000, 5))
    b = rng.normal(size=(1000, 5))
    b[:, 2] += 1.0
    result = classifier_two_sample_test(a, b, seed=1, n_threads=1)
    assert result["auc"] > 0.7


def test_classifier_balances_classes_and_handles_nan():
    rng = np.random.default_rng(7)
    a = rng.normal(size=(300, 3))
    a[::7, 1] = np.nan
    b = rng.normal(size=(2000, 3))
    result = classifier_two_sample_test(a, b, seed=1, n_threads=1, max_per_class=200)
    assert result["n_per_class"] == 200
    assert 0.3 < result["auc"] < 0.7
    few = classifier_two_sample_test(a[:5], b, seed=1, n_threads=1)
    assert few["auc"] is None


def test_efficiency_is_selected_over_thrown_with_subsample_scale():
    bins = np.array([0.0, 1.0, 2.0, 3.0])
    selected = np.array([0.5, 0.5, 1.5])
    thrown = np.array([10.0, 4.0, 0.0])
    eff, err = efficiency(selected, thrown, bins)
    np.testing.assert_allclose(eff[:2], [0.2, 0.25])
    assert np.isnan(eff[2])
    eff_half, _ = efficiency(selected, thrown, bins, scale=0.5)
    np.testing.assert_allclose(eff_half[:2], [0.4, 0.5])
    assert np.all(err[:2] > 0)


def test_floor_of_grouped_values_splits_whole_groups():
    """Values correlated within groups (pixels of one image): the floor must count groups."""
    rng = np.random.default_rng(8)

    def sample(n_groups):
        offsets = np.repeat(rng.normal(size=n_groups), 20)
        return offsets + 0.1 * rng.normal(size=20 * n_groups), np.repeat(np.arange(n_groups), 20)

    grouped, naive = [], []
    for _ in range(20):
        ref, groups = sample(400)
        gen, _ = sample(400)
        w1 = wasserstein_1(gen, ref)
        grouped.append(w1 / wasserstein_floor(ref, 400, rng, groups=groups))
        naive.append(w1 / wasserstein_floor(ref, len(gen), rng))
    assert np.mean(grouped) == pytest.approx(1.0, abs=0.2)
    assert np.mean(naive) > 2  # ignoring the correlation underestimates the floor


def test_the_floor_does_not_depend_on_the_seed():
    """A tail-dominated parameter: the default floor moves by a few per cent between seeds
    (5 halvings moved it by ~15 %, enough to move W1/floor across 2)."""
    ref = np.random.default_rng(0).lognormal(0, 1.2, 4000)
    gen = np.random.default_rng(1).lognormal(0.05, 1.2, 1800)
    bins = common_bins(ref, gen, log=True)
    results = [compare_parameter(gen, ref, bins, np.random.default_rng(s)) for s in range(6)]
    floors = np.array([r["w1_floor"] for r in results])
    assert all(r["w1_floor_splits"] == FLOOR_SPLITS for r in results)
    assert np.std(floors) / np.mean(floors) < 0.05
    few = [wasserstein_floor(ref, 1800, np.random.default_rng(s), n_splits=5) for s in range(6)]
    assert np.std(few) / np.mean(few) > np.std(floors) / np.mean(floors)
