"""``ctapipe-genshower-background`` on small analytic-response DL2 files."""

import json
import shutil
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import QTable
from ctapipe.core import run_tool
from ctapipe.irf.optimize import OptimizationResult

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
