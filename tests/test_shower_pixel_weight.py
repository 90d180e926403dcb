"""The shower-pixel loss weighting (``TrainConfig.shower_pixel_weight``)."""

import numpy as np
import pytest
import torch
from fixtures_model import make_synthetic_arrays, tiny_train_config

from ctapipe_genshower.checkpoint import load_generator_modules
from ctapipe_genshower.fit import train
from ctapipe_genshower.model.config import PRESETS
from ctapipe_genshower.model.diffusion import masked_mse
from ctapipe_genshower.model.transforms import encode_images, fit_transforms
from ctapipe_genshower.training.config import TrainConfig
from ctapipe_genshower.training.loop import shower_pixel_weights


@pytest.fixture(scope="module")
def synthetic():
    return make_synthetic_arrays(n_thrown=3000)


def test_masked_mse_with_pixel_weights_is_the_weighted_mean():
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randn(2, 3, 2, 4, 5, generator=g)
    mask = torch.ones(1, 1, 4, 5)
    mask[..., 0, :] = 0  # a grid row outside the camera
    weight = 1 + 4 * (torch.rand(3, 1, 4, 5, generator=g) > 0.7)
    err = (pred - target).square() * mask
    expected = (err * weight).sum() / ((mask * weight).sum() * 2)
    assert float(masked_mse(pred, target, mask, pixel_weight=weight)) == pytest.approx(
        float(expected), rel=1e-6
    )
    ones = torch.ones_like(weight)
    assert float(masked_mse(pred, target, mask, pixel_weight=ones)) == pytest.approx(
        float(masked_mse(pred, target, mask)), rel=1e-6
    )


def test_masked_mse_per_channel_is_each_channels_mean():
    """``per_channel`` gives each channel's own masked mean, unweighted; with the channel
    weights they average to the scalar loss (the training's and the log's ``val_loss``)."""
    g = torch.Generator().manual_seed(1)
    pred, target = torch.randn(2, 3, 2, 4, 5, generator=g)
    mask = torch.ones(1, 1, 4, 5)
    mask[..., 0, :] = 0
    weight = 1 + 4 * (torch.rand(3, 1, 4, 5, generator=g) > 0.7)
    for pixel_weight in (None, weight):
        parts = masked_mse(pred, target, mask, pixel_weight=pixel_weight, per_channel=True)
        for c in range(2):
            alone = masked_mse(
                pred[:, c : c + 1], target[:, c : c + 1], mask, None, None, pixel_weight
            )
            assert float(parts[c]) == pytest.approx(float(alone), rel=1e-6)
        scalar = masked_mse(pred, target, mask, (1.0, 3.0), pixel_weight=pixel_weight)
        assert float((parts[0] + 3 * parts[1]) / 4) == pytest.approx(float(scalar), rel=1e-6)


def test_shower_pixels_are_the_pixels_above_the_threshold(synthetic):
    meta = synthetic.meta
    batch = {
        "image": synthetic.image,
        "peak_time": synthetic.peak_time,
        "conditions": synthetic.conditions,
    }
    transforms = fit_transforms(batch, meta["grid_shape"], meta["grid_index"], pad_to=8)
    image = torch.as_tensor(synthetic.image[:50])
    size = transforms["image"].size(image)
    x = encode_images(transforms, image, torch.as_tensor(synthetic.peak_time[:50]), size)
    weight = shower_pixel_weights(x, size, transforms["image"], 6.0, 5.0)
    assert weight.shape == (50, 1, *x.shape[2:])
    pixels = transforms["grid"].from_grid(weight[:, 0:1].expand(-1, 2, -1, -1))[:, 0]
    shower = image.numpy() > 5.0
    # the decoded charge is the training image's to float32 rounding
    assert np.mean((pixels.numpy() == 6.0) == shower) > 0.999
    assert 0 < shower.mean() < 0.5
    # the grid cells outside the camera are not shower pixels
    outside = transforms["grid"].mask().expand_as(weight) == 0
    assert outside.any() and bool((weight[outside] == 1.0).all())


def test_weighting_changes_the_training_loss_not_the_validation_loss(synthetic, tmp_path):
    runs = {}
    for w in (1.0, 4.0):
        path = tmp_path / f"w{w}.safetensors"
        result = train(synthetic, path, PRESETS["tiny"], tiny_train_config(shower_pixel_weight=w))
        train_losses = [r["loss"] for r in result.history if r["kind"] == "train"]
        runs[w] = train_losses, load_generator_modules(path)[3]
    assert runs[4.0][1]["config"]["train"]["shower_pixel_weight"] == 4.0
    assert runs[4.0][0][0] != pytest.approx(runs[1.0][0][0], rel=1e-4)


def test_a_weight_below_one_is_refused():
    with pytest.raises(ValueError, match="shower_pixel_weight must be >= 1"):
        TrainConfig(shower_pixel_weight=0.5)
