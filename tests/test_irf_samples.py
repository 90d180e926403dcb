"""Reading DL2 proton samples with their simulation bookkeeping."""

import copy
import logging
import shutil

import astropy.units as u
import numpy as np
import pytest
import tables
from astropy.table import QTable
from ctapipe.io import write_table
from ctapipe.io.dl2_tables_preprocessing import DL2EventLoader
from ctapipe.irf import Spectra
from traitlets.config import Config

from ctapipe_genshower.io.diffusion import default_model_path
from ctapipe_genshower.irf.samples import (
    DL2SampleReader,
    check_dl2_file,
    check_support,
    combine_samples,
    largest_image_sizes,
    selection_mismatch,
)
from ctapipe_genshower.irf.toy_dl2 import write_toy_dl2
from ctapipe_genshower.irf.weights import TARGET_SPECTRA, balance_heuristic_weights
from ctapipe_genshower.thrown import ThrownDistribution

CONFIG = Config(
    {
        "DL2EventPreprocessor": {
            "energy_reconstructor": "ExtraTreesRegressor",
            "geometry_reconstructor": "disp",
            "gammaness_classifier": "ExtraTreesClassifier",
        },
        "DL2EventQualityQuery": {"quality_criteria": [["valid", "disp_is_valid"]]},
    }
)
THROWN = ThrownDistribution(
    energy_min=0.1 * u.TeV,
    energy_max=100 * u.TeV,
    spectral_index=-2.0,
    max_scatter_radius=800 * u.m,
    max_viewcone=5 * u.deg,
)


@pytest.fixture
def samples_log(caplog):
    """caplog attached to the samples logger directly (a ctapipe Tool run earlier in the
    session may have stopped ``ctapipe_genshower`` loggers from propagating to the root)."""
    logger = logging.getLogger("ctapipe_genshower.irf.samples")
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.WARNING, logger="ctapipe_genshower.irf.samples")
    yield caplog
    logger.removeHandler(caplog.handler)


@pytest.fixture(scope="module")
def toy_dl2(tmp_path_factory):
    path = tmp_path_factory.mktemp("irf") / "protons.dl2.h5"
    n = write_toy_dl2(path, THROWN, 3000, seed=1, obs_id=7)
    return path, n


def test_read_sample(toy_dl2):
    path, n = toy_dl2
    sample = DL2SampleReader(config=CONFIG).read(path)
    assert len(sample.events) == sample.n_raw_events == n
    assert len(sample.components) == 1
    comp = sample.components[0]
    assert comp.n_showers == 3000
    assert comp.thrown.max_scatter_radius == 800 * u.m
    assert comp.thrown.max_viewcone == 5 * u.deg
    assert u.isclose(comp.thrown.energy_max, 100 * u.TeV)
    for col in ("reco_energy", "gh_score", "true_core_distance", "reco_fov_lon", "weight"):
        assert col in sample.events.colnames
    assert np.all(sample.events["true_core_distance"] <= 800 * u.m)
    assert sample.events["obs_id"].dtype == np.uint64
    assert np.all(sample.events["obs_id"] == 7)
    assert u.isclose(sample.pointing_alt, 70 * u.deg)


def test_weights_equal_ctapipe_for_one_sample(toy_dl2):
    """A single sample gets exactly the weights ctapipe-compute-irf gives it."""
    path, _ = toy_dl2
    sample = DL2SampleReader(config=CONFIG).read(path)
    events, comps = combine_samples([sample])
    obs_time = 50 * u.h
    ours = balance_heuristic_weights(
        events["true_energy"],
        events["true_core_distance"],
        events["true_source_fov_offset"],
        comps,
        TARGET_SPECTRA["IRFDOC_PROTON_SPECTRUM"],
        obs_time,
    )
    loader = DL2EventLoader(
        config=CONFIG, file=path, target_spectrum=Spectra.IRFDOC_PROTON_SPECTRUM
    )
    ref_events, _, meta = loader.load_preselected_events(10_000, obs_time)
    ref = loader.make_event_weights(ref_events, meta["spectrum"], "protons")
    np.testing.assert_allclose(ours, ref["weight"], rtol=1e-6)


def test_identical_settings_merge_across_files(tmp_path):
    paths = [tmp_path / f"p{i}.h5" for i in range(2)]
    for i, path in enumerate(paths):
        write_toy_dl2(path, THROWN, 500, seed=i, obs_id=i + 1)
    reader = DL2SampleReader(config=CONFIG)
    sample = reader.read(paths)
    assert len(sample.components) == 1
    assert sample.components[0].n_showers == 1000
    _, comps = combine_samples([reader.read(paths[0]), reader.read(paths[1])])
    assert len(comps) == 1 and comps[0].n_showers == 1000


def test_missing_shower_distribution_falls_back(tmp_path, samples_log):
    path = tmp_path / "nodist.h5"
    write_toy_dl2(path, THROWN, 400, write_distribution=False)
    sample = DL2SampleReader(config=CONFIG).read(path)
    assert sample.n_showers == 400
    assert "no shower distribution" in samples_log.text


def test_missing_simulation_config_is_an_error(tmp_path):
    path = tmp_path / "noconfig.h5"
    write_toy_dl2(path, THROWN, 300)
    with tables.open_file(path, "a") as f:
        f.remove_node("/configuration/simulation/run")
    with pytest.raises(ValueError, match="no simulation configuration table"):
        DL2SampleReader(config=CONFIG).read(path)


def test_wrong_prefix_is_a_clear_error(toy_dl2):
    config = copy.deepcopy(CONFIG)
    config.DL2EventPreprocessor.energy_reconstructor = "RandomForestRegressor"
    reader = DL2SampleReader(config=config)
    match = (
        r"no DL2 table /dl2/event/subarray/\*/RandomForestRegressor .*energy/ExtraTreesRegressor"
    )
    with pytest.raises(ValueError, match=match):
        reader.read(toy_dl2[0])
    with pytest.raises(ValueError, match=match):
        check_dl2_file(toy_dl2[0], reader.preprocessor)


def test_mismatched_pointing_is_an_error(tmp_path, toy_dl2):
    other = ThrownDistribution(
        max_scatter_radius=800 * u.m, max_viewcone=5 * u.deg, pointing_alt=60 * u.deg
    )
    path = tmp_path / "alt60.h5"
    write_toy_dl2(path, other, 1000)
    reader = DL2SampleReader(config=CONFIG)
    with pytest.raises(ValueError, match="Mismatched pointing"):
        combine_samples([reader.read(toy_dl2[0]), reader.read(path)])
    with pytest.raises(ValueError, match="Mismatched pointing"):
        reader.read([toy_dl2[0], path])


def test_check_support_warns(toy_dl2, samples_log):
    sample = DL2SampleReader(config=CONFIG).read(toy_dl2[0])
    assert check_support(sample, (0.1 * u.TeV, 100 * u.TeV), 5 * u.deg) == []
    messages = check_support(sample, (0.03 * u.TeV, 100 * u.TeV), 6 * u.deg)
    assert len(messages) == 2
    assert "do not cover" in samples_log.text


def test_check_dl2_file(tmp_path, toy_dl2):
    check_dl2_file(toy_dl2[0], DL2SampleReader(config=CONFIG).preprocessor)
    with pytest.raises(FileNotFoundError, match="no such file"):
        check_dl2_file(tmp_path / "missing.h5")
    with pytest.raises(ValueError, match="is a directory"):
        check_dl2_file(tmp_path)
    (tmp_path / "empty.h5").touch()
    with pytest.raises(ValueError, match="the file is empty"):
        check_dl2_file(tmp_path / "empty.h5")
    with pytest.raises(ValueError, match="this is a model file, expected a DL2 file"):
        check_dl2_file(default_model_path())
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(toy_dl2[0].read_bytes()[:4096])
    with pytest.raises(ValueError, match=r"truncated\.h5: the HDF5 file cannot be opened"):
        check_dl2_file(truncated)
    # ctapipe-apply-models writes the classifier under particle_type, not classification
    applied = tmp_path / "applied.h5"
    applied.write_bytes(toy_dl2[0].read_bytes())
    with tables.open_file(applied, "a") as f:
        f.rename_node("/dl2/event/subarray/classification", "particle_type")
    check_dl2_file(applied, DL2SampleReader(config=CONFIG).preprocessor)
    assert len(DL2SampleReader(config=CONFIG).read(applied).events) > 0
    dl1 = tmp_path / "dl1.h5"
    dl1.write_bytes(toy_dl2[0].read_bytes())
    with tables.open_file(dl1, "a") as f:
        f.remove_node("/dl2", recursive=True)
    with pytest.raises(ValueError, match="a DL1 file"):
        check_dl2_file(dl1)


def test_combine_samples_uses_the_given_pointing_tolerance(tmp_path, toy_dl2):
    data = THROWN.to_dict()
    data["pointing_alt"] = {"value": 70.08, "unit": "deg"}
    path = tmp_path / "alt70.08.h5"
    write_toy_dl2(path, ThrownDistribution.from_dict(data), 500)
    reader = DL2SampleReader(config=CONFIG)
    samples = [reader.read(toy_dl2[0]), reader.read(path)]
    with pytest.raises(ValueError, match="Mismatched pointing"):
        combine_samples(samples)  # default 0.05 deg
    _, components = combine_samples(samples, pointing_tolerance=0.1 * u.deg)
    assert len(components) == 1
    with pytest.raises(ValueError, match="Mismatched pointing"):
        combine_samples(samples, pointing_tolerance=0.01 * u.deg)


def _add_image_sizes(path, tel_id, obs_id, event_id, size):
    """A DL1 parameter table (only the columns the size check reads) in a DL2 file."""
    write_table(
        QTable({"obs_id": obs_id, "event_id": event_id, "hillas_intensity": size}),
        path,
        f"/dl1/event/telescope/parameters/tel_{tel_id:03d}",
        append=False,
    )


def test_largest_image_sizes(tmp_path, toy_dl2):
    path = tmp_path / "sizes.dl2.h5"
    shutil.copy(toy_dl2[0], path)
    sample = DL2SampleReader(config=CONFIG).read(path)
    assert np.all(np.isnan(sample.image_sizes))  # written without image parameters
    obs_id, event_id = np.asarray(sample.events["obs_id"]), np.asarray(sample.events["event_id"])
    # telescope 1 sees every event but the first, telescope 2 every second one, brighter
    # in even rows and dimmer (or NaN) elsewhere
    size_1 = np.linspace(100, 1000, len(obs_id) - 1)
    _add_image_sizes(path, 1, obs_id[1:], event_id[1:], size_1)
    size_2 = np.where(np.arange(0, len(obs_id), 2) % 4 == 0, 5000.0, np.nan)
    _add_image_sizes(path, 2, obs_id[::2], event_id[::2], size_2)
    expected = np.r_[np.nan, size_1]
    expected[::2] = np.fmax(expected[::2], size_2)
    np.testing.assert_array_equal(largest_image_sizes(path, obs_id, event_id), expected)
    again = DL2SampleReader(config=CONFIG).read(path)
    np.testing.assert_array_equal(again.image_sizes, expected)


def test_selection_mismatch():
    rng = np.random.default_rng(0)
    simulated = 10 ** rng.uniform(np.log10(50), 4, 5000)  # a 50 p.e. quality cut
    selected = simulated[simulated >= 250]
    generated = 10 ** rng.uniform(np.log10(250), 4, 800)  # a generator's 250 p.e. selection
    assert selection_mismatch(generated, selected) is None
    message = selection_mismatch(generated, simulated)
    share = np.mean(simulated < generated.min())
    assert f"{100 * share:.0f} % of the reference events" in message
    assert "selection_config.py" in message and "\n" not in message
    assert "of the input events" in selection_mismatch(simulated, generated)
    # unknown sizes (files without image parameters) are not compared
    assert selection_mismatch(np.full(10, np.nan), simulated) is None
    # a few events are not a mismatch: five below the smallest of 50 is what chance gives
    assert selection_mismatch(generated[:50], selected) is None
