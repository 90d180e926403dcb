"""Geometry channels (CoordConv from the shower conditions), min-SNR loss weighting and the
shift of the training noise levels."""

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from fixtures_model import make_synthetic_arrays, tiny_train_config
from safetensors.torch import load_file, save_file

from ctapipe_genshower.checkpoint import CheckpointError, load_generator_modules, read_header
from ctapipe_genshower.fit import train
from ctapipe_genshower.instrument import single_telescope_subarray
from ctapipe_genshower.instrument.grid import pixel_fov_positions
from ctapipe_genshower.model.config import PRESETS, ModelConfig, UNetConfig
from ctapipe_genshower.model.denoiser import PIXEL_CONDITION_DIM, Denoiser
from ctapipe_genshower.model.diffusion import (
    alpha_sigma,
    min_snr_weight,
    shifted_time_density,
    shifted_times,
    v_loss,
)
from ctapipe_genshower.model.geometry import N_GEOMETRY_MAPS, GeometryMaps
from ctapipe_genshower.model.networks import UNet
from ctapipe_genshower.model.transforms import fit_transforms, transforms_from_dict
from ctapipe_genshower.training.dataset import pixel_fov
from ctapipe_genshower.training.loop import Trainer


def _camera_fov():
    geometry = single_telescope_subarray().tel[1].camera.geometry
    return [np.asarray(a) for a in pixel_fov_positions(geometry)]


def _blobs(lon, lat, conditions, sign, offset, scale):
    """Round images centred at ``scale * d`` from the source along ``sign * phi + offset``."""
    phi = np.arctan2(conditions[:, 2], conditions[:, 1])
    psi = sign * phi + offset
    r = scale * np.hypot(conditions[:, 1], conditions[:, 2])
    cx = conditions[:, 3] + r * np.cos(psi)
    cy = conditions[:, 4] + r * np.sin(psi)
    d2 = (lon[None] - cx[:, None]) ** 2 + (lat[None] - cy[:, None]) ** 2
    return 1000 * np.exp(-0.5 * d2 / 0.1**2)


@pytest.mark.parametrize("sign, offset", [(-1, -0.5 * math.pi), (1, 0.6)])
def test_fit_finds_the_image_axis_convention(sign, offset):
    lon, lat = _camera_fov()
    rng = np.random.default_rng(3)
    n = 400
    conditions = np.stack(
        [
            rng.uniform(-1, 2, n),
            rng.uniform(-300, 300, n),
            rng.uniform(-300, 300, n),
            rng.uniform(-0.5, 0.5, n),
            rng.uniform(-0.5, 0.5, n),
        ],
        axis=1,
    )
    image = _blobs(lon, lat, conditions, sign, offset, 0.006)
    fitted = GeometryMaps(lon, lat, sign=-sign, offset=0.0, scale=1.0).fit(image, conditions)
    assert fitted.sign == sign
    assert abs(np.angle(np.exp(1j * (fitted.offset - offset)))) < math.radians(2)
    assert fitted.scale == pytest.approx(0.006, rel=0.05)


def test_maps_put_the_expected_centroid_at_zero():
    lon, lat = _camera_fov()
    geometry = GeometryMaps(lon, lat, sign=-1, offset=-0.5 * math.pi, scale=0.005)
    conditions = np.array([[0.0, 0.0, 200.0, 0.3, -0.2]])  # phi = 90 deg -> psi = -180 deg
    # the expected centroid: 1 deg from the source towards -lon
    positions = torch.tensor([[[[0.3 - 1.0, 0.3]], [[-0.2, -0.2 + 0.5]]]])
    u, v, u_minus_r = GeometryMaps.maps(geometry.scalars(conditions), positions)[0, :, 0]
    assert u.tolist() == pytest.approx([1.0, 0.0], abs=1e-5)
    assert v.tolist() == pytest.approx([0.0, -0.5], abs=1e-5)
    assert u_minus_r.tolist() == pytest.approx([0.0, -1.0], abs=1e-5)


def test_channel_count_agrees_with_the_torch_free_config():
    assert PRESETS["small-geo"].unet.in_channels == 2 + N_GEOMETRY_MAPS
    assert PRESETS["tiny-geo"].geometry_maps and not PRESETS["tiny"].geometry_maps
    with pytest.raises(ValueError, match="in_channels must be 5"):
        ModelConfig(unet=UNetConfig(in_channels=2), geometry_maps=True)
    restored = ModelConfig.from_dict(PRESETS["small-geo"].to_dict())
    assert restored == PRESETS["small-geo"]
    # checkpoints written before the option read as without geometry channels
    old = PRESETS["small"].to_dict()
    del old["geometry_maps"]
    assert not ModelConfig.from_dict(old).geometry_maps


@pytest.fixture(scope="module")
def synthetic():
    return make_synthetic_arrays(n_thrown=3000)


def test_pixel_fov_of_a_training_file_without_it_comes_from_the_instrument(synthetic):
    assert "pixel_fov" not in synthetic.meta
    lon, lat = pixel_fov(synthetic.meta)
    expected = _camera_fov()
    np.testing.assert_allclose(lon, expected[0])
    np.testing.assert_allclose(lat, expected[1])
    assert pixel_fov({"pixel_fov": [[1.0], [2.0]]}) == [[1.0], [2.0]]


def _geo_transforms(arrays):
    batch = {k: getattr(arrays, k) for k in ("image", "peak_time", "conditions")}
    meta = arrays.meta
    return fit_transforms(
        batch, meta["grid_shape"], meta["grid_index"], pad_to=4, pixel_fov=pixel_fov(meta)
    )


def test_denoiser_feeds_the_network_maps_of_the_source_position(synthetic):
    transforms = _geo_transforms(synthetic)
    assert transforms_from_dict({k: v.to_dict() for k, v in transforms.items()}).keys() == set(
        transforms
    )
    torch.manual_seed(0)
    net = UNet(PRESETS["tiny-geo"].unet).eval()
    with torch.no_grad():  # the output layer starts at zero: give every weight a value
        for parameter in net.parameters():
            parameter.normal_(0.0, 0.2)
    denoiser = Denoiser(net, transforms)
    conditions = np.repeat(synthetic.conditions[:1].astype(np.float64), 2, axis=0)
    conditions[1, 3] += 0.5  # only the source position differs
    size = np.array([500.0, 500.0])
    cond = denoiser.condition(conditions, size)
    assert cond.shape == (2, PIXEL_CONDITION_DIM + 4)
    x = torch.zeros(2, *denoiser.sample_shape)
    t = torch.full((2,), 0.5)
    # the same network condition, the geometry scalars of the first event for both
    first_maps = cond.clone()
    first_maps[:, PIXEL_CONDITION_DIM:] = cond[0, PIXEL_CONDITION_DIM:]
    with torch.no_grad():
        v = denoiser(x, t, cond)
        v_first_maps = denoiser(x, t, first_maps)
    assert v.shape == (2, 2, *denoiser.sample_shape[1:])
    assert torch.equal(v_first_maps[0], v[0])
    assert not torch.allclose(v_first_maps[1], v[1])  # only the maps differ


def test_geometry_model_trains_saves_and_loads(tmp_path, synthetic):
    path = tmp_path / "geo.safetensors"
    config = tiny_train_config(steps=2, min_snr_gamma=5.0)
    train(synthetic, path, PRESETS["tiny-geo"], config)
    pixel_net, _, transforms, metadata, refiner = load_generator_modules(path)
    assert refiner is None
    assert pixel_net.config.in_channels == 5 and "geometry" in transforms
    assert metadata["config"]["train"]["min_snr_gamma"] == 5.0
    fitted = transforms["geometry"]
    assert fitted.n_pixels == synthetic.image.shape[1]

    # a file whose config and transforms disagree is refused in one line
    header = read_header(path)["__metadata__"]
    config_json = json.loads(header["config"])
    config_json["model"]["geometry_maps"] = False
    config_json["model"]["unet"]["in_channels"] = 2
    header["config"] = json.dumps(config_json)
    broken = tmp_path / "broken.safetensors"
    save_file(load_file(path), broken, metadata=header)
    with pytest.raises(CheckpointError, match=r"transforms hold the geometry channels"):
        load_generator_modules(broken)


def test_min_snr_weight_caps_the_x0_weight():
    t = torch.tensor([0.01, 0.5, 0.99], dtype=torch.float64)
    alpha, sigma = alpha_sigma(t)
    snr = alpha**2 / sigma**2
    w = min_snr_weight(t, 5.0)
    np.testing.assert_allclose(w, torch.minimum(snr, torch.tensor(5.0)) / (snr + 1))
    assert w[0] < 0.01  # low noise (SNR ~ 4e3): capped at gamma, strongly down-weighted
    assert w[2] == pytest.approx(snr[2] / (snr[2] + 1))  # high noise: SNR below gamma


def test_v_loss_with_min_snr_is_the_weighted_mean():
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(4, 2, 4, 4, generator=g)
    mask = torch.ones(1, 1, 4, 4)
    t = torch.tensor([0.05, 0.3, 0.6, 0.95])
    eps = torch.randn(x0.shape, generator=g)

    def zero(x_t, t, cond):
        return torch.zeros_like(x_t)

    plain = v_loss(zero, x0, None, mask, t=t, eps=eps)
    weighted = v_loss(zero, x0, None, mask, t=t, eps=eps, min_snr_gamma=5.0)
    alpha, sigma = alpha_sigma(t)
    target = alpha.reshape(-1, 1, 1, 1) * eps - sigma.reshape(-1, 1, 1, 1) * x0
    per_sample = target.square().mean((1, 2, 3))
    assert float(plain) == pytest.approx(float(per_sample.mean()), rel=1e-5)
    expected = (per_sample * min_snr_weight(t, 5.0)).mean()
    assert float(weighted) == pytest.approx(float(expected), rel=1e-5)


def _log_snr(t):
    alpha, sigma = alpha_sigma(t)
    return torch.log(alpha.square() / sigma.square())


@pytest.mark.parametrize("shift", [-2.0, 0.5, 2.0])
def test_shifted_times_raise_the_log_snr_by_the_shift(shift):
    u = torch.linspace(0.02, 0.98, 25, dtype=torch.float64)
    t = shifted_times(u, shift)
    torch.testing.assert_close(_log_snr(t) - _log_snr(u), torch.full_like(u, shift))
    assert torch.all((t < u) if shift > 0 else (t > u))  # positive: less noise
    ends = shifted_times(torch.tensor([0.0, 1.0], dtype=torch.float64), shift)
    torch.testing.assert_close(ends, torch.tensor([0.0, 1.0], dtype=torch.float64))
    assert shifted_times(u, 0.0) is u


class _RecordingDenoiser:
    """Stands in for a ``Denoiser``: records the times and weights ``Trainer.loss`` passes on."""

    def __init__(self):
        self.calls = []

    @property
    def times(self):
        return [t for t, _ in self.calls]

    def loss(self, x0, cond, t=None, sample_weight=None, **kwargs):
        self.calls.append((t, sample_weight))
        return torch.zeros(())


@pytest.mark.parametrize("shift", [0.0, 2.0])
def test_trainer_draws_shifted_times_for_training_only(tmp_path, synthetic, shift):
    config = tiny_train_config(log_snr_shift=shift)
    trainer = Trainer(synthetic, tmp_path / "state.safetensors", PRESETS["tiny"], config)
    x, cond = torch.zeros(64, 2, 4, 4), torch.zeros(64, 3)
    recorder = _RecordingDenoiser()
    trainer.loss(recorder, x, cond, generator=torch.Generator().manual_seed(3))
    trainer.loss(recorder, x, cond, t=torch.full((64,), 0.5), weighted=False)
    training, validation = recorder.times
    torch.testing.assert_close(validation, torch.full((64,), 0.5))  # the validation's own
    if shift == 0:
        assert training is None  # v_loss draws uniform times, as without the setting
    else:
        u = torch.rand(64, generator=torch.Generator().manual_seed(3))
        torch.testing.assert_close(training, shifted_times(u, shift))
        assert float(training.mean()) < 0.4  # uniform times average 0.5


@pytest.mark.parametrize("shift", [-2.0, 2.0])
def test_shifted_time_density_weights_uniform_times_like_shifted_ones(shift):
    # midpoints of a fine grid: integrals over uniform t and uniform u
    grid = (torch.arange(200_000, dtype=torch.float64) + 0.5) / 200_000
    density = shifted_time_density(grid, shift)
    assert float(density.mean()) == pytest.approx(1.0, abs=1e-4)  # a density on [0, 1]
    k = math.exp(-shift / 2)
    assert float(density.min()) >= min(k, 1 / k) - 1e-9
    assert float(density.max()) <= max(k, 1 / k) + 1e-9
    for f in (lambda t: t, lambda t: torch.cos(3 * t) ** 2):
        weighted = float((f(grid) * density).mean())
        assert weighted == pytest.approx(float(f(shifted_times(grid, shift)).mean()), abs=1e-4)
    torch.testing.assert_close(shifted_time_density(grid, 0.0), torch.ones_like(grid))


def test_trainer_weights_the_time_channel_only(tmp_path, synthetic):
    config = tiny_train_config(log_snr_shift=1.0, time_log_snr_shift=2.0)
    trainer = Trainer(synthetic, tmp_path / "state.safetensors", PRESETS["tiny"], config)
    x, cond = torch.zeros(64, 2, 4, 4), torch.zeros(64, 3)
    recorder = _RecordingDenoiser()
    trainer.loss(recorder, x, cond, generator=torch.Generator().manual_seed(3))
    trainer.loss(recorder, x, cond, t=torch.full((64,), 0.5), weighted=False)
    (t, weight), (_, validation_weight) = recorder.calls
    u = torch.rand(64, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(t, shifted_times(u, 1.0))  # both channels' times
    torch.testing.assert_close(weight[:, 0], torch.ones(64))
    # the time channel as if shifted by 1 + 2: the ratio of the two densities
    ratio = shifted_time_density(t, 3.0) / shifted_time_density(t, 1.0)
    torch.testing.assert_close(weight[:, 1], ratio)
    assert validation_weight is None


def test_trainer_refuses_a_time_shift_without_a_time_channel(tmp_path, synthetic):
    preset = PRESETS["tiny"]
    one_channel = replace(preset, unet=replace(preset.unet, out_channels=1))
    config = tiny_train_config(time_log_snr_shift=2.0)
    with pytest.raises(ValueError, match=r"two channels \(charge, peak time\), got 1"):
        Trainer(synthetic, tmp_path / "state.safetensors", one_channel, config)


def test_v_loss_with_channel_weights_per_sample():
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(3, 2, 4, 4, generator=g)
    mask = torch.ones(1, 1, 4, 4)
    t, eps = torch.tensor([0.2, 0.5, 0.8]), torch.randn(x0.shape, generator=g)

    def zero(x_t, t, cond):
        return torch.zeros_like(x_t)

    weight = torch.tensor([[1.0, 3.0], [1.0, 0.5], [1.0, 2.0]])
    loss = v_loss(zero, x0, None, mask, t=t, eps=eps, sample_weight=weight)
    alpha, sigma = alpha_sigma(t)
    target = alpha.reshape(-1, 1, 1, 1) * eps - sigma.reshape(-1, 1, 1, 1) * x0
    per_channel = target.square().mean((2, 3))  # (3, 2)
    assert float(loss) == pytest.approx(float((per_channel * weight).mean()), rel=1e-5)
