"""Conditional and low-level (CNN) classifier two-sample tests on small synthetic samples."""

import numpy as np
import pytest

from ctapipe_genshower.validation.metrics import (
    classifier_two_sample_test,
    conditional_classifier_two_sample_test,
)


def _conditioned(rng, n, shuffle):
    """Features that follow the condition; ``shuffle`` breaks the relation, not the marginals."""
    condition = rng.uniform(0, 1, size=(n, 1))
    features = condition + rng.normal(0, 0.05, size=(n, 1))
    features = np.column_stack([features, rng.normal(size=n)])
    if shuffle:
        condition = condition[rng.permutation(n)]
    return features, condition


def test_conditional_classifier_sees_a_broken_condition_relation():
    rng = np.random.default_rng(1)
    gen, gen_cond = _conditioned(rng, 600, shuffle=True)
    ref, ref_cond = _conditioned(rng, 600, shuffle=False)
    kwargs = {"seed": 0, "n_threads": 1}
    plain = classifier_two_sample_test(gen, ref, **kwargs)
    conditional = conditional_classifier_two_sample_test(gen, ref, gen_cond, ref_cond, **kwargs)
    assert abs(plain["auc"] - 0.5) < 4 * plain["auc_error"]
    assert conditional["auc"] > 0.85
    assert conditional["auc_error"] < 0.03


def test_conditional_classifier_is_half_for_the_same_relation():
    rng = np.random.default_rng(2)
    gen, gen_cond = _conditioned(rng, 500, shuffle=False)
    ref, ref_cond = _conditioned(rng, 500, shuffle=False)
    result = conditional_classifier_two_sample_test(
        gen, ref, gen_cond, ref_cond, seed=0, n_threads=1
    )
    assert abs(result["auc"] - 0.5) < 4 * result["auc_error"]


def _blobs(rng, n, width, size=12):
    """Gaussian blobs at random positions on a small grid, normalised to unit sum."""
    yy, xx = np.mgrid[:size, :size]
    centre = rng.uniform(4, size - 4, size=(n, 2))
    images = np.exp(
        -((xx - centre[:, 0, None, None]) ** 2 + (yy - centre[:, 1, None, None]) ** 2)
        / (2 * width**2)
    )
    images += rng.exponential(0.02, size=images.shape)  # pixel noise
    images /= images.sum(axis=(1, 2), keepdims=True)
    return images[:, np.newaxis].astype(np.float32)


@pytest.fixture(scope="module")
def torch_threads():
    pytest.importorskip("torch")
    return 1


def test_cnn_separates_images_of_another_shape(torch_threads):
    from ctapipe_genshower.validation.image_classifier import image_classifier_two_sample_test

    rng = np.random.default_rng(3)
    narrow, wide = _blobs(rng, 300, 1.0), _blobs(rng, 300, 2.0)
    result = image_classifier_two_sample_test(
        narrow, wide, seed=0, epochs=6, n_threads=torch_threads
    )
    assert result["n_per_class"] == 300 and result["n_folds"] == 5
    assert result["auc"] > 0.9
    assert 0 <= result["auc_error"] < 0.05
    assert 0 <= result["auc_fold_std"] < 0.1


def test_cnn_is_half_for_identical_distributions(torch_threads):
    from ctapipe_genshower.validation.image_classifier import image_classifier_two_sample_test

    rng = np.random.default_rng(4)
    a, b = _blobs(rng, 300, 1.5), _blobs(rng, 300, 1.5)
    result = image_classifier_two_sample_test(a, b, seed=0, epochs=6, n_threads=torch_threads)
    assert abs(result["auc"] - 0.5) < 4 * result["auc_error"]


def test_cnn_too_few_events_gives_none(torch_threads):
    from ctapipe_genshower.validation.image_classifier import image_classifier_two_sample_test

    rng = np.random.default_rng(5)
    result = image_classifier_two_sample_test(_blobs(rng, 5, 1.0), _blobs(rng, 5, 1.0))
    assert result["auc"] is None and result["auc_error"] is None


def test_images_to_grid_has_image_and_relative_time_channels():
    from ctapipe.instrument import CameraGeometry

    from ctapipe_genshower.instrument import CameraGridMapping
    from ctapipe_genshower.validation.image_classifier import images_to_grid

    geometry = CameraGeometry.make_rectangular(8, 8)
    rng = np.random.default_rng(6)
    images = rng.uniform(0, 1, size=(3, geometry.n_pixels)).astype(np.float32)
    times = np.full_like(images, 7.0)
    grid = images_to_grid(geometry, images, times)
    mapping = CameraGridMapping.from_geometry(geometry)
    assert grid.shape == (3, 2, *mapping.shape)
    np.testing.assert_allclose(mapping.from_grid(grid[:, 0]), images)
    np.testing.assert_allclose(grid[:, 1], 0.0, atol=1e-5)  # time relative to the image mean
    assert images_to_grid(geometry, images).shape == (3, 1, *mapping.shape)
