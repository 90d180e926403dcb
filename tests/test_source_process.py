"""DiffusionEventSource through ctapipe's own tools: ctapipe-process, TableLoader, ctapipe-merge."""

import json

import numpy as np
import pytest
import tables
from astropy.table import Table
from ctapipe.core import run_tool
from ctapipe.io import TableLoader, read_table
from ctapipe.tools.merge import MergeTool
from ctapipe.tools.process import ProcessorTool

N_SHOWERS = 600


def process(model, output, *options):
    argv = [
        f"--input={model}",
        f"--output={output}",
        f"--DiffusionEventSource.n_showers={N_SHOWERS}",
        "--DiffusionEventSource.device=cpu",
        "--DiffusionEventSource.n_steps=2",
        *options,
    ]
    assert run_tool(ProcessorTool(), argv=argv, cwd=output.parent) == 0
    return output


@pytest.fixture(scope="module")
def dl1_file(tiny_model_path, tmp_path_factory):
    path = tmp_path_factory.mktemp("process") / "obs1.dl1.h5"
    return process(
        tiny_model_path,
        path,
        "--write-images",
        "--write-parameters",
        "--DiffusionEventSource.seed=1",
        "--DiffusionEventSource.obs_id=1",
    )


@pytest.fixture(scope="module")
def dl1_file_obs2(tiny_model_path, dl1_file):
    return process(
        tiny_model_path,
        dl1_file.parent / "obs2.dl1.h5",
        "--write-images",
        "--write-parameters",
        "--DiffusionEventSource.seed=1",
        "--DiffusionEventSource.obs_id=2",
    )


def test_process_and_read_back(dl1_file):
    with TableLoader(dl1_file) as loader:
        events = loader.read_telescope_events(
            dl1_images=True, dl1_parameters=True, simulated=True, true_parameters=False
        )
        config = loader.read_simulation_configuration()
        distribution = loader.read_shower_distribution()
        subarray = loader.subarray
    n_pixels = subarray.tel[1].camera.geometry.n_pixels
    assert len(events) > 0
    assert np.all(events["obs_id"] == 1)
    assert events["image"].shape == (len(events), n_pixels)
    assert events["image"].dtype == np.float32 and events["peak_time"].dtype == np.float32
    for column in ("true_energy", "true_core_x", "true_alt", "true_impact_distance"):
        assert np.all(np.isfinite(events[column]))
    for column in (
        "hillas_intensity",
        "hillas_length",
        "timing_slope",
        "leakage_intensity_width_2",
    ):
        assert column in events.colnames
    # ImageProcessor saw every generated image (image quality itself is not tested here:
    # the tiny model's images are not physical)
    stats = read_table(dl1_file, "/dl1/service/image_statistics")
    # the quality query counts each event's DL1 image and its true image (all "unknown"
    # here), as for sim_telarray and toy files
    assert stats["counts"][0] == 2 * len(events)

    assert len(config) == 1 and config["n_showers"][0] == N_SHOWERS
    assert config["detector_prog_id"][0] == 100
    assert len(distribution) == 1
    assert distribution["n_entries"][0] == N_SHOWERS
    assert distribution["histogram"][0].sum() == N_SHOWERS


def test_same_seed_same_tables(tiny_model_path, dl1_file, tmp_path):
    again = process(
        tiny_model_path,
        tmp_path / "again.dl1.h5",
        "--write-images",
        "--write-parameters",
        "--DiffusionEventSource.seed=1",
        "--DiffusionEventSource.obs_id=1",
    )
    for path in (
        "/dl1/event/telescope/images/tel_001",
        "/dl1/event/telescope/parameters/tel_001",
        "/simulation/event/subarray/shower",
        "/dl1/event/subarray/trigger",
        "/configuration/simulation/run",
        "/simulation/service/shower_distribution",
    ):
        a, b = read_table(dl1_file, path), read_table(again, path)
        assert a.colnames == b.colnames
        for name in a.colnames:
            np.testing.assert_array_equal(np.asarray(a[name]), np.asarray(b[name]), err_msg=name)


def test_merge_two_runs(dl1_file, dl1_file_obs2, tmp_path):
    merged = tmp_path / "merged.dl1.h5"
    argv = [str(dl1_file), str(dl1_file_obs2), f"--output={merged}"]
    assert run_tool(MergeTool(), argv=argv, cwd=tmp_path) == 0

    with TableLoader(merged) as loader:
        config = loader.read_simulation_configuration()
        distribution = loader.read_shower_distribution()
        events = loader.read_subarray_events()
    assert sorted(config["obs_id"]) == [1, 2]
    assert config["n_showers"].sum() == 2 * N_SHOWERS
    assert distribution["n_entries"].sum() == 2 * N_SHOWERS
    n1 = len(read_table(dl1_file, "/dl1/event/subarray/trigger"))
    n2 = len(read_table(dl1_file_obs2, "/dl1/event/subarray/trigger"))
    assert len(events) == n1 + n2
    assert set(events["obs_id"]) == {1, 2}


def test_max_events_bookkeeping_in_file(tiny_model_path, tmp_path):
    path = process(
        tiny_model_path, tmp_path / "short.dl1.h5", "--write-parameters", "--max-events=3"
    )
    trigger = read_table(path, "/dl1/event/subarray/trigger")
    config = read_table(path, "/configuration/simulation/run")
    distribution = read_table(path, "/simulation/service/shower_distribution")
    assert len(trigger) == 3
    # the run ends at the 3rd selected shower; thrown showers are numbered 1..n
    assert config["n_showers"][0] == trigger["event_id"][-1] < N_SHOWERS
    assert distribution["n_entries"][0] == config["n_showers"][0]


def test_dl2_with_stereo_reconstructor_on_one_telescope(tiny_model_path, tmp_path):
    """ShowerProcessor runs; HillasReconstructor needs two telescopes, so results are invalid."""
    path = process(
        tiny_model_path,
        tmp_path / "dl2.h5",
        "--write-showers",
        "--reconstructor=HillasReconstructor",
        "--max-events=5",
    )
    dl2 = read_table(path, "/dl2/event/subarray/geometry/HillasReconstructor")
    assert len(dl2) == 5
    assert not np.any(dl2["HillasReconstructor_is_valid"])


def test_provenance_records_model(tiny_model_path, dl1_file):
    log = dl1_file.parent / "ctapipe-process.provenance.log"
    text = log.read_text()
    assert str(tiny_model_path.resolve()) in text
    assert '"sha256"' in text

    with tables.open_file(dl1_file) as f:
        attrs = f.root._v_attrs
        assert attrs["CTA PROCESS TYPE"] == "Simulation"


def test_simulation_config_matches_thrown(dl1_file, tiny_model_path):
    from ctapipe_genshower.checkpoint import read_metadata
    from ctapipe_genshower.thrown import ThrownDistribution

    config = Table(read_table(dl1_file, "/configuration/simulation/run"))[0]
    trained = ThrownDistribution.from_dict(
        read_metadata(tiny_model_path)["training_meta"]["thrown"]
    )
    pointing_alt = trained.pointing_alt
    back = ThrownDistribution.from_simulation_config(
        config, pointing_alt=pointing_alt, pointing_az=trained.pointing_az
    )
    assert json.dumps(back.to_dict()) == json.dumps(trained.to_dict())
