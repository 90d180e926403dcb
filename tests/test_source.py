"""DiffusionEventSource: plugin discovery, events, bookkeeping, reproducibility, bad inputs."""

import json
import struct
import subprocess
import sys

import astropy.units as u
import numpy as np
import pytest
from ctapipe.containers import EventType
from ctapipe.coordinates import shower_impact_distance
from ctapipe.core import ToolConfigurationError
from ctapipe.io import DataLevel, EventSource

from ctapipe_genshower.data.conditions import conditions_from_truth
from ctapipe_genshower.io.diffusion import (
    DEFAULT_OBS_ID,
    DETECTOR_PROG_ID,
    UNKNOWN_TRUE_IMAGE,
    DiffusionEventSource,
)

N_SHOWERS = 600
N_STEPS = 2  # fewer than the model's default: these tests check plumbing, not images


def _rewrite_metadata(src, dst, update):
    """Copy a safetensors file with its ``__metadata__`` changed by ``update(meta)``."""
    raw = src.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    update(header["__metadata__"])
    new = json.dumps(header).encode()
    dst.write_bytes(struct.pack("<Q", len(new)) + new + raw[8 + n :])
    return dst


@pytest.fixture(scope="module")
def events(tiny_model_path):
    with DiffusionEventSource(
        tiny_model_path, n_showers=N_SHOWERS, seed=3, obs_id=5, n_steps=N_STEPS
    ) as source:
        return source, list(source)


def test_import_does_not_import_torch(tmp_path):
    other = tmp_path / "not_a_model.txt"
    other.write_text("hello")
    code = (
        "import sys\n"
        "import ctapipe_genshower.io.diffusion\n"
        "assert 'torch' not in sys.modules, 'import'\n"
        "from ctapipe.io import EventSource\n"
        "from ctapipe_genshower.io.diffusion import DiffusionEventSource\n"
        "assert 'DiffusionEventSource' in EventSource.non_abstract_subclasses()\n"
        f"assert not DiffusionEventSource.is_compatible({str(other)!r})\n"
        "try:\n"
        f"    EventSource({str(other)!r})\n"
        "except ValueError:\n"
        "    pass\n"
        "assert 'torch' not in sys.modules, 'plugin discovery'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_is_compatible(tiny_model_path, tmp_path):
    assert DiffusionEventSource.is_compatible(tiny_model_path)
    assert EventSource(tiny_model_path, n_showers=10).__class__ is DiffusionEventSource

    text = tmp_path / "x.safetensors"
    text.write_text("not a model")
    other_format = _rewrite_metadata(
        tiny_model_path, tmp_path / "training.safetensors", lambda m: m.update(format="other")
    )
    for path in (other_format, tmp_path / "missing.safetensors", tmp_path):
        assert not DiffusionEventSource.is_compatible(path)
    # an unreadable file with the model suffix is claimed, then refused with the reason
    assert DiffusionEventSource.is_compatible(text)

    # a truncated model is still claimed, so that its loading error reaches the user
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(tiny_model_path.read_bytes()[:-100])
    assert DiffusionEventSource.is_compatible(truncated)
    with pytest.raises(ToolConfigurationError, match="truncated"):
        DiffusionEventSource(truncated)


def test_event_content(events):
    source, evts = events
    assert source.is_simulation
    assert source.datalevels == (DataLevel.DL1_IMAGES,)
    assert len(evts) == len(source) > 0
    tel_id = source.subarray.tel_ids[0]
    n_pixels = source.subarray.tel[tel_id].camera.geometry.n_pixels

    assert [e.count for e in evts] == list(range(len(evts)))
    event_ids = [e.index.event_id for e in evts]
    assert event_ids == sorted(set(event_ids))
    assert 1 <= min(event_ids) and max(event_ids) <= N_SHOWERS
    for event in evts:
        assert event.index.obs_id == 5
        assert event.trigger.event_type == EventType.SUBARRAY
        assert list(event.trigger.tels_with_trigger) == [tel_id]
        assert tel_id in event.trigger.tel
        dl1 = event.dl1.tel[tel_id]
        assert dl1.image.dtype == np.float32 and dl1.image.shape == (n_pixels,)
        assert dl1.peak_time.dtype == np.float32 and dl1.peak_time.shape == (n_pixels,)
        assert np.all(np.isfinite(dl1.image))
        assert u.isclose(event.monitoring.tel[tel_id].pointing.altitude, source.thrown.pointing_alt)
        shower = event.simulation.shower
        assert source.thrown.energy_min <= shower.energy <= source.thrown.energy_max
        assert np.hypot(shower.core_x, shower.core_y) <= source.thrown.max_scatter_radius
        assert shower.shower_primary_id == 101
        sim_tel = event.simulation.tel[tel_id]
        # no photo-electron truth: the column exists (ctapipe needs it) but says "unknown"
        assert sim_tel.true_image.dtype == np.int32 and sim_tel.true_image.shape == (n_pixels,)
        assert np.all(sim_tel.true_image == UNKNOWN_TRUE_IMAGE)
        assert sim_tel.true_image_sum == UNKNOWN_TRUE_IMAGE
        # impact distance: telescope at the origin, so it cannot exceed the core distance
        assert 0 * u.m <= sim_tel.impact.distance <= np.hypot(shower.core_x, shower.core_y)
        assert sim_tel.impact.distance == shower_impact_distance(shower, source.subarray)[0]


def test_bookkeeping(events):
    source, _ = events
    (config,) = source.simulation_config.values()
    assert config.n_showers == N_SHOWERS == source.n_thrown
    assert config.run_number == 5
    assert config.detector_prog_id == DETECTOR_PROG_ID
    assert u.isclose(config.energy_range_min, source.thrown.energy_min)
    (hist,) = source.simulated_shower_distributions.values()
    assert hist.obs_id == 5
    assert hist.n_entries == N_SHOWERS
    assert hist.histogram.sum() == N_SHOWERS
    assert set(source.observation_blocks) == set(source.scheduling_blocks) == {5}


def test_selection_fraction_follows_model(events, tiny_model_path):
    """The number of events is the sum of the model's selection probabilities, within noise."""
    from ctapipe_genshower.generator import ShowerGenerator

    source, evts = events
    model = ShowerGenerator.from_file(tiny_model_path, device="cpu")
    showers = source.thrown.sample(20_000, np.random.default_rng(0))
    conditions = conditions_from_truth(
        true_energy=showers["true_energy"],
        true_core_x=showers["true_core_x"],
        true_core_y=showers["true_core_y"],
        true_source_fov_lon=showers["true_source_fov_lon"],
        true_source_fov_lat=showers["true_source_fov_lat"],
        tel_position=np.zeros(3) * u.m,
    )
    expected = model.selection_probability(conditions).mean() * N_SHOWERS
    assert abs(len(evts) - expected) < 5 * np.sqrt(expected) + 1


def test_batch_size_independent(events, tiny_model_path):
    """Another batch size: same showers and seeds, images equal up to float32 rounding.

    (Identical settings give identical files: ``test_source_process.py``.)
    """
    _, reference = events
    with DiffusionEventSource(
        tiny_model_path, n_showers=N_SHOWERS, seed=3, obs_id=5, n_steps=N_STEPS, batch_size=16
    ) as source:
        again = list(source)
    assert [e.index.event_id for e in again] == [e.index.event_id for e in reference]
    for a, b in zip(again, reference, strict=True):
        tel_id = next(iter(a.dl1.tel))
        assert a.simulation.shower.energy == b.simulation.shower.energy
        for key in ("image", "peak_time"):
            np.testing.assert_allclose(a.dl1.tel[tel_id][key], b.dl1.tel[tel_id][key], atol=1e-4)
    # fewer events generated together than the images of a network call
    with DiffusionEventSource(
        tiny_model_path,
        n_showers=N_SHOWERS,
        seed=3,
        obs_id=5,
        n_steps=N_STEPS,
        batch_size=16,
        events_per_batch=3,
    ) as source:
        assert source.resolved_events_per_batch == 3
        grouped = list(source)
    assert [e.index.event_id for e in grouped] == [e.index.event_id for e in reference]
    for a, b in zip(grouped, again, strict=True):
        tel_id = next(iter(a.dl1.tel))
        for key in ("image", "peak_time"):
            np.testing.assert_allclose(a.dl1.tel[tel_id][key], b.dl1.tel[tel_id][key], atol=1e-4)

    with DiffusionEventSource(tiny_model_path, n_showers=N_SHOWERS, seed=3, obs_id=6) as other:
        assert list(other._plan.event_id) != [e.index.event_id for e in reference]


def test_max_events_keeps_bookkeeping_consistent(events, tiny_model_path):
    _, reference = events
    assert len(reference) >= 3
    with DiffusionEventSource(
        tiny_model_path, n_showers=N_SHOWERS, seed=3, obs_id=5, n_steps=N_STEPS, max_events=2
    ) as source:
        short = list(source)
        n_thrown = source.simulation_config[5].n_showers
        hist = source.simulated_shower_distributions[5]
    assert len(short) == 2
    # the run is cut right after the 2nd selected shower: its thrown count is that shower's number
    assert n_thrown == source.n_thrown == reference[1].index.event_id
    assert hist.n_entries == n_thrown == hist.histogram.sum()
    assert [e.index.event_id for e in short] == [e.index.event_id for e in reference[:2]]


def test_thrown_settings_and_domain(tiny_model_path):
    with DiffusionEventSource(tiny_model_path, n_showers=10) as source:
        trained = source.thrown
    narrower = trained.energy_min * 2
    with DiffusionEventSource(
        tiny_model_path, n_showers=500, energy_min=narrower, spectral_index=-2.7, n_steps=1
    ) as source:
        assert source.thrown.energy_min == narrower
        assert source.simulation_config[DEFAULT_OBS_ID].spectral_index == -2.7
        assert source.extrapolation == []
        assert all(e.simulation.shower.energy >= narrower for e in source)

    too_high = trained.energy_max * 3
    with pytest.raises(ToolConfigurationError, match=r"outside the trained domain.*energy_max"):
        DiffusionEventSource(tiny_model_path, n_showers=10, energy_max=too_high)
    with pytest.raises(ToolConfigurationError, match="pointing_alt"):
        DiffusionEventSource(tiny_model_path, n_showers=10, pointing_alt=trained.pointing_alt / 2)
    with pytest.raises(ToolConfigurationError, match="max_scatter_radius"):
        DiffusionEventSource(
            tiny_model_path, n_showers=10, max_scatter_radius=trained.max_scatter_radius * 2
        )
    with pytest.raises(ToolConfigurationError, match="Invalid thrown distribution"):
        DiffusionEventSource(tiny_model_path, n_showers=10, energy_min=trained.energy_max * 2)

    with DiffusionEventSource(
        tiny_model_path, n_showers=10, energy_max=too_high, allow_extrapolation=True
    ) as source:
        assert len(source.extrapolation) == 1
        assert "energy_max" in source.generation_metadata["GENSHOWER EXTRAPOLATION"]
        assert source.simulation_config[DEFAULT_OBS_ID].energy_range_max == too_high


def test_bad_models(tiny_model_path, tmp_path):
    with pytest.raises(ToolConfigurationError, match="not found"):
        DiffusionEventSource(tmp_path / "missing.safetensors")

    corrupt = tmp_path / "corrupt.safetensors"
    raw = bytearray(tiny_model_path.read_bytes())
    raw[8:20] = b"#" * 12  # break the JSON header
    corrupt.write_bytes(bytes(raw))
    with pytest.raises(ToolConfigurationError, match="corrupt"):
        DiffusionEventSource(corrupt)

    newer = _rewrite_metadata(
        tiny_model_path, tmp_path / "v99.safetensors", lambda m: m.update(format_version="99")
    )
    assert DiffusionEventSource.is_compatible(newer)
    with pytest.raises(ToolConfigurationError, match="format_version"):
        DiffusionEventSource(newer)


def test_model_for_another_camera(tiny_model_path, tmp_path):
    """A checkpoint whose camera does not match its networks' pixel count is refused."""
    from ctapipe.instrument import SubarrayDescription

    from ctapipe_genshower.instrument import single_telescope_subarray
    from ctapipe_genshower.instrument.description import subarray_to_dict

    subarray = single_telescope_subarray()
    tel = subarray.tel[1]
    small = tel.camera.geometry[np.arange(100)]
    camera = type(tel.camera)(name="Small", geometry=small, readout=tel.camera.readout)
    other = SubarrayDescription(
        name="other",
        tel_positions=subarray.positions,
        tel_descriptions={1: type(tel)(name=tel.name, optics=tel.optics, camera=camera)},
        reference_location=subarray.reference_location,
    )

    def update(meta):
        training = json.loads(meta["training_meta"])
        training["subarray"] = subarray_to_dict(other)
        meta["training_meta"] = json.dumps(training)

    path = _rewrite_metadata(tiny_model_path, tmp_path / "other_camera.safetensors", update)
    with pytest.raises(ToolConfigurationError, match="pixels"):
        DiffusionEventSource(path, n_showers=10)


def test_cuda_requested_without_cuda(tiny_model_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ToolConfigurationError, match="CUDA is not available"):
        DiffusionEventSource(tiny_model_path, device="cuda")
