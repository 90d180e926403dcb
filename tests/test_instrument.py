import astropy.units as u
import numpy as np
from ctapipe.instrument import SubarrayDescription

from ctapipe_genshower.instrument import (
    CameraGridMapping,
    flashcam_like_geometry,
    single_telescope_subarray,
)


def test_telescope_properties():
    subarray = single_telescope_subarray()
    tel = subarray.tel[1]
    assert tel.optics.equivalent_focal_length == 36 * u.m
    assert tel.optics.effective_focal_length == 36 * u.m
    assert 600 * u.m**2 < tel.optics.mirror_area < 630 * u.m**2
    geom = tel.camera.geometry
    assert 1700 < geom.n_pixels < 1850
    # 50 mm pitch -> ~0.08 deg per pixel at 36 m
    pitch = np.sort(np.hypot(geom.pix_x - geom.pix_x[0], geom.pix_y - geom.pix_y[0]))[1]
    assert u.isclose(pitch, 50 * u.mm)
    fov = 2 * geom.guess_radius() / tel.optics.equivalent_focal_length * u.rad
    assert 3.2 * u.deg < fov.to(u.deg) < 3.8 * u.deg


def test_subarray_hdf5_roundtrip(tmp_path):
    subarray = single_telescope_subarray()
    path = tmp_path / "subarray.h5"
    subarray.to_hdf(path)
    read = SubarrayDescription.from_hdf(path)
    assert read == subarray
    geom, read_geom = subarray.tel[1].camera.geometry, read.tel[1].camera.geometry
    assert np.array_equal(geom.pix_x, read_geom.pix_x)
    assert read.tel[1].optics.effective_focal_length == 36 * u.m


def _assert_grid_roundtrip(geometry):
    rng = np.random.default_rng(0)
    image = rng.normal(size=geometry.n_pixels) * 100
    grid = geometry.image_to_cartesian_representation(image)
    assert np.array_equal(geometry.image_from_cartesian_representation(grid), image)
    mapping = CameraGridMapping.from_geometry(geometry)
    ours = mapping.to_grid(image, fill_value=np.nan)
    assert np.array_equal(np.isnan(ours), np.isnan(grid))
    assert np.array_equal(ours[mapping.mask], grid[mapping.mask])
    assert np.array_equal(mapping.from_grid(grid), image)
    assert np.array_equal(mapping.from_grid(mapping.to_grid(image)), image)


def test_grid_roundtrip_flashcam_like():
    _assert_grid_roundtrip(flashcam_like_geometry())


def test_grid_roundtrip_real_simtel_camera(simtel_dir):
    from ctapipe.io import EventSource

    path = simtel_dir / "gamma_with_obslevel_particles.simtel.zst"
    with EventSource(path, max_events=1) as source:
        cameras = {
            tel.camera.geometry.name: tel.camera.geometry for tel in source.subarray.tel.values()
        }
    assert cameras
    for geometry in cameras.values():
        _assert_grid_roundtrip(geometry)
