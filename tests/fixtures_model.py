"""Session fixtures with tiny trained generator checkpoints (made once per test session).

* ``tiny_model_training_arrays``: the selected images of the toy proton DL1 fixture
  (``toy_proton_dl1_path``, read with ``DL1TrainingReader``, default 250 p.e. selection);
* ``selecting_model_path``: a tiny generator (``PRESETS["tiny"]``) trained for a
  handful of steps on them (90 % train, 10 % validation). It exercises the whole chain
  (checkpoint, generator, EventSource) in seconds; its images are not physical (none passes
  the cleaning, so each event would be redrawn ``max_redraws`` times);
* ``tiny_model_path``: the same weights without a recorded selection (no redraws), for every
  test that is not about the selection;
* ``synthetic_training_arrays``: ~300 synthetic selected showers with a complete ``meta``,
  for model tests that need more events than the toy fixture has.
"""

import astropy.units as u
import numpy as np
import pytest

SYNTHETIC_THROWN = {
    "energy_min": 0.1 * u.TeV,
    "energy_max": 100 * u.TeV,
    "spectral_index": -2.0,
    "max_scatter_radius": 500 * u.m,
    "min_viewcone": 0 * u.deg,
    "max_viewcone": 1.0 * u.deg,
}


def synthetic_images(conditions, geometry, rng):
    """Elliptical Gaussian 'showers' with Poisson signal, Gaussian NSB and a time gradient."""
    pix_x = np.rad2deg(geometry.pix_x.to_value(u.m) / 36.0)
    pix_y = np.rad2deg(geometry.pix_y.to_value(u.m) / 36.0)
    log_e, ix, iy, lon, lat = conditions.T
    r = np.hypot(ix, iy)
    amplitude = 800 * 10**log_e * np.exp(-r / 200.0)
    direction = np.arctan2(iy, ix)
    cx = lon + 0.004 * r * np.cos(direction)
    cy = lat + 0.004 * r * np.sin(direction)
    length = 0.15 + 0.05 * log_e.clip(-1, 2) + 0.0005 * r
    width = 0.06 + 0.01 * log_e.clip(-1, 2)
    dx, dy = pix_x[None] - cx[:, None], pix_y[None] - cy[:, None]
    cos, sin = np.cos(direction)[:, None], np.sin(direction)[:, None]
    along, across = dx * cos + dy * sin, -dx * sin + dy * cos
    shape = np.exp(-0.5 * ((along / length[:, None]) ** 2 + (across / width[:, None]) ** 2))
    shape /= shape.sum(1, keepdims=True) + 1e-12
    inside = np.hypot(cx, cy) < 2.0
    expected = amplitude[:, None] * shape * inside[:, None]
    image = rng.poisson(expected) + rng.normal(0, 1.0, expected.shape)
    signal = expected > 1.0
    time = np.where(signal, 20 + 8 * along, rng.uniform(0, 40, expected.shape)) + rng.normal(
        0, 0.5, expected.shape
    )
    return image.astype(np.float32), time.astype(np.float32)


def make_synthetic_arrays(n_thrown=4000, seed=1, size_cut=150.0):
    """Synthetic ``TrainingArrays`` (selected showers) with a complete ``meta``."""
    from ctapipe_genshower.data.arrays import TrainingArrays
    from ctapipe_genshower.instrument import CameraGridMapping, single_telescope_subarray
    from ctapipe_genshower.instrument.description import subarray_to_dict
    from ctapipe_genshower.thrown import ThrownDistribution

    rng = np.random.default_rng(seed)
    thrown = ThrownDistribution(**SYNTHETIC_THROWN)
    table = thrown.sample(n_thrown, rng)
    conditions = np.stack(
        [
            np.log10(table["true_energy"].to_value(u.TeV)),
            table["true_core_x"].to_value(u.m),
            table["true_core_y"].to_value(u.m),
            table["true_source_fov_lon"].to_value(u.deg),
            table["true_source_fov_lat"].to_value(u.deg),
        ],
        axis=1,
    ).astype(np.float32)
    subarray = single_telescope_subarray()
    geometry = subarray.tel[1].camera.geometry
    image, peak_time = synthetic_images(conditions, geometry, rng)
    cleaned_size = np.where(image > 5, image, 0).sum(1)
    selected = cleaned_size > size_cut
    mapping = CameraGridMapping.from_geometry(geometry)
    meta = {
        "camera_name": geometry.name,
        "telescope_type": str(subarray.tel[1]),
        "n_pixels": int(geometry.n_pixels),
        "grid_shape": list(mapping.shape),
        "grid_index": mapping.flat_index.tolist(),
        "subarray": subarray_to_dict(subarray),
        "tel_ids": [1],
        "thrown": thrown.to_dict(),
        "n_thrown": int(n_thrown),
        "n_selected": int(selected.sum()),
        "selection": [["size", f"hillas_intensity > {size_cut}"]],
        "input_files": ["synthetic"],
        "ctapipe_version": "synthetic",
    }
    return TrainingArrays(image[selected], peak_time[selected], conditions[selected], meta)


@pytest.fixture(scope="session")
def synthetic_training_arrays():
    """About 400 selected synthetic showers (numpy ``TrainingArrays``)."""
    return make_synthetic_arrays()


def tiny_train_config(**kwargs):
    from ctapipe_genshower.training.config import TrainConfig

    settings = dict(
        steps=8,
        batch_size=16,
        learning_rate=2e-3,
        warmup_steps=2,
        chunk_size=128,
        fit_events=1000,
        checkpoint_interval=4,
        log_interval=3,
        validation_interval=4,
        validation_events=32,
        shower_steps=100,
        shower_batch_size=256,
        calibration_events=20_000,
        device="cpu",
    )
    settings.update(kwargs)
    return TrainConfig(**settings)


@pytest.fixture(scope="session")
def tiny_model_training_arrays(toy_proton_dl1_path):
    """``TrainingArrays`` of the toy proton DL1 fixture (what ``tiny_model_path`` learns)."""
    from ctapipe_genshower.data import DL1TrainingReader

    return DL1TrainingReader(input_files=[str(toy_proton_dl1_path)]).read()


@pytest.fixture(scope="session")
def selecting_model_path(tmp_path_factory, tiny_model_training_arrays):
    """Path of a tiny trained checkpoint (``model.safetensors``) made once per session.

    It records its training selection (250 p.e.) like every trained model, but its images are
    not physical: none passes ctapipe's cleaning, so the ``DiffusionEventSource`` redraws
    every event ``max_redraws`` times. Tests about the redraws use it; others use
    ``tiny_model_path``.
    """
    from ctapipe_genshower.fit import train
    from ctapipe_genshower.model.config import PRESETS
    from ctapipe_genshower.training.dataset import split_dataset

    path = tmp_path_factory.mktemp("tiny_model") / "model.safetensors"
    train_set, validation = split_dataset(tiny_model_training_arrays, 0.1)
    train(train_set, path, PRESETS["tiny"], tiny_train_config(), validation=validation)
    return path


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory, selecting_model_path):
    """The tiny model without a recorded selection: generation without redraws (fast).

    Same weights as ``selecting_model_path``; ``training_meta["selection"]`` is
    empty, so the source generates each event once (as a model trained without a selection).
    """
    path = tmp_path_factory.mktemp("tiny_model_plain") / "model.safetensors"
    return with_recorded_selection(selecting_model_path, path, [])


def with_recorded_selection(model, path, selection):
    """A copy of ``model`` whose recorded training selection is ``selection``."""
    import json
    import struct

    raw = model.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    meta = json.loads(header["__metadata__"]["training_meta"])
    meta["selection"] = selection
    header["__metadata__"]["training_meta"] = json.dumps(meta)
    new = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(new)) + new + raw[8 + n :])
    return path
