"""ToyShowerEventSource: ctapipe-process output, bookkeeping, settings, reproducibility, merge."""

import astropy.units as u
import numpy as np
import pytest
import tables
from ctapipe.core import ToolConfigurationError, run_tool
from ctapipe.io import EventSource, TableLoader, read_table
from ctapipe.tools.merge import MergeTool
from fixtures_toymc import SMALL_GAMMA_SETTINGS, SMALL_PROTON_SETTINGS, process_toy
from traitlets.config import Config

from ctapipe_genshower.io.toymc import CHUNK_SIZE, ToyShowerEventSource
from ctapipe_genshower.thrown import ThrownDistribution

IMAGES = "/dl1/event/telescope/images/tel_001"
SHOWERS = "/simulation/event/subarray/shower"


def _events(path):
    with TableLoader(path) as loader:
        return loader.read_telescope_events(
            dl1_images=True, dl1_parameters=True, true_images=True, simulated=True
        )


def _check_bookkeeping(path, n_showers, obs_id):
    config = read_table(path, "/configuration/simulation/run")
    assert list(config["obs_id"]) == [obs_id]
    assert config["n_showers"][0] == n_showers
    hist = read_table(path, "/simulation/service/shower_distribution")
    assert hist["n_entries"][0] == n_showers
    assert hist["histogram"][0].sum() == n_showers


def test_process_proton_output(toy_proton_dl1_path):
    events = _events(toy_proton_dl1_path)
    n_showers = SMALL_PROTON_SETTINGS["n_showers"]
    assert 100 < len(events) < n_showers  # only triggered events are written
    _check_bookkeeping(toy_proton_dl1_path, n_showers, obs_id=1)
    assert np.all(events["obs_id"] == 1)
    assert len(np.unique(events["event_id"])) == len(events)
    assert events["event_id"].max() <= n_showers
    assert np.all(events["true_shower_primary_id"] == 101)

    image = np.asarray(events["image"])
    assert image.shape == (len(events), 1765) and image.dtype == np.float32
    assert events["peak_time"].dtype == np.float32
    assert np.asarray(events["true_image"]).dtype == np.int32
    assert image.min() < 0  # pedestal-subtracted night-sky background
    assert image.max() <= 4176.0
    peak_time = np.asarray(events["peak_time"])
    assert np.all((peak_time >= 0) & (peak_time <= 100))

    thrown = ThrownDistribution.from_simulation_config(
        read_table(toy_proton_dl1_path, "/configuration/simulation/run")[0]
    )
    assert thrown.max_viewcone == 2 * u.deg
    energy = u.Quantity(events["true_energy"], u.TeV)
    assert np.all((energy >= 0.3 * u.TeV) & (energy <= 30 * u.TeV))
    core = np.hypot(events["true_core_x"], events["true_core_y"])
    assert np.all(core <= 400 * u.m)
    # the impact distance (to the axis) is at most the ground core distance
    assert np.all(u.Quantity(events["true_impact_distance"], u.m) <= core * (1 + 1e-9))
    assert np.all(np.isfinite(events["true_h_first_int"])) and np.all(events["true_x_max"] > 0)

    # cleaning + Hillas are sane for bright images
    bright = events[events["hillas_intensity"] >= 250]
    assert len(bright) > 20
    width = u.Quantity(bright["hillas_width"], u.deg)
    length = u.Quantity(bright["hillas_length"], u.deg)
    assert np.all(width <= length)
    assert 0.03 * u.deg < np.median(width) < 0.3 * u.deg
    assert np.all(u.Quantity(bright["hillas_r"], u.deg) < 2.5 * u.deg)
    # the cleaned size follows the true photo-electron count
    ratio = bright["hillas_intensity"] / bright["true_image_sum"]
    assert 0.6 < np.median(ratio) < 1.1


def test_process_gamma_output(toy_gamma_dl1_path):
    events = _events(toy_gamma_dl1_path)
    _check_bookkeeping(toy_gamma_dl1_path, SMALL_GAMMA_SETTINGS["n_showers"], obs_id=1001)
    assert np.all(events["true_shower_primary_id"] == 0)
    assert u.allclose(u.Quantity(events["true_alt"], u.deg), 70 * u.deg)
    pointing = u.Quantity(events["telescope_pointing_altitude"], u.deg)
    assert u.allclose(pointing, 70 * u.deg)
    bright = events[events["hillas_intensity"] >= 250]
    assert len(bright) > 20
    # point-like gammas from the camera centre: images point back to the centre
    phi, psi = (u.Quantity(bright[c], u.deg) for c in ("hillas_phi", "hillas_psi"))
    miss = np.abs(u.Quantity(bright["hillas_r"], u.deg) * np.sin(phi - psi))
    assert np.median(miss) < 0.1 * u.deg


def test_source_selected_by_settings_file(toy_settings_path):
    path = toy_settings_path("compatible", n_showers=10)
    assert ToyShowerEventSource.is_compatible(path)
    with EventSource(path) as source:
        assert isinstance(source, ToyShowerEventSource)
        assert source.is_simulation and source.obs_ids == [1]
        assert source.subarray.tel[1].camera.geometry.n_pixels == 1765

    other = path.parent / "plain.yaml"
    other.write_text(path.read_text())
    for bad in (other, path.parent / "missing.toymc.yaml"):
        assert not ToyShowerEventSource.is_compatible(bad)
    # a file with the suffix is claimed, then refused with the reason
    listing = path.parent / "list.toymc.yaml"
    listing.write_text("- 1\n- 2\n")
    assert ToyShowerEventSource.is_compatible(listing)
    with pytest.raises(ToolConfigurationError, match="must be a YAML mapping"):
        EventSource(listing)


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"n_shower": 5}, "Unknown settings"),
        ({"energy_min": "banana"}, "Bad value for 'energy_min'"),
        ({"energy_min": "3 m"}, "Bad value for 'energy_min'"),
        ({"energy_min": "50 TeV"}, "Invalid toy simulation settings"),
        ({"ToyShowerSimulator": {"trigger": 3}}, "Unknown setting 'trigger'"),
    ],
)
def test_bad_settings_are_clear_errors(toy_settings_path, settings, match):
    path = toy_settings_path("bad", **settings)
    with pytest.raises(ToolConfigurationError, match=match):
        ToyShowerEventSource(path)


def test_explicit_traits_override_the_file(toy_settings_path, tmp_path):
    path = toy_settings_path(
        "override", n_showers=300, seed=3, ToyShowerSimulator={"trigger_threshold": 45.0}
    )
    with ToyShowerEventSource(path) as source:
        assert source.n_showers == 300 and source.seed == 3
        assert source.simulator.trigger_threshold == 45.0
    config = Config(
        {
            "ToyShowerEventSource": {"n_showers": 120},
            "ToyShowerSimulator": {"trigger_threshold": 25.0},
        }
    )
    with ToyShowerEventSource(path, config=config, seed=4) as source:
        assert source.n_showers == 120 and source.seed == 4
        assert source.simulator.trigger_threshold == 25.0
        assert source.simulation_config[1].n_showers == 120

    # and on the ctapipe-process command line
    output = process_toy(path, tmp_path / "override.h5", ["--ToyShowerEventSource.n_showers=150"])
    _check_bookkeeping(output, 150, obs_id=1)


def test_max_events_bookkeeping(toy_settings_path):
    path = toy_settings_path("short", n_showers=2 * CHUNK_SIZE + 500)
    with ToyShowerEventSource(path) as source:
        full = [(e.index.event_id, e.dl1.tel[1].image.copy()) for e in source]
        assert source.simulated_shower_distributions[1].n_entries == 2 * CHUNK_SIZE + 500
    # stop in the second chunk
    max_events = next(i for i, (event_id, _) in enumerate(full) if event_id > CHUNK_SIZE) + 3
    with ToyShowerEventSource(path, max_events=max_events) as source:
        short = [(e.index.event_id, e.dl1.tel[1].image, e.count) for e in source]
        n_thrown = source.simulation_config[1].n_showers
        distribution = source.simulated_shower_distributions[1]
    assert len(short) == max_events
    assert [c for *_, c in short] == list(range(max_events))
    # the same events as the full run, and exactly the showers up to the last one counted
    for (event_id, image), (short_id, short_image, _) in zip(full, short, strict=False):
        assert event_id == short_id and np.array_equal(image, short_image)
    assert n_thrown == short[-1][0]
    assert distribution.n_entries == n_thrown == distribution.histogram.sum()


def _table_arrays(path, node):
    with tables.open_file(path) as h5:
        return h5.get_node(node).read()


def test_same_seed_same_file_contents(toy_settings_path, tmp_path):
    same = toy_settings_path("seed", n_showers=400)
    other = toy_settings_path("other_seed", n_showers=400, seed=2)
    a = process_toy(same, tmp_path / "a.h5")
    b = process_toy(same, tmp_path / "b.h5")
    c = process_toy(other, tmp_path / "c.h5")
    for node in (IMAGES, SHOWERS, "/simulation/service/shower_distribution"):
        assert _table_arrays(a, node).tobytes() == _table_arrays(b, node).tobytes(), node
    assert _table_arrays(a, SHOWERS).tobytes() != _table_arrays(c, SHOWERS).tobytes()


def test_merge_two_runs(toy_settings_path, tmp_path):
    runs = [
        process_toy(toy_settings_path(f"run{i}", n_showers=300, obs_id=i), tmp_path / f"{i}.h5")
        for i in (11, 12)
    ]
    merged = tmp_path / "merged.h5"
    argv = [str(p) for p in runs] + [f"--output={merged}"]
    assert run_tool(MergeTool(), argv=argv, cwd=tmp_path, raises=True) == 0
    config = read_table(merged, "/configuration/simulation/run")
    assert sorted(config["obs_id"]) == [11, 12]
    assert list(config["n_showers"]) == [300, 300]
    hist = read_table(merged, "/simulation/service/shower_distribution")
    assert sorted(hist["obs_id"]) == [11, 12]
    events = _events(merged)
    n_each = [len(_events(p)) for p in runs]
    assert len(events) == sum(n_each)
    assert sorted(set(events["obs_id"])) == [11, 12]
