"""Physics sanity of the toy simulator (ToyShowerSimulator), tests that can fail."""

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.table import QTable
from ctapipe.coordinates import CameraFrame, TelescopeFrame
from ctapipe.image import hillas_parameters, tailcuts_clean, timing_parameters
from ctapipe.image.muon import kundu_chaudhuri_circle_fit
from scipy.spatial import cKDTree

from ctapipe_genshower.instrument import single_telescope_subarray
from ctapipe_genshower.thrown import fov_to_altaz
from ctapipe_genshower.toymc import ToyShowerSimulator
from ctapipe_genshower.toymc.detector import HexPixelLookup
from ctapipe_genshower.toymc.geometry import altaz_to_vector, camera_from_fov, fov_from_vector

POINTING = (70 * u.deg, 0 * u.deg)


@pytest.fixture(scope="module")
def simulator():
    return ToyShowerSimulator(single_telescope_subarray())


def showers(n, energy, core_x, core_y=0.0, fov_lon=0.0, fov_lat=0.0):
    """``n`` showers with fixed energy [TeV], core [m] and source offset [deg]."""
    alt, az = fov_to_altaz(np.full(n, fov_lon) * u.deg, np.full(n, fov_lat) * u.deg, *POINTING)
    return QTable(
        {
            "true_energy": np.full(n, energy) * u.TeV,
            "true_core_x": np.broadcast_to(core_x, n) * u.m,
            "true_core_y": np.broadcast_to(core_y, n) * u.m,
            "true_alt": alt,
            "true_az": az,
        }
    )


def run(simulator, table, primary="gamma", seed=0):
    return simulator.simulate(table, np.random.default_rng(seed), primary, POINTING)


def hillas_of(simulator, images, min_pixels=5):
    geom = simulator.geometry
    out = []
    for image in images:
        mask = tailcuts_clean(geom, image, picture_thresh=10, boundary_thresh=5)
        if mask.sum() >= min_pixels:
            out.append(hillas_parameters(geom[mask], image[mask]))
    return out


def test_geometry_matches_ctapipe_frames():
    lon = np.array([0.0, 0.7, -1.2, 1.5]) * u.deg
    lat = np.array([0.0, -0.4, 0.9, 1.1]) * u.deg
    alt, az = fov_to_altaz(lon, lat, 65 * u.deg, 200 * u.deg)
    vectors = altaz_to_vector(alt.to_value(u.rad), az.to_value(u.rad))
    got_lon, got_lat = fov_from_vector(vectors, np.deg2rad(65), np.deg2rad(200))
    assert np.allclose(np.rad2deg(got_lon), lon.value, atol=1e-9)
    assert np.allclose(np.rad2deg(got_lat), lat.value, atol=1e-9)

    x, y = camera_from_fov(lon.to_value(u.rad), lat.to_value(u.rad), 36.0)
    camera = SkyCoord(fov_lon=lon, fov_lat=lat, frame=TelescopeFrame()).transform_to(
        CameraFrame(focal_length=36 * u.m)
    )
    assert np.allclose(x, camera.x.to_value(u.m)) and np.allclose(y, camera.y.to_value(u.m))


def test_hex_lookup_assigns_nearest_pixel():
    geom = single_telescope_subarray().tel[1].camera.geometry
    lookup = HexPixelLookup(geom)
    x, y = geom.pix_x.to_value(u.m), geom.pix_y.to_value(u.m)
    assert np.array_equal(lookup(x, y), np.arange(geom.n_pixels))
    rng = np.random.default_rng(0)
    px, py = rng.uniform(-1.2, 1.2, size=(2, 20000))
    found = lookup(px, py)
    dist, nearest = cKDTree(np.column_stack([x, y])).query(np.column_stack([px, py]))
    inside = found >= 0
    assert np.array_equal(found[inside], nearest[inside])
    # outside = farther than half a pixel from every pixel centre (the camera edge cut)
    assert np.all(dist[~inside] > 0.4 * lookup.pitch)
    assert np.count_nonzero(~inside) > 0


def test_same_seed_same_images(simulator):
    table = showers(30, 1.0, np.linspace(0, 250, 30))
    a, b = run(simulator, table, "proton", seed=4), run(simulator, table, "proton", seed=4)
    c = run(simulator, table, "proton", seed=5)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.peak_time, b.peak_time)
    assert not np.array_equal(a.true_size, c.true_size)


def test_size_grows_with_energy(simulator):
    sizes = [np.median(run(simulator, showers(60, e, 100.0)).true_size) for e in (0.3, 1, 3, 10)]
    assert np.all(np.diff(np.log(sizes)) > np.log(2)), sizes
    # the calibration target: a 1 TeV proton at 100 m gives a few hundred to ~1000 p.e.
    proton = np.median(run(simulator, showers(200, 1.0, 100.0), "proton").true_size)
    assert 200 < proton < 1500, proton


def test_light_pool_falls_off_beyond_its_radius(simulator):
    size = {r: np.median(run(simulator, showers(60, 1.0, r)).true_size) for r in (30, 100, 300)}
    assert size[100] > 0.5 * size[30]  # inside the light pool: roughly flat
    assert size[300] < 0.3 * size[100]  # beyond the light-pool radius: falls off


def test_centroid_distance_grows_with_impact(simulator):
    mean_r = []
    for impact in (20.0, 100.0, 200.0):
        result = run(simulator, showers(40, 2.0, impact))
        mean_r.append(np.mean([h.r.to_value(u.m) for h in hillas_of(simulator, result.image)]))
    assert mean_r[0] < mean_r[1] < mean_r[2], mean_r


def test_gamma_images_point_to_the_source(simulator):
    # point-like gammas: the major axis passes through the source position
    result = run(simulator, showers(40, 2.0, np.linspace(50, 200, 40), fov_lon=0.5))
    source_x, source_y = camera_from_fov(0.0, np.deg2rad(0.0), 36.0)
    source_y = 36.0 * np.deg2rad(0.5)
    miss = []
    for h in hillas_of(simulator, result.image, min_pixels=10):
        dx, dy = source_x - h.x.to_value(u.m), source_y - h.y.to_value(u.m)
        psi = h.psi.to_value(u.rad)
        miss.append(abs(-np.sin(psi) * dx + np.cos(psi) * dy))
    assert len(miss) > 30
    assert np.median(miss) < 36.0 * np.deg2rad(0.1), np.median(miss)


def test_trigger_efficiency_rises_with_energy(simulator):
    rng = np.random.default_rng(3)
    impacts = 300 * np.sqrt(rng.uniform(size=300))
    efficiency = [
        run(simulator, showers(300, e, impacts), "proton").triggered.mean() for e in (0.1, 0.5, 3)
    ]
    assert efficiency[0] < efficiency[1] < efficiency[2], efficiency
    assert efficiency[0] < 0.3 and efficiency[2] > 0.7


def test_protons_are_wider_than_gammas(simulator):
    rng = np.random.default_rng(7)
    impacts = 50 + 150 * rng.uniform(size=150)
    ratio = {}
    for primary, energy in (("gamma", 1.0), ("proton", 3.0)):
        result = run(simulator, showers(150, energy, impacts), primary)
        params = hillas_of(simulator, result.image, min_pixels=10)
        ratio[primary] = np.mean([h.width / h.length for h in params if h.intensity > 200])
    assert ratio["proton"] > ratio["gamma"] + 0.03, ratio


def test_peak_time_gradient_grows_with_impact(simulator):
    geom = simulator.geometry
    slopes = {}
    for impact in (30.0, 250.0):
        result = run(simulator, showers(30, 3.0, impact))
        values = []
        for image, time in zip(result.image, result.peak_time, strict=True):
            mask = tailcuts_clean(geom, image, picture_thresh=10, boundary_thresh=5)
            if mask.sum() < 10:
                continue
            hillas = hillas_parameters(geom[mask], image[mask])
            timing = timing_parameters(geom[mask], image[mask], time[mask], hillas)
            values.append(abs(timing.slope.to_value(1 / u.m)))
        slopes[impact] = np.median(values)
    assert slopes[250.0] > 2 * slopes[30.0], slopes


def test_muon_rings_and_arcs(simulator):
    simulator.muon_probability = 1.0
    try:
        # very low energy protons: the muon dominates; impacts inside the mirror: full rings
        n = 600
        table = showers(n, 0.02, np.zeros(n))
        simulator.muon_max_impact = 10 * u.m
        rings = run(simulator, table, "proton", seed=1)
        probability = simulator.muon_probability_of("proton", np.array(0.02), np.array(0.0))
        simulator.muon_max_impact = 60 * u.m
        population = run(simulator, showers(300, 1.0, np.linspace(0, 200, 300)), "proton")
    finally:
        simulator.muon_probability = ToyShowerSimulator.muon_probability.default_value
        simulator.muon_max_impact = ToyShowerSimulator.muon_max_impact.default_value
    expected = n * probability
    assert abs(rings.n_muons.sum() - expected) < 4 * np.sqrt(expected)
    geom = simulator.geometry
    radii = []
    for image in rings.image:
        mask = tailcuts_clean(geom, image, picture_thresh=8, boundary_thresh=4)
        if mask.sum() < 20:
            continue
        fit = kundu_chaudhuri_circle_fit(
            geom.pix_x[mask].to_value(u.m), geom.pix_y[mask].to_value(u.m), image[mask]
        )
        radii.append(np.rad2deg(u.Quantity(fit[0], u.m).to_value(u.m) / 36.0))
    assert len(radii) >= 5
    assert np.all((np.array(radii) > 0.5) & (np.array(radii) < 1.4)), radii
    # in ordinary proton events muons are present in some, not all, triggered events
    with_muon = population.n_muons[population.triggered]
    assert 0 < with_muon.mean() < 1


def test_noise_and_saturation(simulator):
    result = run(simulator, showers(10, 100.0, 60.0), seed=2)
    assert result.triggered.all()
    assert result.image.max() == pytest.approx(simulator.saturation)
    empty = result.image[result.true_image == 0]
    assert empty.min() < 0
    assert abs(empty.mean()) < 0.05
    assert np.std(empty) == pytest.approx(simulator.noise_rms, rel=0.1)
    assert result.true_image.dtype == np.int32 and result.image.dtype == np.float32
