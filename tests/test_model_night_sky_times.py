"""Night-sky times: a table learned from the training images instead of the network."""

import numpy as np
import pytest
import torch
from scipy import stats

from ctapipe_genshower.model.config import PRESETS, ModelConfig
from ctapipe_genshower.model.night_sky_times import NightSkyTimes, time_plane
from ctapipe_genshower.model.transforms import (
    fit_transforms,
    transforms_from_dict,
    transforms_to_dict,
)
from ctapipe_genshower.training.stream import encode_batch


def _images(n_events=400, n_pixels=50, seed=0):
    """Shower pixels (> 1 p.e.) at 40 +- 1 ns, night-sky pixels uniform over 0-100 ns."""
    rng = np.random.default_rng(seed)
    image = rng.normal(0.3, 0.5, (n_events, n_pixels))
    shower = rng.random((n_events, n_pixels)) < 0.2
    image[shower] = rng.uniform(2, 200, shower.sum())
    time = np.where(shower, rng.normal(40, 1, image.shape), rng.uniform(0, 100, image.shape))
    return image.astype(np.float32), time.astype(np.float32)


def test_table_is_the_night_sky_pixels_quantiles():
    image, time = _images()
    table = NightSkyTimes.fit(image, time, charge=1.0, target_time=40.0)
    night_sky = time[image <= 1.0]
    assert table.n_pixels_fitted == [len(night_sky)]
    np.testing.assert_allclose(table.time_quantiles[0], np.quantile(night_sky, table.levels))
    # the shower pixels' times are not in it: its median is the window's middle, not 40 ns
    assert abs(np.interp(0.5, table.levels, table.time_quantiles[0]) - 50) < 3


def test_each_charge_bin_has_its_own_table():
    """Faint shower pixels (2-5 p.e. here) keep their charge's time distribution."""
    image, time = _images(n_events=2000)
    faint = (image > 0) & (np.random.default_rng(5).random(image.shape) < 0.05)
    image[faint] = np.random.default_rng(6).uniform(2, 5, faint.sum())
    time[faint] = 40.0
    table = NightSkyTimes.fit(image, time, charge=5.0, target_time=40.0)
    np.testing.assert_array_equal(table.bin_upper, [1, 2, 3, 4, 5])
    assert sum(table.n_pixels_fitted) == (image <= 5).sum()
    for b, (lo, hi) in enumerate([(-np.inf, 1), (1, 2), (2, 3), (3, 4), (4, 5)]):
        in_bin = (image > lo) & (image <= hi)
        np.testing.assert_allclose(table.time_quantiles[b], np.quantile(time[in_bin], table.levels))
    # generated pixels of 2-5 p.e. get 40 ns, those below 1 p.e. the window
    test_image = np.array([[0.5, 2.5, 3.5, 4.9, 1.5, 7.0]] * 200)
    rngs = [np.random.default_rng(s) for s in range(200)]
    out = table.apply(test_image, np.full(test_image.shape, -1.0), rngs)
    # (the fixture's shower pixels at 40 +- 1 ns and a few noise pixels are in those bins too)
    assert np.mean(np.abs(out[:, 1:4] - 40) < 3) > 0.95
    assert np.std(out[:, 0]) > 20 and np.all(out[:, 5] == -1.0)
    # a bin with too few pixels takes the next fainter bin's table
    sparse = NightSkyTimes.fit(image[:, :5], time[:, :5], charge=9.0, target_time=40.0)
    assert sparse.n_pixels_fitted[-1] < 200
    np.testing.assert_array_equal(sparse.time_quantiles[-1], sparse.time_quantiles[-2])


def test_training_targets_fix_only_night_sky_pixels():
    image, time = _images()
    table = NightSkyTimes.fit(image, time, charge=1.0, target_time=40.0)
    target = table.training_times(image, time)
    night_sky = image <= 1.0
    assert target.dtype == time.dtype
    assert np.all(target[night_sky] == np.float32(40.0))
    np.testing.assert_array_equal(target[~night_sky], time[~night_sky])


def test_generated_night_sky_times_follow_the_training_pixels():
    image, time = _images(n_events=2000)
    table = NightSkyTimes.fit(image, time, charge=1.0, target_time=40.0)
    generated_time = np.full(image.shape, 40.0, np.float32)  # what the network learned
    rngs = [np.random.default_rng(s) for s in range(len(image))]
    out = table.apply(image, generated_time, rngs)
    night_sky = image <= 1.0
    np.testing.assert_array_equal(out[~night_sky], generated_time[~night_sky])
    # the drawn times are the training night-sky pixels' distribution
    other = _images(n_events=2000, seed=1)
    reference = other[1][other[0] <= 1.0]
    assert stats.ks_2samp(out[night_sky], reference).statistic < 0.01
    # an event's times depend on its own stream only
    again = table.apply(image[3:5], generated_time[3:5], [np.random.default_rng(s) for s in (3, 4)])
    np.testing.assert_array_equal(again, out[3:5])
    with pytest.raises(ValueError, match="one random generator per event"):
        table.apply(image[:2], generated_time[:2], rngs[:1])


def test_fit_refuses_too_few_pixels_or_non_finite_times():
    image, time = _images(n_events=10, n_pixels=10)
    with pytest.raises(ValueError, match="need at least 200 pixels at or below"):
        NightSkyTimes.fit(image, time, charge=1.0, target_time=40.0)
    image, time = _images()
    time[0, image[0] <= 1.0] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        NightSkyTimes.fit(image, time, charge=1.0, target_time=40.0)


def test_fit_transforms_keeps_the_time_transform_and_round_trips():
    image, time = _images()
    batch = {"image": image, "peak_time": time, "conditions": np.zeros((len(image), 5))}
    shape, index = (5, 10), np.arange(50)
    plain = fit_transforms(batch, shape, index, time_transform="asinh+linear")
    fitted = fit_transforms(
        batch, shape, index, time_transform="asinh+linear", night_sky_charge=1.0
    )
    assert "night_sky" not in plain
    # the time transform is fitted on the times as they are; the target is its centre
    assert fitted["time"].to_dict() == plain["time"].to_dict()
    assert fitted["night_sky"].target_time == fitted["time"].center
    restored = transforms_from_dict(transforms_to_dict(fitted))
    assert restored["night_sky"].to_dict() == fitted["night_sky"].to_dict()
    # the training batches carry the fixed time in the night-sky pixels, and only there
    x, _, _ = encode_batch(batch, fitted)
    x_plain, _, _ = encode_batch(batch, plain)
    time_channel = fitted["grid"].from_grid(x)[:, 1].numpy()
    centre = fitted["time"].forward(torch.tensor([fitted["time"].center])).item()
    night_sky = image <= 1.0
    np.testing.assert_allclose(time_channel[night_sky], centre, atol=1e-6)
    np.testing.assert_array_equal(
        time_channel[~night_sky], fitted["grid"].from_grid(x_plain)[:, 1].numpy()[~night_sky]
    )


def test_config_validates_and_keeps_the_network():
    config = ModelConfig.from_dict({**PRESETS["tiny"].to_dict(), "night_sky_charge": 1})
    assert config.night_sky_charge == 1.0
    assert config.architecture_dict() == PRESETS["tiny"].architecture_dict()
    assert config.network_dict() != PRESETS["tiny"].network_dict()
    # model files written before the option read as without it
    old = PRESETS["tiny"].to_dict()
    del old["night_sky_charge"]
    assert ModelConfig.from_dict(old).night_sky_charge is None
    with pytest.raises(ValueError, match="night_sky_charge must be finite"):
        ModelConfig.from_dict({**PRESETS["tiny"].to_dict(), "night_sky_charge": float("nan")})
    with pytest.raises(ValueError, match="cannot be combined with pixel_response"):
        ModelConfig.from_dict({**PRESETS["tiny-signal"].to_dict(), "night_sky_charge": 1})


def test_time_plane_follows_each_events_own_gradient():
    positions = np.stack(np.meshgrid(np.arange(12), np.arange(12)), -1).reshape(-1, 2) * 1.0
    slopes = np.array([[0.5, -0.2], [-1.0, 0.3]])
    time = 40 + slopes @ positions.T  # two events, two gradients
    weight = np.zeros_like(time)
    weight[:, 30:90] = 10.0  # the shower pixels: five rows of the grid
    weight[1, 30:60] = 0.0
    plane = time_plane(weight, time, positions, default=39.0)
    # the ridge shrinks the slopes by a few percent where the pixels span few rows
    np.testing.assert_allclose(plane, time, atol=0.3)
    assert all(np.corrcoef(p, t)[0, 1] > 0.999 for p, t in zip(plane, time, strict=True))
    # no weight: the default; one pixel: a flat plane at its time
    single = np.zeros((2, len(positions)))
    single[1, 50] = 3.0
    flat = time_plane(single, time, positions, default=39.0)
    np.testing.assert_array_equal(flat[0], 39.0)
    np.testing.assert_allclose(flat[1], time[1, 50])


def test_plane_target_fills_night_sky_pixels_with_the_plane():
    image, time = _images(n_events=50, n_pixels=64)
    positions = np.stack(np.meshgrid(np.arange(8), np.arange(8)), -1).reshape(-1, 2) * 1.0
    table = NightSkyTimes.fit(image, time, charge=1.0, target_time=40.0, target="plane")
    night_sky = image <= 1.0
    target = table.training_times(image, time, positions)
    weight = np.where(night_sky, 0.0, image)
    expected = np.clip(time_plane(weight, time, positions, 40.0), time.min(), time.max())
    np.testing.assert_allclose(target[night_sky], expected[night_sky], rtol=1e-6)
    np.testing.assert_array_equal(target[~night_sky], time[~night_sky])
    # the fixture's shower pixels sit at 40 +- 1 ns everywhere: so does the plane
    assert np.abs(target[night_sky] - 40).max() < 5
    with pytest.raises(ValueError, match="needs the pixels' positions"):
        table.training_times(image, time)
    assert NightSkyTimes.from_dict(table.to_dict()).target == "plane"
    with pytest.raises(ValueError, match="night-sky target must be one of"):
        NightSkyTimes.fit(image, time, charge=1.0, target_time=40.0, target="median")


def test_config_refuses_a_target_without_night_sky_times():
    with pytest.raises(ValueError, match="night_sky_target must be one of"):
        ModelConfig.from_dict(
            {**PRESETS["tiny"].to_dict(), "night_sky_charge": 1, "night_sky_target": "x"}
        )
    with pytest.raises(ValueError, match="set night_sky_charge"):
        ModelConfig.from_dict({**PRESETS["tiny"].to_dict(), "night_sky_target": "plane"})
