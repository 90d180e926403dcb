"""gammapy (optional test dependency) reads the background HDUs of ``ctapipe-genshower-background``
and the IRF file of ``ctapipe-compute-irf`` on generated-proton-like DL2 files, with the units
it expects and finite, positive values where the tables have events."""

from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import QTable
from ctapipe.core import run_tool
from ctapipe.irf.optimize import OptimizationResult
from ctapipe.tools.compute_irf import IrfTool

from ctapipe_genshower.irf.background import create_background_3d_hdu, read_background_2d_hdu
from ctapipe_genshower.irf.toy_dl2 import write_toy_dl2
from ctapipe_genshower.thrown import ThrownDistribution
from ctapipe_genshower.tools.background import BackgroundTool

gammapy_irf = pytest.importorskip("gammapy.irf")

CONFIG = Path(__file__).resolve().parents[1] / "examples" / "irf" / "toy_dl2_mono.yaml"
IRF_CONFIG = CONFIG.parent / "irf_mono.yaml"
#: the unit GADF and gammapy use for background rates
GADF_UNIT = u.Unit("MeV-1 s-1 sr-1")
PROTONS = ThrownDistribution(
    energy_min=0.1 * u.TeV,
    energy_max=100 * u.TeV,
    spectral_index=-2.0,
    max_scatter_radius=800 * u.m,
    max_viewcone=5 * u.deg,
)
GAMMAS = ThrownDistribution(
    energy_min=0.1 * u.TeV,
    energy_max=100 * u.TeV,
    spectral_index=-2.0,
    max_scatter_radius=800 * u.m,
    max_viewcone=0 * u.deg,
)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Proton and gamma DL2 files, the tool's output with and without FoV smoothing, and
    ``ctapipe-compute-irf``'s IRF file."""
    d = tmp_path_factory.mktemp("gammapy")
    protons, gammas = d / "protons.dl2.h5", d / "gammas.dl2.h5"
    write_toy_dl2(protons, PROTONS, 6000, seed=1, obs_id=1)
    write_toy_dl2(gammas, GAMMAS, 3000, seed=2, obs_id=2)
    out = {"protons": protons}
    for name, extra in (("plain", []), ("smoothed", ["--fov-smoothing=1 deg"])):
        out[name] = d / f"bkg_{name}.fits"
        argv = [f"-i={protons}", f"-o={out[name]}", f"--config={CONFIG}", "--no-progress", *extra]
        assert run_tool(BackgroundTool(), argv=argv, cwd=d, raises=True) == 0

    edges = np.geomspace(0.01, 1000, 6) * u.TeV
    gh = QTable({"low": edges[:-1], "high": edges[1:], "center": np.sqrt(edges[:-1] * edges[1:])})
    gh["cut"] = np.full(len(gh), 0.5)
    gh.meta["CLFNAME"] = "ExtraTreesClassifier"
    OptimizationResult(
        valid_energy_min=0.01 * u.TeV,
        valid_energy_max=1000 * u.TeV,
        valid_offset_min=0 * u.deg,
        valid_offset_max=5 * u.deg,
        gh_cuts=gh,
        clf_prefix="ExtraTreesClassifier",
        quality_query=[("valid geom reco", "disp_is_valid")],
    ).write(d / "cuts.fits")
    out["irf"] = d / "irf.fits"
    argv = [
        f"--cuts={d / 'cuts.fits'}",
        f"--gamma-file={gammas}",
        f"--proton-file={protons}",
        f"--output={out['irf']}",
        f"--config={IRF_CONFIG}",
    ]
    assert run_tool(IrfTool(), argv=argv, cwd=d, raises=True) == 0
    return out


def _check_unit(bkg):
    assert bkg.unit == GADF_UNIT
    assert bkg.unit.is_equivalent(gammapy_irf.Background2D.default_unit)


def _check_at_centres(bkg, table):
    """gammapy's values at the bin centres are the table's: finite, > 0 where it has events."""
    coords = bkg.axes.get_coord()
    values = bkg.evaluate(**coords).to(table.unit)
    assert np.all(np.isfinite(values))
    filled = table.value > 0
    assert filled.sum() > 0
    assert np.all(values[filled] > 0)
    np.testing.assert_allclose(values.value, table.value, rtol=1e-6, atol=0)


@pytest.mark.parametrize("name", ["plain", "smoothed"])
def test_background_2d_read_by_gammapy(files, name):
    bkg = gammapy_irf.Background2D.read(files[name], hdu="BACKGROUND")
    with fits.open(files[name]) as hdul:
        rate, e_bins, o_bins = read_background_2d_hdu(hdul["BACKGROUND"])
    _check_unit(bkg)
    np.testing.assert_allclose(bkg.axes["energy"].edges.to_value(u.TeV), e_bins.to_value(u.TeV))
    np.testing.assert_allclose(bkg.axes["offset"].edges.to_value(u.deg), o_bins.to_value(u.deg))
    assert not bkg.is_pointlike
    _check_at_centres(bkg, rate.to(GADF_UNIT))


@pytest.mark.parametrize("name", ["plain", "smoothed"])
def test_background_3d_read_by_gammapy(files, name):
    bkg = gammapy_irf.Background3D.read(files[name], hdu="BACKGROUND_3D")
    _check_unit(bkg)
    assert bkg.fov_alignment.name == "ALTAZ"
    assert bkg.axes.names == ["energy", "fov_lon", "fov_lat"]
    edges = bkg.axes["fov_lon"].edges.to_value(u.deg)
    np.testing.assert_allclose(edges, np.linspace(-5, 5, 11))
    with fits.open(files[name]) as hdul:
        table = QTable.read(hdul["BACKGROUND_3D"])["BKG"][0].T  # (energy, lon, lat)
    _check_at_centres(bkg, table.to(GADF_UNIT))


def test_background_3d_axis_order(tmp_path):
    """lon and lat are not swapped on the way to gammapy (different bin numbers per axis)."""
    e_bins = [0.1, 1, 10] * u.TeV
    lon_bins = np.linspace(-2, 2, 5) * u.deg
    lat_bins = np.linspace(-3, 3, 4) * u.deg
    rate = np.arange(1, 2 * 4 * 3 + 1, dtype=float).reshape(2, 4, 3) * u.Unit("TeV-1 s-1 sr-1")
    path = tmp_path / "bkg3d.fits"
    hdu = create_background_3d_hdu(rate, e_bins, lon_bins, lat_bins, extname="BACKGROUND")
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)
    bkg = gammapy_irf.Background3D.read(path, hdu="BACKGROUND")
    assert bkg.data.shape == (2, 4, 3)
    value = bkg.evaluate(energy=np.sqrt(10) * u.TeV, fov_lon=-1.5 * u.deg, fov_lat=2 * u.deg)
    np.testing.assert_allclose(value.to_value(rate.unit), rate[1, 0, 2].value, rtol=1e-6)


def test_smoothing_keeps_gammapy_interpolation_between_neighbours(files):
    """Between two filled bins gammapy's log interpolation stays between their values; the
    FoV smoothing fills the offset bins of every energy bin that has events, so nothing
    collapses to ~1e-150 next to an empty bin there (the artefact of sparse tables)."""
    plain = gammapy_irf.Background2D.read(files["plain"], hdu="BACKGROUND")
    smoothed = gammapy_irf.Background2D.read(files["smoothed"], hdu="BACKGROUND")
    populated = np.any(plain.data > 0, axis=1)  # energy bins with events
    assert np.any(plain.data[populated] == 0)  # holes that gammapy would interpolate to ~0
    assert np.all(smoothed.data[populated] > 0)
    assert np.count_nonzero(smoothed.data > 0) >= np.count_nonzero(plain.data > 0)

    energy = smoothed.axes["energy"]
    offsets = smoothed.axes["offset"].center
    for i in np.flatnonzero(populated[:-1] & populated[1:]):
        mid = np.sqrt(energy.center[i] * energy.center[i + 1])
        value = smoothed.evaluate(energy=mid, offset=offsets).value
        lo = np.minimum(smoothed.data[i], smoothed.data[i + 1])
        hi = np.maximum(smoothed.data[i], smoothed.data[i + 1])
        assert np.all(np.isfinite(value))
        assert np.all((value >= lo * (1 - 1e-6)) & (value <= hi * (1 + 1e-6)))


def test_compute_irf_output_loads_in_gammapy(files):
    irfs = gammapy_irf.load_irf_dict_from_file(files["irf"])
    assert {"aeff", "edisp", "psf", "bkg"} <= set(irfs)
    bkg = irfs["bkg"]
    assert isinstance(bkg, gammapy_irf.Background2D)
    _check_unit(bkg)
    assert irfs["aeff"].unit.is_equivalent(u.m**2)
    with fits.open(files["irf"]) as hdul:
        rate, e_bins, _ = read_background_2d_hdu(hdul["BACKGROUND"])
    np.testing.assert_allclose(bkg.axes["energy"].edges.to_value(u.TeV), e_bins.to_value(u.TeV))
    _check_at_centres(bkg, rate.to(GADF_UNIT))
