"""``ctapipe-genshower-background`` on small analytic-response DL2 files."""

import json
import shutil
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import QTable
from ctapipe.core import ToolConfigurationError, run_tool
from ctapipe.io import read_table, write_table
from ctapipe.irf.optimize import OptimizationResult

from ctapipe_genshower.io.diffusion import default_model_path
from ctapipe_genshower.irf.background import read_background_2d_hdu
from ctapipe_genshower.irf.toy_dl2 import write_toy_dl2
from ctapipe_genshower.thrown import ThrownDistribution
from ctapipe_genshower.tools.background import BackgroundTool

CONFIG = Path(__file__).resolve().parents[1] / "examples" / "irf" / "toy_dl2_mono.yaml"
WIDE = ThrownDistribution(
    energy_min=0.1 * u.TeV,
    energy_max=100 * u.TeV,
    spectral_index=-2.0,
    max_scatter_radius=800 * u.m,
    max_viewcone=5 * u.deg,
)
OTHER = ThrownDistribution(
    energy_min=0.05 * u.TeV,
    energy_max=50 * u.TeV,
    spectral_index=-2.5,
    max_scatter_radius=1200 * u.m,
    max_viewcone=6 * u.deg,
)


@pytest.fixture(scope="module")
def dl2_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bkg_tool")
    files = {
        "a": (WIDE, 6000, 1),
        "b": (OTHER, 6000, 2),
        "ref": (WIDE, 12000, 3),
    }
    out = {}
    for name, (thrown, n, seed) in files.items():
        out[name] = d / f"{name}.dl2.h5"
        write_toy_dl2(out[name], thrown, n, seed=seed, obs_id=seed)
    return out


@pytest.fixture(scope="module")
def cuts_file(tmp_path_factory):
    """G/H cut at 0.5 in all reco-energy bins, as ctapipe-optimize-event-selection writes it."""
    edges = np.geomspace(0.01, 1000, 6) * u.TeV
    gh = QTable({"low": edges[:-1], "high": edges[1:], "center": np.sqrt(edges[:-1] * edges[1:])})
    gh["cut"] = np.full(len(gh), 0.5)
    gh.meta["CLFNAME"] = "ExtraTreesClassifier"
    result = OptimizationResult(
        valid_energy_min=0.01 * u.TeV,
        valid_energy_max=1000 * u.TeV,
        valid_offset_min=0 * u.deg,
        valid_offset_max=5 * u.deg,
        gh_cuts=gh,
        clf_prefix="ExtraTreesClassifier",
        quality_query=[("valid geom reco", "disp_is_valid")],
    )
    path = tmp_path_factory.mktemp("cuts") / "cuts.fits"
    result.write(path)
    return path


def _run(argv, cwd, raises=False):
    return run_tool(
        BackgroundTool(),
        argv=[*argv, f"--config={CONFIG}", "--no-progress"],
        cwd=cwd,
        raises=raises,
    )


def test_mixed_input_with_reference(dl2_files, tmp_path):
    out = tmp_path / "bkg.fits"
    argv = [
        f"--input={dl2_files['a']}",
        f"--input={dl2_files['b']}",
        f"--reference={dl2_files['ref']}",
        f"--output={out}",
        f"--plot={tmp_path / 'bkg.png'}",
        f"--summary={tmp_path / 'bkg.json'}",
    ]
    assert _run(argv, tmp_path, raises=True) == 0
    with fits.open(out) as hdul:
        names = [h.name for h in hdul]
        assert names == [
            "PRIMARY",
            "BACKGROUND",
            "BACKGROUND_3D",
            "EFFECTIVE AREA PROTONS",
            "BACKGROUND REFERENCE",
            "BACKGROUND_3D REFERENCE",
            "EFFECTIVE AREA PROTONS REFERENCE",
        ]
        assert hdul["BACKGROUND_3D"].header["HDUCLAS4"] == "BKG_3D"
        rate, e_bins, o_bins = read_background_2d_hdu(hdul["BACKGROUND"])
    assert rate.shape == (len(e_bins) - 1, len(o_bins) - 1)
    summary = json.loads((tmp_path / "bkg.json").read_text())
    assert summary["ndf"] > 5
    # same physics in both samples: the comparison must be statistically consistent
    assert summary["chi2_ndf"] < 3
    assert "chi2/ndf" in (tmp_path / "bkg.md").read_text()
    assert (tmp_path / "bkg.png").stat().st_size > 1000


def test_cuts_select_half(dl2_files, cuts_file, tmp_path):
    rates = []
    for name, extra in (("all", []), ("cut", [f"--cuts={cuts_file}"])):
        out = tmp_path / f"{name}.fits"
        assert _run([f"-i={dl2_files['ref']}", f"-o={out}", *extra], tmp_path, raises=True) == 0
        with fits.open(out) as hdul:
            rates.append(read_background_2d_hdu(hdul["BACKGROUND"])[0])
    # uniform G/H scores: a cut at 0.5 keeps half the weighted rate
    total_all, total_cut = rates[0].sum(), rates[1].sum()
    assert 0.4 < (total_cut / total_all).to_value(u.one) < 0.6


def test_errors_leave_no_output(dl2_files, tmp_path):
    out = tmp_path / "bkg.fits"
    assert _run([f"-o={out}"], tmp_path) == 2  # no input
    assert (
        _run([f"-i={dl2_files['a']}", f"-o={out}", f"--plot={tmp_path / 'p.png'}"], tmp_path) == 2
    )
    assert not out.exists()
    out.write_text("x")
    assert _run([f"-i={dl2_files['a']}", f"-o={out}"], tmp_path) == 2  # exists, no --overwrite
    assert out.read_text() == "x"


def test_missing_simulation_tables(dl2_files, tmp_path):
    import tables

    broken = tmp_path / "broken.h5"
    shutil.copy(dl2_files["a"], broken)
    with tables.open_file(broken, "a") as f:
        f.remove_node("/configuration/simulation/run")
    out = tmp_path / "bkg.fits"
    assert _run([f"-i={broken}", f"-o={out}"], tmp_path) == 2
    assert not out.exists()


def test_reference_with_other_pointing_is_an_error(dl2_files, tmp_path):
    other = ThrownDistribution(
        max_scatter_radius=800 * u.m, max_viewcone=5 * u.deg, pointing_alt=60 * u.deg
    )
    path = tmp_path / "alt60.h5"
    write_toy_dl2(path, other, 1000)
    out = tmp_path / "bkg.fits"
    argv = [f"-i={dl2_files['a']}", f"--reference={path}", f"-o={out}"]
    assert _run(argv, tmp_path) == 2
    assert not out.exists()


# --- errors: one line, exit 2, nothing written ------------------------------------------


def _error(argv, cwd, match):
    """Exit code 2 and a ``ToolConfigurationError`` whose message matches ``match``."""
    assert _run(argv, cwd) == 2
    with pytest.raises(ToolConfigurationError, match=match):
        _run(argv, cwd, raises=True)


def test_missing_output_directory_fails_in_setup(dl2_files, tmp_path):
    out = tmp_path / "no" / "such" / "dir" / "bkg.fits"
    _error([f"-i={dl2_files['a']}", f"-o={out}"], tmp_path, "Output directory .* does not exist")
    assert not (tmp_path / "no").exists()  # not created either
    summary = tmp_path / "nodir" / "bkg.json"
    argv = [
        f"-i={dl2_files['a']}",
        f"--reference={dl2_files['ref']}",
        f"-o={tmp_path / 'bkg.fits'}",
        f"--summary={summary}",
    ]
    _error(argv, tmp_path, "does not exist")
    assert not (tmp_path / "bkg.fits").exists()
    argv = [f"-i={dl2_files['a']}", f"-o={tmp_path}", "--overwrite"]
    _error(argv, tmp_path, "is a directory")


def _dl1_file(request):
    try:
        return Path(request.getfixturevalue("toy_proton_dl1_path"))
    except pytest.FixtureLookupError:
        pytest.skip("fixture toy_proton_dl1_path is not available")


@pytest.mark.parametrize(
    ("kind", "match"),
    [
        ("missing", "no such file"),
        ("empty", "the file is empty, expected a DL2 file"),
        ("model", "this is a model file, expected a DL2 file"),
        ("text", "not an HDF5 file"),
        ("dl1", r"no DL2 tables \(/dl2\): a DL1 file"),
    ],
)
def test_unusable_input_is_one_line_exit_2(kind, match, dl2_files, tmp_path, request):
    path = tmp_path / f"{kind}.h5"
    if kind == "empty":
        path.touch()
    elif kind == "model":
        path = default_model_path()
    elif kind == "text":
        path.write_text("not hdf5\n")
    elif kind == "dl1":
        path = _dl1_file(request)
    out = tmp_path / "bkg.fits"
    _error([f"-i={dl2_files['a']}", f"-i={path}", f"-o={out}"], tmp_path, match)
    _error([f"-i={dl2_files['a']}", f"--reference={path}", f"-o={out}"], tmp_path, match)
    assert not out.exists()
    assert not list(tmp_path.glob(".bkg.fits*"))


def test_missing_or_unreadable_cuts_file_is_exit_2(dl2_files, tmp_path):
    out = tmp_path / "bkg.fits"
    argv = [f"-i={dl2_files['a']}", f"--cuts={tmp_path / 'cuts.fits'}", f"-o={out}"]
    _error(argv, tmp_path, "Cuts file .* no such file")
    (tmp_path / "cuts.fits").write_text("not fits")
    _error(argv, tmp_path, "Cuts file .* not a ctapipe-optimize-event-selection output")
    assert not out.exists()


@pytest.fixture(scope="module")
def point_like_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("point") / "point.dl2.h5"
    point = ThrownDistribution(
        energy_min=0.1 * u.TeV,
        energy_max=100 * u.TeV,
        spectral_index=-2.0,
        max_scatter_radius=800 * u.m,
        max_viewcone=0 * u.deg,
    )
    write_toy_dl2(path, point, 2000, seed=4, obs_id=4)
    return path


def test_weight_errors_are_configuration_errors(dl2_files, point_like_file, tmp_path):
    out = tmp_path / "bkg.fits"
    argv = [f"-i={dl2_files['a']}", f"-i={point_like_file}", f"-o={out}"]
    _error(argv, tmp_path, "Cannot mix point-like and diffuse")
    # a point-like sample needs a point-source target; the proton spectra are diffuse
    _error([f"-i={point_like_file}", f"-o={out}"], tmp_path, "Target spectrum unit")
    assert not out.exists()


@pytest.fixture(scope="module")
def tilted_files(tmp_path_factory):
    """Samples pointing 0.03 deg and 0.08 deg higher than ``WIDE`` (alt 70 deg)."""
    d = tmp_path_factory.mktemp("tilted")
    out = {}
    for d_alt in (0.03, 0.08):
        data = WIDE.to_dict()
        data["pointing_alt"] = {"value": 70 + d_alt, "unit": "deg"}
        out[d_alt] = d / f"alt{d_alt}.dl2.h5"
        write_toy_dl2(out[d_alt], ThrownDistribution.from_dict(data), 1000, seed=5, obs_id=5)
    return out


def test_configured_pointing_tolerance_applies_between_samples(dl2_files, tilted_files, tmp_path):
    out = tmp_path / "bkg.fits"
    strict = [f"-i={dl2_files['a']}", f"-i={tilted_files[0.03]}", f"-o={out}"]
    _error([*strict, "--DL2SampleReader.pointing_tolerance=0.01"], tmp_path, "Mismatched pointing")
    assert not out.exists()
    loose = [f"-i={dl2_files['a']}", f"-i={tilted_files[0.08]}", f"-o={out}"]
    assert _run([*loose, "--DL2SampleReader.pointing_tolerance=0.1"], tmp_path) == 0
    assert out.is_file()


# --- sparse tables ------------------------------------------------------------------------


TABLES = ("BACKGROUND", "BACKGROUND_3D")


def test_sparse_tables_are_reported_and_smoothing_fills_them(dl2_files, tmp_path, capfd):
    occupancy, tables = {}, {}
    for name, extra in (("plain", []), ("smoothed", ["--fov-smoothing=1.5 deg"])):
        out = tmp_path / f"{name}.fits"
        tool = BackgroundTool()
        argv = [f"-i={dl2_files['a']}", f"-o={out}", f"--config={CONFIG}", "--no-progress", *extra]
        assert run_tool(tool, argv=argv, cwd=tmp_path, raises=True) == 0
        occupancy[name] = tool.occupancy
        with fits.open(out) as hdul:
            tables[name] = {
                h: QTable.read(hdul[h])["BKG"][0] for h in ("BACKGROUND", "BACKGROUND_3D")
            }
            assert hdul["BACKGROUND_3D"].header["FOVSMOOT"] == (1.5 if extra else 0.0)
    log = capfd.readouterr().err
    assert "BACKGROUND_3D: " in log and "are empty" in log and "--fov-smoothing" in log
    occ = occupancy["plain"]["BACKGROUND_3D"]
    assert occ["n_bins"] == 12 * 10 * 10
    assert occ["n_empty"] > 0.5 * occ["n_bins"]  # 6000 showers: most 3D bins are empty
    assert occ["scale"] > 1
    # the counts are those of the events, not of the smoothed rates
    assert occupancy["smoothed"] == occupancy["plain"]
    for name in ("BACKGROUND", "BACKGROUND_3D"):
        plain, smoothed = tables["plain"][name], tables["smoothed"][name]
        assert np.count_nonzero(smoothed.value) > np.count_nonzero(plain.value)
    # the smoothing moves rate between FoV bins, not between energy bins: the 3D rate summed
    # over the FoV (equal solid angles to 0.5 %) is conserved per energy bin
    sums = [tables[k]["BACKGROUND_3D"].value.sum(axis=(0, 1)) for k in ("plain", "smoothed")]
    np.testing.assert_allclose(sums[1], sums[0], rtol=0.01)


def _with_image_sizes(source, path, low, seed):
    """A copy of a toy DL2 file with image sizes log-uniform from ``low`` to 10^4 p.e."""
    shutil.copy(source, path)
    events = read_table(path, "/dl2/event/subarray/geometry/disp")
    size = 10 ** np.random.default_rng(seed).uniform(np.log10(low), 4, len(events))
    table = QTable({"obs_id": events["obs_id"], "event_id": events["event_id"]})
    table["hillas_intensity"] = size
    write_table(table, path, "/dl1/event/telescope/parameters/tel_001")
    return path


def test_reference_selected_differently_is_reported(dl2_files, tmp_path, capfd):
    """Generated events all pass a 250 p.e. selection; a reference that keeps smaller images
    gets a warning naming the fix, one with the same selection does not."""
    generated = _with_image_sizes(dl2_files["a"], tmp_path / "gen.dl2.h5", 250, 1)
    for name, low in (("unselected", 50), ("selected", 250)):
        reference = _with_image_sizes(dl2_files["ref"], tmp_path / f"{name}.dl2.h5", low, 2)
        argv = [f"-i={generated}", f"--reference={reference}", f"-o={tmp_path / name}.fits"]
        assert _run(argv, tmp_path, raises=True) == 0
        log = capfd.readouterr().err
        reported = "of the reference events have no image as large as" in log
        assert reported == (name == "unselected"), log[-2000:]
        if reported:
            assert "selection_config.py" in log
