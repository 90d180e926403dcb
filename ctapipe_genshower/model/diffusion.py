"""Cosine noise schedule and the masked v-prediction loss (pure functions).

Forward process ``x_t = alpha(t) x_0 + sigma(t) eps`` with ``alpha = cos(pi t / 2)``,
``sigma = sin(pi t / 2)``, ``t ~ U(0, 1)``. The network predicts the velocity
``v = alpha eps - sigma x_0``; from ``(x_t, v)`` both ``x_0 = alpha x_t - sigma v`` and
``eps = sigma x_t + alpha v`` follow.

Loss weighting (documented choice): plain, unweighted MSE on ``v`` with ``t`` uniform, as in
the paper. In terms of the ``x_0`` error this is the weight ``1 + SNR(t) = 1 / sigma(t)**2``
("SNR+1" weighting), which stays finite at ``t = 0`` and ``t = 1``. The squared error is
averaged over real camera pixels only (grid cells outside the camera carry neither data nor
noise and are ignored) and over the two channels with weights ``channel_weights``
(default 1 for charge, 1 for peak time).

Optional min-SNR-gamma weighting (Hang et al. 2023, arXiv 2303.09556): the ``x_0``-error
weight is capped at ``min(SNR, gamma)``, i.e. the v-MSE of each sample is multiplied by
``min(SNR, gamma) / (SNR + 1)``. It stops the nearly noise-free times, where the task is
easy, from pulling against the noisy ones (reported ~3x faster convergence).

Optional pixel weighting (``pixel_weight``): ~90 % of a camera's pixels hold only night-sky
noise, and an unweighted mean spends the loss on them; the trainer can weight the pixels of
the shower (see ``TrainConfig.shower_pixel_weight``) so the network's capacity goes there.

Optional shift of the training noise levels (``shifted_times``): times whose log-SNR is that
of a uniform time raised by a constant, so training spends more of its steps at low noise
(positive shift) or at high noise (negative), the per-sample loss unchanged. This is the
shifted cosine schedule of Hoogeboom et al. 2023 (arXiv 2301.11093), applied to the training
distribution only: the sampler's schedule stays the cosine one. ``shifted_time_density``
weights one channel's loss as if its times were shifted, the other's kept: a weight that
depends on the time and the channel only, so the optimal denoiser is unchanged and only the
network's capacity moves.
"""

import math

import torch

__all__ = [
    "alpha_sigma",
    "masked_mse",
    "min_snr_weight",
    "predict_x0_eps",
    "shifted_time_density",
    "shifted_times",
    "v_loss",
    "v_target",
]


def alpha_sigma(t):
    """``(alpha, sigma)`` of the cosine schedule for times ``t`` (any float dtype)."""
    return torch.cos(0.5 * math.pi * t), torch.sin(0.5 * math.pi * t)


def v_target(x0, eps, t):
    """Velocity target ``alpha eps - sigma x0`` (``t`` of shape ``(N,)``)."""
    alpha, sigma = alpha_sigma(t)
    shape = (-1,) + (1,) * (x0.ndim - 1)
    return alpha.reshape(shape) * eps - sigma.reshape(shape) * x0


def predict_x0_eps(x_t, v, t):
    """``(x0_hat, eps_hat)`` from the noisy sample and predicted velocity."""
    alpha, sigma = alpha_sigma(t)
    shape = (-1,) + (1,) * (x_t.ndim - 1)
    alpha, sigma = alpha.reshape(shape), sigma.reshape(shape)
    return alpha * x_t - sigma * v, sigma * x_t + alpha * v


def shifted_times(u, log_snr_shift):
    """Times ``t`` with ``log SNR(t) = log SNR(u) + log_snr_shift`` under the cosine schedule.

    ``SNR(t) = cot(pi t / 2)**2``, so ``tan(pi t / 2) = tan(pi u / 2) exp(-log_snr_shift / 2)``;
    uniform ``u`` gives the shifted cosine schedule's training times (0: ``t = u``).
    """
    if log_snr_shift == 0:
        return u
    scale = math.exp(-0.5 * float(log_snr_shift))
    return torch.atan(torch.tan(0.5 * math.pi * u) * scale) / (0.5 * math.pi)


def shifted_time_density(t, log_snr_shift):
    """Density of :func:`shifted_times` of uniform times, at ``t``.

    As a loss weight of uniform times it trains like times drawn shifted (importance
    weights): ``k / (k**2 cos(pi t / 2)**2 + sin(pi t / 2)**2)`` with
    ``k = exp(-log_snr_shift / 2)``, between ``k`` (``t = 1``) and ``1 / k`` (``t = 0``); 1
    for no shift.
    """
    k = math.exp(-0.5 * float(log_snr_shift))
    alpha, sigma = alpha_sigma(t)
    return k / (k**2 * alpha.square() + sigma.square())


def min_snr_weight(t, gamma):
    """Per-sample v-MSE weight ``min(SNR, gamma) / (SNR + 1)`` of min-SNR-gamma weighting."""
    alpha, sigma = alpha_sigma(t)
    snr = alpha.square() / sigma.square().clamp_min(1e-12)
    return snr.clamp_max(gamma) / (snr + 1)


def v_loss(
    denoise,
    x0,
    cond,
    mask,
    generator=None,
    channel_weights=None,
    t=None,
    eps=None,
    min_snr_gamma=None,
    pixel_weight=None,
    sample_weight=None,
    per_channel=False,
):
    """Masked v-prediction loss of one batch.

    Parameters
    ----------
    denoise : callable
        ``denoise(x_t, t, cond) -> v``, same shape as ``x0``.
    x0 : torch.Tensor
        Clean samples ``(N, C, H, W)`` in network space, zero outside the camera.
    cond : torch.Tensor
        Condition vectors ``(N, D)``.
    mask : torch.Tensor
        ``(1 or N, 1, H, W)``, one on real pixels.
    generator : torch.Generator, optional
        Source of ``t`` and ``eps`` (seeded by the caller for reproducibility).
    channel_weights : sequence of float, optional
        Weight of each channel in the mean.
    t, eps : torch.Tensor, optional
        Fixed times / noise (e.g. for a deterministic validation loss).
    min_snr_gamma : float, optional
        Min-SNR-gamma weighting (see the module docstring); None: unweighted.
    pixel_weight : torch.Tensor, optional
        ``(N, 1, H, W)`` weight of each pixel's squared error (see :func:`masked_mse`).
    sample_weight : torch.Tensor, optional
        ``(N,)`` or ``(N, C)`` weights (e.g. :func:`shifted_time_density` of the given
        ``t`` for one channel), multiplied with the min-SNR weight.
    per_channel : bool
        Return each channel's mean instead of their weighted mean (see :func:`masked_mse`).

    Returns
    -------
    torch.Tensor
        Scalar loss, or ``(C,)`` with ``per_channel``.
    """
    n = x0.shape[0]
    if t is None:
        t = torch.rand(n, device=x0.device, generator=generator)
    if eps is None:
        eps = torch.randn(x0.shape, device=x0.device, generator=generator)
    eps = eps * mask
    alpha, sigma = alpha_sigma(t)
    shape = (-1, 1, 1, 1)
    x_t = alpha.reshape(shape) * x0 + sigma.reshape(shape) * eps
    target = alpha.reshape(shape) * eps - sigma.reshape(shape) * x0
    pred = denoise(x_t, t, cond).float()
    weight = None if min_snr_gamma is None else min_snr_weight(t, min_snr_gamma)
    if sample_weight is not None:
        weight = sample_weight if weight is None else sample_weight * weight.reshape(n, -1)
    return masked_mse(pred, target, mask, channel_weights, weight, pixel_weight, per_channel)


def masked_mse(
    pred,
    target,
    mask,
    channel_weights=None,
    sample_weight=None,
    pixel_weight=None,
    per_channel=False,
):
    """Squared error averaged over the real pixels and the (weighted) channels.

    Parameters
    ----------
    pred, target : torch.Tensor
        ``(N, C, H, W)``.
    mask : torch.Tensor
        ``(1 or N, 1, H, W)``, one on real pixels.
    channel_weights : sequence of float, optional
        Weight of each channel in the mean.
    sample_weight : torch.Tensor, optional
        ``(N,)`` weight of each sample's squared error, or ``(N, C)`` of each sample's and
        channel's.
    pixel_weight : torch.Tensor, optional
        ``(N, 1, H, W)`` weight of each pixel's squared error (both channels). The mean is
        then taken with these weights (divided by their sum over the real pixels instead of
        the pixel count), so the loss keeps its scale and the learning rate its meaning.
    per_channel : bool
        Return the ``(C,)`` means of the channels, unweighted by ``channel_weights`` (their
        weighted mean is the scalar loss): the channels of runs with different weights
        compare.
    """
    n, c = pred.shape[:2]
    err = (pred - target).square() * mask
    count = mask.expand(n, 1, -1, -1).sum()
    if pixel_weight is not None:
        pixel_weight = pixel_weight.to(err.dtype)
        err = err * pixel_weight
        count = (mask * pixel_weight).sum()
    if sample_weight is not None:
        err = err * sample_weight.to(err.dtype).reshape(n, -1, 1, 1)
    if per_channel:
        return err.sum(dim=(0, 2, 3)) / count
    if channel_weights is not None:
        w = torch.as_tensor(channel_weights, dtype=err.dtype, device=err.device).reshape(1, c, 1, 1)
        err = err * w
        norm = w.sum()
    else:
        norm = c
    return err.sum() / (count * norm)
