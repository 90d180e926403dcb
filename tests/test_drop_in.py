"""Generated DL1 files behave like simulated ones for ctapipe's own tools and readers."""

import json

import numpy as np
import pytest
from ctapipe.core import run_tool
from ctapipe.io import EventSource, TableLoader, read_table
from ctapipe.tools.merge import MergeTool
from ctapipe.tools.process import ProcessorTool

from ctapipe_genshower.io.diffusion import DEFAULT_OBS_ID, UNKNOWN_TRUE_IMAGE
from ctapipe_genshower.thrown import ThrownDistribution

N_SHOWERS = 30_000
PARAMETERS = ["hillas_intensity", "hillas_length", "hillas_width", "timing_slope"]
SHOWER_DISTRIBUTION = "/simulation/service/shower_distribution"


def _process(argv, output):
    assert run_tool(ProcessorTool(), argv=[*argv, f"--output={output}"], cwd=output.parent) == 0
    return output


@pytest.fixture(scope="module")
def generated(tiny_model_path, tmp_path_factory):
    """A default generated run (DL1 images + parameters), as a user makes it."""
    out = tmp_path_factory.mktemp("drop_in") / "generated.dl1.h5"
    argv = [
        f"--input={tiny_model_path}",
        "--write-images",
        "--write-parameters",
        f"--DiffusionEventSource.n_showers={N_SHOWERS}",
        "--DiffusionEventSource.n_steps=2",
    ]
    return _process(argv, out)


def _parameters(path):
    with TableLoader(path) as loader:
        return loader.read_telescope_events([1], dl1_parameters=True, dl1_images=False)


def test_generated_file_is_read_back_by_ctapipe(generated, tmp_path):
    with EventSource(generated) as source:
        events = list(source)
        assert type(source).__name__ == "HDF5EventSource"
    assert len(events) > 0
    true_image = events[0].simulation.tel[1].true_image
    assert np.all(true_image == UNKNOWN_TRUE_IMAGE)

    # the usual second pass: DL1 images in, parameters recomputed, same values
    second = _process([f"--input={generated}", "--write-parameters"], tmp_path / "second.h5")
    first, again = _parameters(generated), _parameters(second)
    assert len(first) == len(again) == len(events)
    for name in PARAMETERS:
        assert np.allclose(first[name], again[name], equal_nan=True), name


def test_generated_file_without_images_is_read_back(tiny_model_path, tmp_path):
    argv = [
        f"--input={tiny_model_path}",
        "--no-write-images",
        "--write-parameters",
        f"--DiffusionEventSource.n_showers={N_SHOWERS}",
        "--DiffusionEventSource.n_steps=2",
    ]
    parameters_only = _process(argv, tmp_path / "parameters_only.h5")
    second = _process([f"--input={parameters_only}", "--write-parameters"], tmp_path / "2nd.h5")
    first, again = _parameters(parameters_only), _parameters(second)
    assert len(first) == len(again) > 0
    for name in PARAMETERS:
        assert np.allclose(first[name], again[name], equal_nan=True), name


def test_merge_with_a_toy_run(generated, toy_proton_dl1_path, tmp_path):
    """Default generated and toy runs merge (same instrument, distinct obs_ids)."""
    merged = tmp_path / "merged.dl1.h5"
    argv = [str(generated), str(toy_proton_dl1_path), f"--output={merged}"]
    assert run_tool(MergeTool(), argv=argv, cwd=tmp_path) == 0

    config = read_table(merged, "/configuration/simulation/run")
    assert sorted(config["obs_id"]) == [1, DEFAULT_OBS_ID]
    runs = (generated, toy_proton_dl1_path)
    inputs = [read_table(p, "/configuration/simulation/run") for p in runs]
    assert config["n_showers"].sum() == sum(c["n_showers"].sum() for c in inputs)
    distribution = read_table(merged, SHOWER_DISTRIBUTION)
    assert distribution["n_entries"].sum() == config["n_showers"].sum()
    n_events = sum(len(read_table(p, "/simulation/event/subarray/shower")) for p in runs)
    with TableLoader(merged) as loader:
        assert len(loader.read_subarray_events()) == n_events


@pytest.mark.simtel
def test_model_of_simtel_files_keeps_their_instrument(simtel_dir, tmp_path):
    """Trained on a sim_telarray array's LSTs, a model generates into that same array."""
    from fixtures_model import tiny_train_config

    from ctapipe_genshower.data import DL1TrainingReader
    from ctapipe_genshower.fit import train
    from ctapipe_genshower.generator import ShowerGenerator
    from ctapipe_genshower.io.diffusion import DiffusionEventSource
    from ctapipe_genshower.model.config import PRESETS

    dl1 = _process(
        [f"--input={simtel_dir / 'history_meta_75.simtel.zst'}", "--write-images"],
        tmp_path / "lst.dl1.h5",
    )
    with TableLoader(dl1) as loader:
        instrument = loader.subarray
    arrays = DL1TrainingReader(input_files=[str(dl1)], telescope_type="LSTCam").read()
    lst_ids = [int(t) for t in instrument.get_tel_ids_for_type(arrays.meta["telescope_type"])]
    assert arrays.meta["tel_ids"] == lst_ids
    # this test file throws every shower at 1 TeV, which is no thrown distribution to
    # generate from; give the model one so that its file is complete
    arrays.meta["thrown"] = ThrownDistribution().to_dict()
    arrays.meta["n_thrown"] = 100 * len(arrays)
    json.dumps(arrays.meta)
    model = tmp_path / "lst.safetensors"
    config = tiny_train_config(steps=2, batch_size=2, shower_steps=5, validation_interval=0)
    train(arrays, model, PRESETS["tiny"], config)

    assert ShowerGenerator.from_file(model, device="cpu").subarray == instrument
    with DiffusionEventSource(model, n_showers=10, allow_extrapolation=True) as source:
        assert source.subarray == instrument
        assert source.simulation_config[DEFAULT_OBS_ID].n_showers == 10
    with pytest.raises(Exception, match="trained on the telescopes"):
        DiffusionEventSource(model, n_showers=10, allow_extrapolation=True, tel_id=999)
