"""Normalisation transforms: invertible, JSON round trip, grid mapping exact."""

import json

import numpy as np
import pytest
import torch

from ctapipe_genshower.model.transforms import (
    CONDITION_NAMES,
    SIGNAL_CHARGE,
    ConditionTransform,
    ImageTransform,
    PixelGrid,
    TimeTransform,
    fit_time_transform,
)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    image = rng.normal(0, 1, (50, 100)) + rng.pareto(1.5, (50, 100)) * 20 * (
        rng.uniform(size=(50, 100)) < 0.2
    )
    peak_time = rng.uniform(0, 40, (50, 100))
    conditions = np.column_stack(
        [
            rng.uniform(-1, 2, 50),
            rng.normal(0, 200, 50),
            rng.normal(0, 200, 50),
            rng.normal(0, 1, 50),
            rng.normal(0, 1, 50),
        ]
    )
    return image, peak_time, conditions


def test_condition_names_match_data_columns():
    from ctapipe_genshower.data.arrays import CONDITION_COLUMNS

    assert tuple(CONDITION_NAMES) == tuple(CONDITION_COLUMNS)


def test_image_transform_invertible(data):
    image, _, _ = data
    tf = ImageTransform().fit(image)
    size = tf.size(image)
    y = tf.forward(image, size)
    assert abs(float(y.mean())) < 1e-3 and float(y.std()) == pytest.approx(1.0, rel=1e-3)
    back = tf.inverse(y, size, clip=False)
    np.testing.assert_allclose(back.numpy(), image, rtol=1e-4, atol=1e-4)
    assert np.any(image < 0)  # negative NSB values survive the round trip
    # clipping at the saturation value
    big = tf.inverse(y + 5, size)
    assert float(big.max()) <= tf.saturation
    tf2 = ImageTransform.from_dict(json.loads(json.dumps(tf.to_dict())))
    assert torch.equal(tf2.forward(image, size), y)


def test_normalised_sum_is_one(data):
    image, _, _ = data
    tf = ImageTransform().fit(image)
    size = tf.size(image)
    q = tf.q_scale * torch.sinh(tf.forward(image, size).double() * tf.scale + tf.shift)
    np.testing.assert_allclose(q.sum(-1).numpy(), 1.0, rtol=1e-5)


def test_time_transform(data):
    _, t, _ = data
    tf = TimeTransform().fit(t)
    y = tf.forward(t)
    assert abs(float(y.median())) < 0.05
    np.testing.assert_allclose(tf.inverse(y).numpy(), t, rtol=1e-5, atol=1e-4)
    assert float(tf.inverse(y + 100).max()) == pytest.approx(tf.t_max)
    with pytest.raises(ValueError, match="NaN"):
        TimeTransform().fit(np.array([[1.0, np.nan]]))
    # long tails: the robust scale ignores them, robust=False makes them O(1) too
    tails = np.concatenate([np.random.default_rng(0).normal(40, 1, 10_000), np.full(300, 100.0)])
    assert TimeTransform().fit(tails).scale == pytest.approx(1.0, rel=0.05)
    assert TimeTransform().fit(tails, robust=False).scale == pytest.approx(tails.std(), rel=1e-3)


def _pixels_with_a_time_profile(n_events=200, n_pixels=300, seed=1):
    """Noise pixels uniform in a 100 ns window, bright pixels within ~1 ns of 40 ns."""
    rng = np.random.default_rng(seed)
    bright = rng.uniform(size=(n_events, n_pixels)) < 0.1
    image = np.where(
        bright, rng.uniform(SIGNAL_CHARGE, 200, bright.shape), rng.normal(0, 2, bright.shape)
    )
    time = np.where(bright, rng.normal(40, 1.0, bright.shape), rng.uniform(0, 100, bright.shape))
    return {"image": image, "peak_time": time}


def test_asinh_time_transform_resolves_the_signal_times():
    """The asinh form is centred and softened on the bright pixels' times, inverts exactly,
    and gives a sub-ns time difference there several times the linear form's weight."""
    batch = _pixels_with_a_time_profile()
    asinh = fit_time_transform(batch, "asinh")
    linear = fit_time_transform(batch, "linear")
    signal = batch["peak_time"][batch["image"] >= SIGNAL_CHARGE]
    assert asinh.center == pytest.approx(np.median(signal), abs=0.01)
    assert asinh.softening == pytest.approx(1.0, rel=0.05)  # the bright pixels' sigma
    y = asinh.forward(batch["peak_time"])
    assert float(y.mean()) == pytest.approx(0.0, abs=1e-3)
    assert float(y.std()) == pytest.approx(1.0, rel=1e-3)
    np.testing.assert_allclose(asinh.inverse(y).numpy(), batch["peak_time"], rtol=1e-5, atol=1e-3)
    assert float(asinh.inverse(torch.tensor([1e6, -1e6]))[0]) == pytest.approx(asinh.t_max)
    assert float(asinh.inverse(torch.tensor([1e6, -1e6]))[1]) == pytest.approx(asinh.t_min)
    # 0.35 ns at the signal time, in network units
    step = torch.tensor([40.0, 40.35])
    gain = float(np.diff(asinh.forward(step))[0] / np.diff(linear.forward(step))[0])
    assert gain > 5, gain
    with pytest.raises(ValueError, match="time_transform must be one of"):
        fit_time_transform(batch, "log")
    with pytest.raises(ValueError, match="fewer than 2 bright pixels"):
        fit_time_transform({"image": np.zeros((2, 3)), "peak_time": np.ones((2, 3))}, "asinh")


def test_asinh_plus_linear_inverse_reaches_rounding_in_a_few_newton_steps():
    """Over the whole range a model meets (signal times to far beyond the readout window)
    the inverse solves the map to float64 rounding, within 12 Newton steps; NaN stays NaN."""
    tf = TimeTransform.from_dict(
        {
            "center": 39.9,
            "scale": 7.49,
            "t_min": 0.0,
            "t_max": 100.0,
            "softening": 0.743,
            "shift": 2.25,
            "linear_slope": 0.136,
        }
    )
    u = torch.linspace(-40.0, 40.0, 200001, dtype=torch.float64)
    dt = tf._invert_softened(u)
    np.testing.assert_allclose(tf._softened(dt).numpy(), u.numpy(), rtol=0, atol=1e-12)
    assert torch.equal(tf._invert_softened(u, max_iterations=12), dt)
    assert torch.isnan(tf._invert_softened(torch.tensor([float("nan"), 1.0])))[0]
    clipped = tf.inverse(torch.tensor([-1e9, 1e9, 0.0]))  # clipped to the window, no overflow
    assert clipped[0] == pytest.approx(tf.t_min) and clipped[1] == pytest.approx(tf.t_max)


def test_asinh_plus_linear_time_transform_keeps_the_noise_times_resolved():
    """The linear term has the asinh term's variance; the map inverts exactly (Newton)
    and resolves noise times at the window's end better than the asinh alone."""
    batch = _pixels_with_a_time_profile()
    mixed = fit_time_transform(batch, "asinh+linear")
    asinh = fit_time_transform(batch, "asinh")
    linear = fit_time_transform(batch, "linear")
    dt = torch.as_tensor(batch["peak_time"], dtype=torch.float64) - mixed.center
    asinh_part = torch.asinh(dt / mixed.softening)
    assert float((mixed.linear_slope * dt).std()) == pytest.approx(float(asinh_part.std()))
    y = mixed.forward(batch["peak_time"])
    assert float(y.std()) == pytest.approx(1.0, rel=1e-3)
    np.testing.assert_allclose(mixed.inverse(y).numpy(), batch["peak_time"], rtol=1e-5, atol=1e-3)
    assert float(mixed.inverse(torch.tensor([1e6]))[0]) == pytest.approx(mixed.t_max)

    def gain(tf, a, b):
        step = torch.tensor([a, b])
        return float(np.diff(tf.forward(step))[0] / np.diff(linear.forward(step))[0])

    assert gain(mixed, 40.0, 40.35) > 3  # the signal times: still several times the linear's
    assert gain(mixed, 90.0, 99.0) > 3 * gain(asinh, 90.0, 99.0)  # the noise tail
    refitted = fit_time_transform(batch, "asinh+linear").fit(batch["peak_time"])
    assert refitted.to_dict() == linear.to_dict()  # a linear refit leaves nothing behind
    again = TimeTransform.from_dict(json.loads(json.dumps(mixed.to_dict())))
    assert torch.equal(
        again.forward(torch.tensor([3.0, 95.0])), mixed.forward(torch.tensor([3.0, 95.0]))
    )


def test_time_transform_dict_round_trip_and_old_files():
    """The asinh form survives JSON; a dict without its keys (files before it) is linear."""
    batch = _pixels_with_a_time_profile()
    asinh = fit_time_transform(batch, "asinh")
    again = TimeTransform.from_dict(json.loads(json.dumps(asinh.to_dict())))
    t = torch.tensor([0.0, 39.0, 40.2, 77.0])
    assert torch.equal(asinh.forward(t), again.forward(t))
    old = {"center": 40.0, "scale": 10.0, "t_min": 0.0, "t_max": 100.0}
    tf = TimeTransform.from_dict(old)
    assert tf.softening is None and tf.to_dict() == old
    np.testing.assert_allclose(tf.forward(t).numpy(), (t.numpy() - 40) / 10, rtol=1e-6)


def test_image_transform_of_sparse_true_images():
    true = np.zeros((50, 100))
    true[:, :5] = np.arange(1, 6)  # 95 % exact zeros, like true images
    assert ImageTransform().fit(true).q_scale == pytest.approx(1e-9)  # the zero median
    tf = ImageTransform().fit(true, ignore_zeros=True)
    assert tf.q_scale == pytest.approx(3 / 15)  # median of the non-zero fractions
    np.testing.assert_allclose(tf.inverse(tf.forward(true), tf.size(true)).numpy(), true, atol=1e-4)


def test_condition_transform(data):
    image, _, c = data
    size = ImageTransform().size(np.abs(image))
    tf = ConditionTransform().fit(c, size)
    f = tf.features(c)
    assert f.shape == (50, 7)
    np.testing.assert_allclose(f.mean(0).numpy(), 0, atol=1e-5)
    z = tf.log_size(size)
    np.testing.assert_allclose(tf.size_from_log(z).numpy(), size.numpy(), rtol=1e-5)
    assert tf.pixel_condition(c, size).shape == (50, 8)
    tf2 = ConditionTransform.from_dict(json.loads(json.dumps(tf.to_dict())))
    assert torch.equal(tf2.features(c), f)
    with pytest.raises(ValueError, match=r"\(N, 5\)"):
        tf.features(c[:, :4])


def test_pixel_grid_round_trip():
    from ctapipe_genshower.instrument import CameraGridMapping, flashcam_like_geometry

    geom = flashcam_like_geometry()
    mapping = CameraGridMapping.from_geometry(geom)
    grid = PixelGrid(mapping.shape, mapping.flat_index, pad_to=4)
    assert grid.padded_shape == (52, 52)
    pixels = torch.randn(3, 2, geom.n_pixels)
    g = grid.to_grid(pixels)
    assert torch.equal(grid.from_grid(g), pixels)
    assert int(grid.mask().sum()) == geom.n_pixels
    # agrees with ctapipe's cartesian representation (via CameraGridMapping)
    ref = mapping.to_grid(pixels[0, 0].numpy())
    np.testing.assert_array_equal(g[0, 0, :49, :49].numpy(), ref)
    assert float(g[:, :, 49:, :].abs().sum()) == 0
