"""Background rates, GADF HDUs, comparison statistics and proton effective areas."""

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import QTable, vstack
from pyirf.irf import effective_area_per_energy
from pyirf.utils import cone_solid_angle, rectangle_solid_angle

from ctapipe_genshower.irf.background import (
    BACKGROUND_UNIT,
    background_2d,
    background_2d_smoothed,
    background_2d_with_errors,
    background_3d,
    bin_occupancy,
    create_background_2d_hdu,
    create_background_3d_hdu,
    fov_smoothed_rate,
    read_background_2d_hdu,
)
from ctapipe_genshower.irf.compare import (
    compare_backgrounds,
    effective_events,
    proton_effective_area,
)
from ctapipe_genshower.irf.pipeline import table_counts
from ctapipe_genshower.irf.plots import plot_comparison
from ctapipe_genshower.irf.toy_dl2 import trigger_probability
from ctapipe_genshower.irf.weights import SimulatedComponent, simulated_events_info
from ctapipe_genshower.thrown import ThrownDistribution

E_BINS = np.geomspace(0.1, 100, 7) * u.TeV
O_BINS = [0, 1, 2, 3] * u.deg
LONLAT = np.linspace(-3, 3, 7) * u.deg
T_OBS = 10 * u.s


def _events(n, seed, weight=1.0):
    rng = np.random.default_rng(seed)
    lon = rng.uniform(-3, 3, n) * u.deg
    lat = rng.uniform(-3, 3, n) * u.deg
    return QTable(
        {
            "reco_energy": 10 ** rng.uniform(-1, 2, n) * u.TeV,
            "reco_fov_lon": lon,
            "reco_fov_lat": lat,
            "reco_source_fov_offset": np.hypot(lon, lat),
            "weight": np.full(n, weight),
        }
    )


def test_background_3d_integrates_to_weight_sum():
    events = _events(5000, 1, weight=0.5)
    rate = background_3d(events, E_BINS, LONLAT, LONLAT, T_OBS)
    assert rate.shape == (6, 6, 6)

    omega = rectangle_solid_angle(
        LONLAT[:-1, None], LONLAT[1:, None], LONLAT[None, :-1], LONLAT[None, 1:]
    )
    total = (rate * np.diff(E_BINS)[:, None, None] * omega[None] * T_OBS).to_value(u.one)
    np.testing.assert_allclose(total.sum(), events["weight"].sum(), rtol=1e-10)


def test_background_2d_errors_are_poisson_for_unit_weights():
    events = _events(4000, 2)
    rate, error, n = background_2d_with_errors(events, E_BINS, O_BINS, T_OBS)
    np.testing.assert_allclose(rate, background_2d(events, E_BINS, O_BINS, T_OBS))
    ok = n > 0
    np.testing.assert_allclose((error[ok] / rate[ok]).to_value(u.one), 1 / np.sqrt(n[ok]))


def test_hdus_round_trip(tmp_path):
    events = _events(3000, 3)
    rate2 = background_2d(events, E_BINS, O_BINS, T_OBS)
    rate3 = background_3d(events, E_BINS, LONLAT, LONLAT, T_OBS)
    path = tmp_path / "bkg.fits"
    fits.HDUList(
        [
            fits.PrimaryHDU(),
            create_background_2d_hdu(rate2, E_BINS, O_BINS),
            create_background_3d_hdu(rate3, E_BINS, LONLAT, LONLAT, extname="BKG3"),
        ]
    ).writeto(path)
    with fits.open(path) as hdul:
        back, e_bins, o_bins = read_background_2d_hdu(hdul["BACKGROUND"])
        np.testing.assert_allclose(back, rate2)
        np.testing.assert_allclose(e_bins, E_BINS)
        np.testing.assert_allclose(o_bins, O_BINS)
        header = hdul["BKG3"].header
        assert header["HDUCLAS4"] == "BKG_3D"
        table = QTable.read(hdul["BKG3"])
    np.testing.assert_allclose(table["BKG"][0].T, rate3)
    assert table["BKG"].unit == u.Unit("MeV-1 s-1 sr-1")
    assert table["DETX_LO"].shape == (1, 6)


def test_compare_identical_and_scaled():
    events = _events(20000, 4)
    same = compare_backgrounds(events, events, E_BINS, O_BINS, T_OBS)
    assert same.chi2 == 0
    assert same.ndf > 0
    np.testing.assert_allclose(same.ratio[same.used], 1)
    doubled = events.copy()
    doubled["weight"] *= 2
    comp = compare_backgrounds(doubled, events, E_BINS, O_BINS, T_OBS)
    np.testing.assert_allclose(comp.ratio[comp.used], 2)
    assert comp.chi2_ndf > 5


def test_compare_independent_samples_have_chi2_ndf_near_one():
    comp = compare_backgrounds(_events(20000, 5), _events(20000, 6), E_BINS, O_BINS, T_OBS)
    assert comp.ndf == 18
    assert 0.3 < comp.chi2_ndf < 2.0
    assert np.all(np.abs(comp.z[comp.used]) < 4)
    text = comp.to_markdown()
    assert "chi2/ndf" in text
    assert comp.to_dict()["ndf"] == 18


def test_effective_events():
    np.testing.assert_allclose(effective_events([4.0, 0.0], [4.0, 0.0]), [4.0, 0.0])
    np.testing.assert_allclose(effective_events([2.0], [2.0]), [2.0])  # two weights of 1
    np.testing.assert_allclose(effective_events([2.0], [4.0]), [1.0])  # one weight of 2


def _detected(thrown, n, seed):
    rng = np.random.default_rng(seed)
    t = thrown.sample(n, rng)
    t["true_core_distance"] = np.hypot(t["true_core_x"], t["true_core_y"])
    p = trigger_probability(t["true_energy"], t["true_core_distance"])
    return t[rng.uniform(size=n) < p]


def _analytic_area(energy_bins, radius):
    """Bin-centre effective area of the toy trigger in a disc of ``radius``."""
    e = np.sqrt(energy_bins[:-1] * energy_bins[1:])
    sigma = 300 * u.m
    disc = 2 * np.pi * sigma**2 * (1 - np.exp(-(radius**2) / (2 * sigma**2)))
    return (1 - np.exp(-(e / (0.5 * u.TeV)).to_value(u.one))) * disc


def test_proton_effective_area_single_sample_matches_pyirf():
    thrown = ThrownDistribution(
        spectral_index=-1.5, max_scatter_radius=800 * u.m, max_viewcone=3 * u.deg
    )
    events = _detected(thrown, 100_000, 7)
    bins = np.geomspace(3, 100, 4) * u.TeV  # where the area is flat inside the bins
    comp = SimulatedComponent(thrown, 100_000)
    area, error = proton_effective_area(events, [comp], bins)
    ref = effective_area_per_energy(events, simulated_events_info(comp), bins)
    # the same estimator where the area does not vary inside a bin
    assert np.all(np.abs(area - ref) < 4 * error)
    assert np.all(error < 0.1 * area)


def test_proton_effective_area_of_mixed_samples_matches_analytic():
    small = ThrownDistribution(
        energy_min=0.3 * u.TeV, spectral_index=-2.5, max_scatter_radius=400 * u.m,
        max_viewcone=2 * u.deg,
    )  # fmt: skip
    large = ThrownDistribution(
        energy_min=1 * u.TeV, spectral_index=-1.8, max_scatter_radius=1500 * u.m,
        max_viewcone=2 * u.deg,
    )  # fmt: skip
    events = vstack([_detected(small, 150_000, 8), _detected(large, 60_000, 9)])
    bins = np.geomspace(1, 100, 5) * u.TeV  # both samples cover these energies
    comps = [SimulatedComponent(small, 150_000), SimulatedComponent(large, 60_000)]
    area, error = proton_effective_area(events, comps, bins)
    expected = _analytic_area(bins, 1500 * u.m)
    assert np.all(np.abs(area - expected) < 4 * error + 0.02 * expected)
    assert np.all(error < 0.1 * area)


def test_plot_comparison(tmp_path):
    comp = compare_backgrounds(_events(2000, 10), _events(2000, 11), E_BINS, O_BINS, T_OBS)
    area = np.ones(6) * u.m**2
    path = tmp_path / "cmp.png"
    plot_comparison(comp, path, effective_areas=(E_BINS, (area, area * 0.1), (area, area * 0.1)))
    assert path.stat().st_size > 1000


@pytest.mark.parametrize("n_bins", [1, 3])
def test_background_rate_unit_and_solid_angle(n_bins):
    events = _events(1000, 12)
    o_bins = np.linspace(0, 3, n_bins + 1) * u.deg
    rate = background_2d(events, E_BINS, o_bins, T_OBS)
    assert rate.unit == BACKGROUND_UNIT
    total = rate * np.diff(E_BINS)[:, None] * np.diff(cone_solid_angle(o_bins))[None] * T_OBS
    inside = events["reco_source_fov_offset"] < 3 * u.deg
    np.testing.assert_allclose(total.to_value(u.one).sum(), inside.sum())


# --- sparse tables: occupancy and FoV smoothing --------------------------------------------


def test_bin_occupancy():
    counts = np.array([[0, 0, 1, 2], [5, 20, 40, 100]])
    occ = bin_occupancy(counts, min_events=10, quantile=0.9)
    assert (occ["n_bins"], occ["n_empty"], occ["n_low"]) == (8, 2, 3)
    # 10 events in 90 % of the 6 non-empty bins: 10 over their 10 % quantile (1.5 events)
    assert occ["scale"] == pytest.approx(10 / np.quantile([1, 2, 5, 20, 40, 100], 0.1))
    assert bin_occupancy(np.full(4, 50))["scale"] == 1.0
    assert np.isnan(bin_occupancy(np.zeros(3))["scale"])


def test_table_counts_are_raw_events():
    events = _events(3000, 4, weight=0.3)
    counts = table_counts(events, E_BINS, O_BINS, LONLAT)
    assert counts["BACKGROUND"].shape == (6, 3)
    assert counts["BACKGROUND_3D"].shape == (6, 6, 6)
    assert counts["BACKGROUND_3D"].sum() == 3000
    inside = events["reco_source_fov_offset"] < 3 * u.deg
    assert counts["BACKGROUND"].sum() == np.count_nonzero(inside)


def test_fov_smoothed_rate_without_smoothing_is_the_plain_rate():
    events = _events(2000, 5, weight=0.7)
    np.testing.assert_array_equal(
        background_2d_smoothed(events, E_BINS, O_BINS, T_OBS, 0 * u.deg),
        background_2d(events, E_BINS, O_BINS, T_OBS),
    )
    np.testing.assert_allclose(
        background_3d(events, E_BINS, LONLAT, LONLAT, T_OBS, fov_smoothing=0 * u.deg),
        background_3d(events, E_BINS, LONLAT, LONLAT, T_OBS),
        rtol=1e-12,
    )


def test_fov_smoothed_rate_conserves_totals_and_fills_holes():
    rng = np.random.default_rng(3)
    sum_w = rng.poisson(0.7, size=(4, 6, 6)).astype(float)
    sum_w[1] = 0.0  # an empty energy bin stays empty
    omega = rectangle_solid_angle(
        LONLAT[:-1, None], LONLAT[1:, None], LONLAT[None, :-1], LONLAT[None, 1:]
    )
    centres = 0.5 * (LONLAT[1:] + LONLAT[:-1])
    rate = fov_smoothed_rate(sum_w, omega, [centres, centres], 1 * u.deg)
    assert rate.unit == u.sr**-1
    np.testing.assert_allclose((rate * omega).to_value(u.one).sum(axis=(1, 2)), sum_w.sum((1, 2)))
    assert np.all(rate[[0, 2, 3]] > 0)
    assert np.all(rate[1] == 0)
    # no smoothing: the plain rate; a uniform rate in the 2D offset annuli stays ~uniform
    plain = fov_smoothed_rate(sum_w, omega, [centres, centres], 0 * u.deg)
    np.testing.assert_allclose(plain, sum_w / omega.to_value(u.sr) / u.sr)
    offsets = np.linspace(0, 3, 13) * u.deg
    annuli = np.diff(cone_solid_angle(offsets))
    uniform = fov_smoothed_rate(
        5.0 * annuli.to_value(u.sr)[None, :],
        annuli,
        [0.5 * (offsets[1:] + offsets[:-1])],
        0.3 * u.deg,
    )
    # bins 3 sigma from both edges (0.9 .. 2.1 deg)
    np.testing.assert_allclose(uniform.to_value(u.sr**-1)[0, 4:8], 5.0, rtol=0.01)


def test_smoothed_2d_rate_keeps_the_total_per_energy_bin():
    events = _events(500, 6, weight=2.0)
    plain = background_2d(events, E_BINS, O_BINS, T_OBS)
    smoothed = background_2d_smoothed(events, E_BINS, O_BINS, T_OBS, 0.8 * u.deg)
    omega = np.diff(cone_solid_angle(O_BINS))
    np.testing.assert_allclose(
        (smoothed * omega).sum(axis=1).to_value(BACKGROUND_UNIT * u.sr),
        (plain * omega).sum(axis=1).to_value(BACKGROUND_UNIT * u.sr),
    )
