"""DL1 HDF5 -> TrainingArrays, on real sim_telarray output and on the toy simulator."""

import json
import shutil

import astropy.units as u
import numpy as np
import pytest
import tables
from ctapipe.core import run_tool
from ctapipe.io import TableLoader
from ctapipe.tools.process import ProcessorTool
from traitlets.config import Config

from ctapipe_genshower.data import CONDITION_COLUMNS, DL1TrainingReader, TrainingFile
from ctapipe_genshower.data.dl1 import source_position_in_telescope_frame
from ctapipe_genshower.instrument import CameraGridMapping
from ctapipe_genshower.instrument.description import subarray_from_dict
from ctapipe_genshower.thrown import ThrownDistribution, fov_to_altaz

HESS_FILE = "gamma_with_obslevel_particles.simtel.zst"  # 1 event, HESS-1U camera
MULTI_FILE = "history_meta_75.simtel.zst"  # 1 event, 4 LSTCam + 11 NectarCam images

NO_CUT = Config({"TrainingSelection": {"quality_criteria": [("any", "hillas_intensity >= 0")]}})


def _process(simtel, output):
    argv = [f"--input={simtel}", f"--output={output}", "--write-images", "--overwrite"]
    assert run_tool(ProcessorTool(), argv=argv, cwd=output.parent, raises=True) == 0
    return output


@pytest.fixture(scope="module")
def simtel_dl1(simtel_dir, tmp_path_factory):
    """ctapipe-process --write-images on the real sim_telarray files (made once)."""
    out = tmp_path_factory.mktemp("simtel_dl1")
    return {
        "hess": _process(simtel_dir / HESS_FILE, out / "hess.dl1.h5"),
        "multi": _process(simtel_dir / MULTI_FILE, out / "multi.dl1.h5"),
    }


def _toy_dl1(request):
    try:
        return request.getfixturevalue("toy_proton_dl1_path")
    except pytest.FixtureLookupError:
        pytest.skip("fixture toy_proton_dl1_path (tests/fixtures_toymc.py) not available")


def _reference_table(path, tel_type):
    with TableLoader(path) as loader:
        return loader.read_telescope_events_by_type(
            telescopes=[tel_type], dl1_images=True, true_parameters=False, pointing=True
        )[tel_type]


def _check_against_tableloader(arrays, path, tel_type):
    """The reader's arrays equal what ctapipe's TableLoader gives, conditions recomputed."""
    table = _reference_table(path, tel_type)
    table = table[np.asarray(table["hillas_intensity"] >= 0)]
    assert len(arrays) == len(table)
    assert np.array_equal(arrays.image, np.asarray(table["image"], dtype=np.float32))
    assert np.array_equal(arrays.peak_time, np.asarray(table["peak_time"], dtype=np.float32))
    energy = u.Quantity(table["true_energy"], u.TeV).to_value(u.TeV)
    assert np.allclose(arrays.condition("log10_energy"), np.log10(energy), atol=1e-6)
    with TableLoader(path) as loader:
        positions = loader.subarray.positions
    impact_x = [
        (u.Quantity(row["true_core_x"], u.m) - positions[row["tel_id"]][0]).to_value(u.m)
        for row in table
    ]
    assert np.allclose(arrays.condition("impact_x"), impact_x, atol=1e-3)


@pytest.mark.simtel
def test_hess_camera_from_sim_telarray(simtel_dl1):
    with pytest.warns(UserWarning, match="not a thrown distribution"):
        # this test file throws all showers at one energy (1 TeV)
        reader = DL1TrainingReader(input_files=[simtel_dl1["hess"]], config=NO_CUT)
    assert str(reader.telescope) == "MST_HESS-1_HESS-1U"
    arrays = reader.read()
    assert arrays.image.shape == (1, 960)
    _check_against_tableloader(arrays, simtel_dl1["hess"], "MST_HESS-1_HESS-1U")
    meta = arrays.meta
    json.dumps(meta)
    assert meta["camera_name"] == "HESS-1U"
    assert meta["n_selected"] == 1 and meta["n_thrown"] == 1
    assert meta["thrown"] is None
    assert meta["simulation_config"]["energy_range_min"]["value"] == pytest.approx(1.0)
    # the grid mapping is ctapipe's cartesian representation
    geometry = reader.geometry
    grid = CameraGridMapping(tuple(meta["grid_shape"]), np.array(meta["grid_index"]))
    assert np.array_equal(grid.from_grid(grid.to_grid(arrays.image)), arrays.image)
    cartesian = geometry.image_to_cartesian_representation(arrays.image[0])
    valid = np.isfinite(cartesian)
    assert np.array_equal(grid.to_grid(arrays.image[0])[valid], cartesian[valid])
    # the stored subarray is the file's own instrument, as plain JSON
    stored = subarray_from_dict(meta["subarray"])
    with TableLoader(simtel_dl1["hess"]) as loader:
        assert stored == loader.subarray
    assert [str(stored.tel[t]) for t in meta["tel_ids"]] == [meta["telescope_type"]]


@pytest.mark.simtel
def test_lstcam_from_multi_telescope_file(simtel_dl1):
    path = simtel_dl1["multi"]
    reader = DL1TrainingReader(input_files=[path], telescope_type="LSTCam", config=NO_CUT)
    arrays = reader.read()
    assert arrays.meta["telescope_type"] == "LST_LST_LSTCam"
    assert arrays.image.shape == (4, 1855)
    _check_against_tableloader(arrays, path, "LST_LST_LSTCam")
    # one shower seen by 4 telescopes: same energy and source, different impacts
    assert np.ptp(arrays.condition("log10_energy")) == 0
    assert np.ptp(arrays.condition("source_fov_lon")) < 1e-6
    assert len(np.unique(arrays.condition("impact_x"))) == 4
    thrown = ThrownDistribution.from_dict(arrays.meta["thrown"])
    assert thrown.energy_min == 1 * u.TeV and thrown.energy_max == 5 * u.TeV
    assert thrown.max_viewcone == 1 * u.deg
    assert u.isclose(thrown.pointing_alt, 70 * u.deg)
    # diffuse source inside the 1 deg viewcone
    offset = np.hypot(arrays.condition("source_fov_lon"), arrays.condition("source_fov_lat"))
    assert np.all(offset <= 1.0)


@pytest.mark.simtel
def test_telescope_type_errors(simtel_dl1):
    path = simtel_dl1["multi"]
    with pytest.raises(ValueError, match=r"several telescope types .*LST_LST_LSTCam"):
        DL1TrainingReader(input_files=[path])
    with pytest.raises(ValueError, match=r"'FlashCam' not in .*available: \['LST_LST_LSTCam'"):
        DL1TrainingReader(input_files=[path], telescope_type="FlashCam")


@pytest.mark.simtel
def test_default_selection_and_recomputed_parameters(simtel_dl1):
    path = simtel_dl1["multi"]
    table = _reference_table(path, "MST_MST_NectarCam")
    expected = int(np.count_nonzero(np.asarray(table["hillas_intensity"]) >= 250))
    reader = DL1TrainingReader(input_files=[path], telescope_type="NectarCam")
    arrays = reader.read()
    assert len(arrays) == expected == arrays.meta["n_selected"]
    assert arrays.meta["selection"] == [["size", "hillas_intensity >= 250"]]
    assert arrays.meta["selection_counts"] == {"TOTAL": len(table), "size": expected}
    assert not arrays.meta["parameters_recomputed"]
    # ImageProcessor on the stored images, with the same (default) cleaning, selects the same
    recomputed = DL1TrainingReader(
        input_files=[path], telescope_type="NectarCam", recompute_parameters=True
    ).read()
    assert recomputed.meta["parameters_recomputed"]
    assert np.array_equal(recomputed.image, arrays.image)
    # the cleaning is ctapipe's, configured as usual: an impossible threshold keeps nothing
    strict = Config({"TailcutsImageCleaner": {"picture_threshold_pe": 1e6}})
    with pytest.raises(ValueError, match="leaves no events"):
        DL1TrainingReader(
            input_files=[path], telescope_type="NectarCam", recompute_parameters=True, config=strict
        ).read()


@pytest.mark.simtel
def test_file_without_parameters_gets_them_computed(simtel_dl1, tmp_path):
    path = tmp_path / "no_params.dl1.h5"
    shutil.copy(simtel_dl1["multi"], path)
    with tables.open_file(path, "a") as h5:
        h5.remove_node("/dl1/event/telescope/parameters", recursive=True)
    with_params = DL1TrainingReader(
        input_files=[simtel_dl1["multi"]], telescope_type="NectarCam"
    ).read()
    without = DL1TrainingReader(input_files=[path], telescope_type="NectarCam").read()
    assert without.meta["parameters_recomputed"]
    assert np.array_equal(without.conditions, with_params.conditions)


@pytest.mark.simtel
def test_several_files_and_streaming(simtel_dl1, tmp_path):
    path = simtel_dl1["multi"]
    one = DL1TrainingReader(input_files=[path], telescope_type="NectarCam", config=NO_CUT)
    single = one.read()
    two = DL1TrainingReader(
        input_files=[path, path], telescope_type="NectarCam", config=NO_CUT, chunk_size=1
    )
    out = tmp_path / "train.safetensors"
    n = two.to_training_file(out)
    f = TrainingFile(out)
    assert n == len(f) == 2 * len(single)
    assert f.meta["n_thrown"] == 2 * single.meta["n_thrown"]
    assert f.meta["n_selected"] == len(f)
    assert np.array_equal(f.read()["image"], np.concatenate([single.image, single.image]))


@pytest.mark.simtel
@pytest.mark.filterwarnings("ignore:Simulation settings .* are not a thrown distribution")
def test_bad_input_errors(simtel_dl1, tmp_path):
    path = simtel_dl1["hess"]
    with pytest.raises(FileNotFoundError, match="Input file not found"):
        DL1TrainingReader(input_files=[tmp_path / "missing.h5"])
    with pytest.raises(ValueError, match="No input files"):
        DL1TrainingReader(input_files=[])

    no_images = tmp_path / "no_images.h5"
    shutil.copy(path, no_images)
    with tables.open_file(no_images, "a") as h5:
        h5.remove_node("/dl1/event/telescope/images", recursive=True)
    with pytest.raises(ValueError, match=r"has no DL1 images.*--write-images"):
        DL1TrainingReader(input_files=[no_images])

    with pytest.raises(ValueError, match="leaves no events"):
        DL1TrainingReader(
            input_files=[path],
            config=Config(
                {"TrainingSelection": {"quality_criteria": [("x", "hillas_intensity > 1e9")]}}
            ),
        ).read()

    other_run = tmp_path / "other_settings.h5"
    shutil.copy(path, other_run)
    with tables.open_file(other_run, "a") as h5:
        h5.root.configuration.simulation.run.cols.max_scatter_range[0] = 500.0
    with pytest.raises(ValueError, match="Runs differ in simulation settings: max_scatter_range"):
        DL1TrainingReader(input_files=[path, other_run])


@pytest.mark.simtel
def test_nan_pixels_fail_or_drop(simtel_dl1, tmp_path):
    path = tmp_path / "nan.dl1.h5"
    shutil.copy(simtel_dl1["multi"], path)
    with tables.open_file(path, "a") as h5:
        table = h5.root.dl1.event.telescope.images.tel_001
        image = table.cols.image[0]
        image[[3, 7, 11]] = np.nan
        table.cols.image[0] = image
    kwargs = dict(input_files=[path], telescope_type="LSTCam", config=NO_CUT)
    with pytest.raises(ValueError, match=r"1 images with 3 NaN pixels.*nan_policy='drop'"):
        DL1TrainingReader(**kwargs).read()
    arrays = DL1TrainingReader(nan_policy="drop", **kwargs).read()
    assert len(arrays) == 3 and arrays.meta["n_nan_dropped"] == 1
    assert np.all(np.isfinite(arrays.image))


def test_source_position_matches_thrown_distribution():
    # the toy throws (fov_lon, fov_lat) and converts to alt/az; the reader converts back
    lon = np.array([0.0, 0.5, -1.2, 2.0]) * u.deg
    lat = np.array([0.0, -0.3, 0.8, 1.5]) * u.deg
    alt, az = fov_to_altaz(lon, lat, 70 * u.deg, 10 * u.deg)
    back_lon, back_lat = source_position_in_telescope_frame(alt, az, 70 * u.deg, 10 * u.deg)
    assert u.allclose(back_lon, lon, atol=1e-9 * u.deg)
    assert u.allclose(back_lat, lat, atol=1e-9 * u.deg)


def test_toy_dl1(request):
    path = _toy_dl1(request)
    arrays = DL1TrainingReader(input_files=[path]).read()
    meta = arrays.meta
    assert len(arrays) == meta["n_selected"] > 0
    assert meta["n_thrown"] > meta["n_selected"]
    assert arrays.conditions.shape == (len(arrays), len(CONDITION_COLUMNS))
    assert np.all(np.isfinite(arrays.conditions))
    thrown = ThrownDistribution.from_dict(meta["thrown"])
    # conditions inside the thrown phase space
    energy = 10 ** arrays.condition("log10_energy")
    assert np.all(energy >= thrown.energy_min.to_value(u.TeV) * (1 - 1e-5))
    assert np.all(energy <= thrown.energy_max.to_value(u.TeV) * (1 + 1e-5))
    impact = np.hypot(arrays.condition("impact_x"), arrays.condition("impact_y"))
    assert np.all(impact <= thrown.max_scatter_radius.to_value(u.m) + 1e-3)
    offset = np.hypot(arrays.condition("source_fov_lon"), arrays.condition("source_fov_lat"))
    assert np.all(offset <= thrown.max_viewcone.to_value(u.deg) + 1e-3)
    # the paper's default selection: size after cleaning >= 250 p.e.
    table = _reference_table(path, meta["telescope_type"])
    assert len(arrays) == np.count_nonzero(np.asarray(table["hillas_intensity"]) >= 250)
