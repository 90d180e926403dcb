"""Shower-level model: thrown sampling, learned efficiency, stochastic size."""

import astropy.units as u
import numpy as np
import pytest
import torch
from scipy import stats

from ctapipe_genshower.model.shower_model import ShowerModel, ThrownSampler
from ctapipe_genshower.model.transforms import ConditionTransform
from ctapipe_genshower.thrown import ThrownDistribution
from ctapipe_genshower.training.shower_fit import fit_shower_model

THROWN = ThrownDistribution(
    energy_min=0.1 * u.TeV,
    energy_max=100 * u.TeV,
    spectral_index=-2.0,
    max_scatter_radius=600 * u.m,
    min_viewcone=0 * u.deg,
    max_viewcone=2 * u.deg,
)


def test_thrown_sampler_agrees_with_thrown_distribution():
    sampler = ThrownSampler.from_dict(THROWN.to_dict())
    table = THROWN.sample(1000, np.random.default_rng(42))
    cond = sampler.sample(1000, np.random.default_rng(42))
    np.testing.assert_allclose(
        cond[:, 0], np.log10(table["true_energy"].to_value(u.TeV)), rtol=1e-12
    )
    np.testing.assert_allclose(cond[:, 1], table["true_core_x"].to_value(u.m), rtol=1e-12)
    np.testing.assert_allclose(cond[:, 2], table["true_core_y"].to_value(u.m), rtol=1e-12)
    np.testing.assert_allclose(
        cond[:, 3], table["true_source_fov_lon"].to_value(u.deg), rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(
        cond[:, 4], table["true_source_fov_lat"].to_value(u.deg), rtol=1e-12, atol=1e-12
    )
    energy = np.geomspace(0.2, 50, 7)
    np.testing.assert_allclose(
        np.exp(sampler.log_energy_pdf(energy)),
        THROWN.energy_pdf(energy * u.TeV).to_value(1 / u.TeV),
    )
    gev = {**THROWN.to_dict(), "energy_min": {"value": 100.0, "unit": "GeV"}}
    assert ThrownSampler.from_dict(gev).energy_min == pytest.approx(0.1)
    with pytest.raises(ValueError, match="unsupported unit"):
        ThrownSampler.from_dict(
            {**THROWN.to_dict(), "max_scatter_radius": {"value": 1, "unit": "lyr"}}
        )


def true_efficiency(cond):
    """A known trigger-and-selection efficiency: rises with energy, falls with impact and offset."""
    log_e, x, y, lon, lat = cond.T
    r = np.hypot(x, y)
    offset = np.hypot(lon, lat)
    return 0.9 / (1 + np.exp(-(3.0 * (log_e - 0.2) - r / 150.0 + 1.0 - 0.5 * offset)))


def test_learned_efficiency_matches_truth():
    sampler = ThrownSampler.from_dict(THROWN.to_dict())
    rng = np.random.default_rng(1)
    n_thrown = 400_000
    thrown = sampler.sample(n_thrown, rng)
    selected = thrown[rng.uniform(size=n_thrown) < true_efficiency(thrown)]
    size = np.full(len(selected), 100.0)
    ctf = ConditionTransform().fit(selected, size)
    model = ShowerModel(hidden=32, depth=2, n_components=1)
    fit_shower_model(
        model,
        ctf.features(selected),
        torch.zeros(len(selected)),
        sampler,
        ctf,
        selected_fraction=len(selected) / n_thrown,
        # 500 steps left a shape bias of up to 5 sigma in one energy bin, so the
        # test failed on some CPUs; at 1500 the pulls stay within about 2 sigma
        steps=1500,
        batch_size=2048,
        learning_rate=5e-3,
        calibration_events=200_000,
        seed=0,
    )
    test = sampler.sample(200_000, np.random.default_rng(2))
    p = model.selection_probability(ctf.features(test), test[:, 0], sampler)
    assert p.mean() == pytest.approx(len(selected) / n_thrown, rel=0.02)

    # efficiency vs energy, averaged over impact and offset as thrown
    bins = np.linspace(-1, 2, 7)
    idx = np.digitize(test[:, 0], bins) - 1
    n_sel_bin = np.histogram(selected[:, 0], bins)[0]
    pulls = []
    for b in range(len(bins) - 1):
        in_bin = idx == b
        truth = true_efficiency(test[in_bin]).mean()
        learned = p[in_bin].mean()
        # statistical error: relative 1/sqrt(N_selected in the bin) of the training sample
        sigma = truth / np.sqrt(max(n_sel_bin[b], 1))
        pulls.append((learned - truth) / sigma)
        assert abs(learned - truth) < max(4 * sigma, 0.05 * truth), (b, learned, truth, sigma)
    assert np.mean(np.square(pulls)) < 6.0, pulls

    # and vs impact distance at high energy (the classifier sees all dimensions)
    high = test[:, 0] > 1
    r = np.hypot(test[:, 1], test[:, 2])
    for lo, hi in [(0, 150), (150, 300), (300, 600)]:
        sel = high & (r >= lo) & (r < hi)
        assert p[sel].mean() == pytest.approx(true_efficiency(test[sel]).mean(), abs=0.08)


def test_size_model_reproduces_conditional_distribution():
    """A bimodal log-size distribution whose shape depends on the shower: the MDN reproduces it."""
    sampler = ThrownSampler(1.0, 100.0, -1.0, 300.0, 0.0, 0.0)
    rng = np.random.default_rng(3)

    def draw(cond, rng):
        log_e, x, y = cond[:, 0], cond[:, 1], cond[:, 2]
        r = np.hypot(x, y)
        second = rng.uniform(size=len(cond)) < 0.2 + 0.5 * (r / 300.0)
        return 2.0 + 0.9 * log_e + np.where(second, 0.6, 0.0) + rng.normal(0, 0.08, len(cond))

    cond = sampler.sample(20_000, rng)
    log_size = draw(cond, rng)
    size = 10**log_size
    ctf = ConditionTransform().fit(cond, size)
    model = ShowerModel(hidden=48, depth=2, n_components=4)
    fit_shower_model(
        model,
        ctf.features(cond),
        ctf.log_size(size),
        sampler,
        ctf,
        selected_fraction=1.0,
        steps=700,
        batch_size=1024,
        learning_rate=5e-3,
        calibration_events=10_000,
    )
    for point in ([0.5, 30.0, 0.0, 0.0, 0.0], [1.5, 0.0, 250.0, 0.0, 0.0]):
        fixed = np.repeat(np.array([point]), 4000, axis=0)
        truth = draw(fixed, np.random.default_rng(4))
        g = torch.Generator().manual_seed(5)
        z = model.sample_z(
            ctf.features(fixed), torch.rand(4000, generator=g), torch.randn(4000, generator=g)
        )
        generated = np.log10(ctf.size_from_log(z).numpy())
        ks = stats.ks_2samp(truth, generated)
        assert ks.statistic < 0.06, (point, ks)
        # not a point regression: the spread is reproduced
        assert np.std(generated) == pytest.approx(np.std(truth), rel=0.15)
