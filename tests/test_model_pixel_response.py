"""The learned pixel response: tables from training pairs, DL1 images from generated signals."""

import json

import numpy as np
import pytest

from ctapipe_genshower.model.pixel_response import PixelResponse, signal_view


def camera_pairs(n_events=2000, n_pixels=500, seed=0):
    """A camera with a known response: Gaussian NSB + 5 % charge resolution, uniform noise
    times in [0, 100] ns, signal times 40 ns; sparse Poisson signals."""
    rng = np.random.default_rng(seed)
    expected = np.where(rng.random((n_events, n_pixels)) < 0.1, rng.exponential(8, 1), 0.0)
    true = rng.poisson(expected * rng.exponential(1, (n_events, n_pixels))).astype(np.float32)
    sigma = np.sqrt(0.3**2 + 0.05**2 * true**2)
    image = true + rng.normal(0, 1, true.shape) * sigma
    time = np.where(true > 0, 40 + rng.normal(0, 1, true.shape), rng.uniform(0, 100, true.shape))
    return true, image.astype(np.float32), time.astype(np.float32)


@pytest.fixture(scope="module")
def response():
    return PixelResponse.fit(*camera_pairs())


def test_learned_response_reproduces_the_camera(response):
    true, image, time = camera_pairs(seed=1)  # independent pairs
    rngs = [np.random.default_rng(i) for i in range(len(true))]
    charge, peak_time = response.apply(true, np.full(true.shape, 40.0), rngs)
    for n in (0, 1, 3, 8):
        pixels = true == n
        assert pixels.sum() > 1000
        # mean and spread of the DL1 charge for n true p.e. as in the camera (NSB 0.3 p.e.),
        # within 4 sigma of three samples' statistics (fit, check, generated)
        sigma = image[pixels].std()
        error = 4 * np.sqrt(3 / pixels.sum())
        assert charge[pixels].mean() == pytest.approx(image[pixels].mean(), abs=error * sigma)
        assert charge[pixels].std() == pytest.approx(sigma, rel=error)
    # the tail a cleaning threshold sees: 99.9 % quantile of noise pixels (~0.93 p.e.)
    noise = true == 0
    assert np.quantile(charge[noise], 0.999) == pytest.approx(
        np.quantile(image[noise], 0.999), abs=0.05
    )
    # noise pixels get noise times (uniform 0-100 ns), signal pixels keep the given time
    assert peak_time[noise].mean() == pytest.approx(time[noise].mean(), abs=0.5)
    assert peak_time[noise].std() == pytest.approx(100 / np.sqrt(12), rel=0.01)
    np.testing.assert_array_equal(peak_time[~noise], 40.0)


def test_response_is_seeded_per_event(response):
    true, _, time = camera_pairs(n_events=6, seed=2)
    rngs = lambda seeds: [np.random.default_rng(s) for s in seeds]  # noqa: E731
    a = response.apply(true, time, rngs(range(6)))
    b = response.apply(true, time, rngs(range(6)))
    np.testing.assert_array_equal(a[0], b[0])
    alone = response.apply(true[3:4], time[3:4], rngs([3]))
    np.testing.assert_array_equal(alone[0][0], a[0][3])
    other = response.apply(true, time, rngs(range(10, 16)))
    assert not np.array_equal(other[0], a[0])
    # generated signals are whole p.e.: 0.4 rounds to 0, negative values count as 0
    c = response.apply(np.full((1, 4), 0.4), np.zeros((1, 4)), rngs([0]))
    d = response.apply(np.full((1, 4), -2.0), np.zeros((1, 4)), rngs([0]))
    e = response.apply(np.zeros((1, 4)), np.zeros((1, 4)), rngs([0]))
    np.testing.assert_array_equal(c[0], e[0])
    np.testing.assert_array_equal(d[0], e[0])
    with pytest.raises(ValueError, match="one random generator per event"):
        response.apply(true, time, rngs(range(5)))


def test_sparse_bins_borrow_from_below_and_round_trip(response):
    # the 1000 p.e. bin has no pixels here: it uses the largest populated bin's table
    assert response.n_pixels_fitted[-2] == 0
    np.testing.assert_array_equal(response.charge_quantiles[-2], response.charge_quantiles[-3])
    again = PixelResponse.from_dict(json.loads(json.dumps(response.to_dict())))
    np.testing.assert_array_equal(again.charge_quantiles, response.charge_quantiles)
    np.testing.assert_array_equal(again.noise_time_quantiles, response.noise_time_quantiles)


def test_fit_refuses_bad_pairs():
    true, image, time = camera_pairs(n_events=20)
    with pytest.raises(ValueError, match="whole photo-electron"):
        PixelResponse.fit(true + 0.5, image, time)
    with pytest.raises(ValueError, match="NaN"):
        PixelResponse.fit(true, np.where(true > 3, np.nan, image), time)
    with pytest.raises(ValueError, match="without signal"):
        PixelResponse.fit(true[:1, :10] + 1, image[:1, :10], time[:1, :10])


def test_signal_view():
    true = np.array([[0, 2, 6, 0], [0, 0, 0, 0]], dtype=np.float32)
    time = np.array([[5, 10, 30, 90], [1, 2, 3, 100]], dtype=np.float32)
    view = signal_view({"true_image": true, "peak_time": time, "conditions": np.zeros((2, 5))})
    np.testing.assert_array_equal(view["image"], true)
    # signal pixels keep their time, the others get the p.e.-weighted signal time (25 ns)
    np.testing.assert_allclose(view["peak_time"][0], [25, 10, 30, 25])
    np.testing.assert_allclose(view["peak_time"][1], 2.5)  # no signal: the median time
