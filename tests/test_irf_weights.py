"""Balance-heuristic weights against pyirf and analytic expectations."""

import astropy.units as u
import numpy as np
import pytest
from pyirf.spectral import IRFDOC_PROTON_SPECTRUM, POINT_SOURCE_FLUX_UNIT, PowerLaw
from pyirf.utils import cone_solid_angle

from ctapipe_genshower.irf.weights import (
    SimulatedComponent,
    balance_heuristic_weights,
    merge_components,
    pyirf_weights,
    support_mask,
)
from ctapipe_genshower.thrown import ThrownDistribution

T_OBS = 1 * u.s

WIDE = ThrownDistribution(
    energy_min=0.1 * u.TeV,
    energy_max=10 * u.TeV,
    spectral_index=-2.0,
    max_scatter_radius=500 * u.m,
    max_viewcone=4 * u.deg,
)
HIGH = ThrownDistribution(
    energy_min=1 * u.TeV,
    energy_max=100 * u.TeV,
    spectral_index=-1.5,
    max_scatter_radius=1000 * u.m,
    max_viewcone=2 * u.deg,
)


def _throw(thrown, n, seed):
    t = thrown.sample(n, np.random.default_rng(seed))
    core = np.hypot(t["true_core_x"], t["true_core_y"])
    return t["true_energy"], core, t["true_source_fov_offset"]


def _weights(events, components, spectrum=IRFDOC_PROTON_SPECTRUM):
    return balance_heuristic_weights(*events, components, spectrum, T_OBS)


TARGET = PowerLaw(normalization=1e-6 / (u.cm**2 * u.s * u.TeV * u.sr), index=-2.7)


def _expected(e_lo, e_hi, radius, offset_max):
    """Target events ``T * int Phi dE * pi r**2 * Omega`` (analytic power-law integral)."""
    g = TARGET.index + 1
    x_lo, x_hi = (e_lo / TARGET.e_ref).to_value(u.one), (e_hi / TARGET.e_ref).to_value(u.one)
    integral = TARGET.normalization * TARGET.e_ref * (x_hi**g - x_lo**g) / g
    return (T_OBS * integral * np.pi * radius**2 * cone_solid_angle(offset_max)).to_value(u.one)


def test_single_sample_equals_pyirf():
    events = _throw(WIDE, 2000, 1)
    comp = SimulatedComponent(WIDE, 2000)
    w = _weights(events, [comp])
    np.testing.assert_allclose(w, pyirf_weights(events[0], comp, IRFDOC_PROTON_SPECTRUM, T_OBS))


def test_identical_settings_same_as_merged():
    a, b = _throw(WIDE, 1000, 1), _throw(WIDE, 3000, 2)
    events = tuple(np.concatenate([x, y]) for x, y in zip(a, b, strict=True))
    split = _weights(events, [SimulatedComponent(WIDE, 1000), SimulatedComponent(WIDE, 3000)])
    merged = pyirf_weights(events[0], SimulatedComponent(WIDE, 4000), IRFDOC_PROTON_SPECTRUM, T_OBS)
    np.testing.assert_allclose(split, merged)
    assert len(merge_components([SimulatedComponent(WIDE, 1), SimulatedComponent(WIDE, 2)])) == 1


@pytest.mark.parametrize(
    "region",
    [
        # (e_lo, e_hi, r_max, offset_max): overlap, only WIDE, only HIGH, whole union at 1-10 TeV
        (1 * u.TeV, 10 * u.TeV, 500 * u.m, 2 * u.deg),
        (0.1 * u.TeV, 1 * u.TeV, 500 * u.m, 4 * u.deg),
        (10 * u.TeV, 100 * u.TeV, 1000 * u.m, 2 * u.deg),
    ],
)
def test_mixed_samples_reproduce_target_counts(region):
    n_a, n_b = 60_000, 40_000
    a, b = _throw(WIDE, n_a, 3), _throw(HIGH, n_b, 4)
    energy, core, offset = (np.concatenate([x, y]) for x, y in zip(a, b, strict=True))
    comps = [SimulatedComponent(WIDE, n_a), SimulatedComponent(HIGH, n_b)]
    w = balance_heuristic_weights(energy, core, offset, comps, TARGET, T_OBS)
    e_lo, e_hi, r_max, off_max = region
    inside = (energy >= e_lo) & (energy < e_hi) & (core <= r_max) & (offset <= off_max)
    expected = _expected(e_lo, e_hi, r_max, off_max)
    observed = w[inside].sum()
    error = np.sqrt(np.sum(w[inside] ** 2))
    assert abs(observed - expected) < 4 * error, (observed, expected, error)
    assert error < 0.05 * expected


def test_each_sample_alone_is_wrong_where_the_other_overlaps():
    """Naively adding pyirf weights of both samples double counts the overlap."""
    n_a, n_b = 60_000, 40_000
    a, b = _throw(WIDE, n_a, 3), _throw(HIGH, n_b, 4)
    naive = np.concatenate(
        [
            pyirf_weights(a[0], SimulatedComponent(WIDE, n_a), TARGET, T_OBS),
            pyirf_weights(b[0], SimulatedComponent(HIGH, n_b), TARGET, T_OBS),
        ]
    )
    energy, core, offset = (np.concatenate([x, y]) for x, y in zip(a, b, strict=True))
    comps = [SimulatedComponent(WIDE, n_a), SimulatedComponent(HIGH, n_b)]
    w = balance_heuristic_weights(energy, core, offset, comps, TARGET, T_OBS)
    inside = (energy >= 1 * u.TeV) & (energy < 10 * u.TeV) & (core <= 500 * u.m)
    inside &= offset <= 2 * u.deg
    assert naive[inside].sum() > 1.5 * w[inside].sum()


def test_outside_support_gets_zero_weight():
    energy = [0.05, 5.0, 5.0, 5.0] * u.TeV
    core = [10, 2000, 10, 10] * u.m
    offset = [1, 1, 10, 1] * u.deg
    w = balance_heuristic_weights(
        energy, core, offset, [SimulatedComponent(WIDE, 100)], TARGET, T_OBS
    )
    assert np.all(w[:3] == 0)
    assert w[3] > 0


def test_support_tolerates_rounding_at_edges():
    energy = [WIDE.energy_max.value * (1 + 1e-7)] * u.TeV
    mask = support_mask(WIDE, energy, [500.0000001] * u.m, [4.0000001] * u.deg)
    assert mask.all()


def test_point_like_and_diffuse_cannot_mix():
    point = ThrownDistribution(max_scatter_radius=500 * u.m)
    events = _throw(point, 10, 5)
    with pytest.raises(ValueError, match="point-like and diffuse"):
        _weights(events, [SimulatedComponent(point, 10), SimulatedComponent(WIDE, 10)])
    with pytest.raises(ValueError, match="does not fit"):
        _weights(events, [SimulatedComponent(point, 10)])
    point_target = PowerLaw(normalization=1e-11 * POINT_SOURCE_FLUX_UNIT, index=-2.5)
    w = _weights(events, [SimulatedComponent(point, 10)], point_target)
    ref = pyirf_weights(events[0], SimulatedComponent(point, 10), point_target, T_OBS)
    np.testing.assert_allclose(w, ref)
