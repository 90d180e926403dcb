"""Schedule, v-prediction loss and the DDIM sampler (exact on a Gaussian toy problem)."""

import math

import numpy as np
import pytest
import torch

from ctapipe_genshower.model.diffusion import alpha_sigma, predict_x0_eps, v_loss, v_target
from ctapipe_genshower.model.samplers import ddim_sample, ddim_timesteps, event_generators


def test_schedule_and_parameterisation():
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    a, s = alpha_sigma(t)
    torch.testing.assert_close(a**2 + s**2, torch.ones_like(t))
    assert float(a[0]) == 1 and float(s[0]) == 0 and abs(float(a[-1])) < 1e-15
    g = torch.Generator().manual_seed(0)
    x0, eps = (
        torch.randn(11, 3, generator=g, dtype=torch.float64),
        torch.randn(11, 3, generator=g, dtype=torch.float64),
    )
    x_t = a[:, None] * x0 + s[:, None] * eps
    x0_hat, eps_hat = predict_x0_eps(x_t, v_target(x0, eps, t), t)
    torch.testing.assert_close(x0_hat, x0)
    torch.testing.assert_close(eps_hat, eps)


def test_loss_is_masked():
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :2] = 1
    x0 = torch.randn(3, 2, 4, 4) * mask

    def perfect(x_t, t, cond):  # knows x0: predicts the exact v on real pixels, garbage elsewhere
        a, s = alpha_sigma(t)
        eps = (x_t - a[:, None, None, None] * x0) / s[:, None, None, None].clamp_min(1e-6)
        return (a[:, None, None, None] * eps - s[:, None, None, None] * x0) * mask + 1e3 * (
            1 - mask
        )

    t = torch.full((3,), 0.5)
    assert (
        float(v_loss(perfect, x0, None, mask, t=t, generator=torch.Generator().manual_seed(1)))
        < 1e-8
    )
    zero = v_loss(
        lambda x_t, t, c: torch.zeros_like(x_t),
        x0,
        None,
        mask,
        t=t,
        generator=torch.Generator().manual_seed(1),
    )
    assert 0 < float(zero) < 10


def _gaussian_denoiser(mean, std):
    """Exact v-prediction for data x0 ~ N(mean, std**2) per pixel."""

    def denoise(x_t, t, cond):
        a, s = alpha_sigma(t.double().reshape(-1, *([1] * (x_t.ndim - 1))))
        x_t = x_t.double()
        x0 = mean + a * std**2 / (a**2 * std**2 + s**2) * (x_t - a * mean)
        return ((a * x_t - x0) / s).float()

    return denoise


def test_ddim_samples_gaussian_exactly():
    """With the exact denoiser, deterministic DDIM maps N(0,1) to the data distribution."""
    n, mean, std = 4000, 1.5, 0.3
    gens = event_generators(range(n))
    x = ddim_sample(_gaussian_denoiser(mean, std), torch.zeros(n, 1), gens, (1,), n_steps=50)
    assert float(x.mean()) == pytest.approx(mean, abs=4 * std / math.sqrt(n))
    assert float(x.std()) == pytest.approx(std, rel=0.05)
    # fewer steps: the discretisation error shrinks monotonically with the number of steps
    errors = [
        abs(
            float(
                ddim_sample(
                    _gaussian_denoiser(mean, std),
                    torch.zeros(n, 1),
                    event_generators(range(n)),
                    (1,),
                    n_steps=k,
                ).std()
            )
            - std
        )
        for k in (2, 4, 10)
    ]
    assert errors[0] > errors[1] > errors[2] > abs(float(x.std()) - std)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_sampler_per_event_seeds(eta):
    denoise = _gaussian_denoiser(0.5, 0.2)
    seeds = [3, 1, 4, 1, 5]
    a = ddim_sample(denoise, torch.zeros(5, 1), event_generators(seeds), (2, 3), n_steps=5, eta=eta)
    b = ddim_sample(
        denoise, torch.zeros(2, 1), event_generators(seeds[2:4]), (2, 3), n_steps=5, eta=eta
    )
    torch.testing.assert_close(a[2:4], b)
    torch.testing.assert_close(a[1], a[3])  # same seed, same sample
    assert not torch.allclose(a[0], a[2])


def test_sampler_mask_and_errors():
    mask = torch.zeros(1, 1, 3, 3)
    mask[..., 1, 1] = 1
    x = ddim_sample(
        _gaussian_denoiser(0.5, 0.2),
        torch.zeros(2, 1),
        event_generators([0, 1]),
        (1, 3, 3),
        n_steps=3,
        mask=mask,
    )
    assert float((x * (1 - mask)).abs().sum()) == 0
    with pytest.raises(ValueError, match="n_steps"):
        ddim_timesteps(0)
    with pytest.raises(ValueError, match="seeds"):
        event_generators([-1])
    assert ddim_timesteps(4).dtype == torch.float64
    np.testing.assert_allclose(ddim_timesteps(4).numpy(), [1, 0.75, 0.5, 0.25, 0])
