"""Samplers as plain functions over a model callable ``denoise(x_t, t, cond) -> v``.

Reproducibility: each event's noise comes from its own ``torch.Generator`` seeded from a
per-event integer and drawn on the CPU, so an event's sample depends only on its seed,
its condition and the model, not on the batch it is generated in or on the device.
Time steps, ``alpha``/``sigma`` and the sampler state are float64; only the network call
runs in the model's dtype.
"""

import torch

from .diffusion import alpha_sigma, predict_x0_eps

__all__ = ["ddim_sample", "ddim_timesteps", "event_generators", "event_noise"]


def ddim_timesteps(n_steps):
    """``n_steps + 1`` float64 times from 1 (pure noise) down to 0 (data)."""
    if int(n_steps) < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    return torch.linspace(1.0, 0.0, int(n_steps) + 1, dtype=torch.float64)


def event_generators(seeds):
    """One CPU ``torch.Generator`` per event seed (non-negative integers < 2**63)."""
    gens = []
    for seed in seeds:
        seed = int(seed)
        if not 0 <= seed < 2**63:
            raise ValueError(f"seeds must be integers in [0, 2**63), got {seed}")
        gens.append(torch.Generator().manual_seed(seed))
    return gens


def event_noise(generators, shape):
    """Standard normal noise ``(N, *shape)`` float64, row ``i`` from ``generators[i]``."""
    return torch.stack([torch.randn(shape, generator=g, dtype=torch.float64) for g in generators])


@torch.no_grad()
def ddim_sample(
    denoise, cond, generators, shape, n_steps=20, eta=0.0, mask=None, device="cpu", callback=None
):
    """DDIM sampling (Song et al. 2020) for a v-prediction model on the cosine schedule.

    Parameters
    ----------
    denoise : callable
        ``denoise(x_t, t, cond) -> v`` with ``x_t`` float32 ``(N, *shape)``, ``t`` float32 ``(N,)``.
    cond : torch.Tensor
        ``(N, D)`` conditions, on ``device``.
    generators : list of torch.Generator
        One CPU generator per event (see :func:`event_generators`).
    shape : tuple of int
        Shape of one sample, e.g. ``(2, H, W)``.
    n_steps : int
        Number of network evaluations.
    eta : float
        0 gives the deterministic DDIM (probability-flow) sampler; 1 the ancestral (DDPM-like)
        one. Extra noise for ``eta > 0`` also comes from the per-event generators.
    mask : torch.Tensor, optional
        ``(1, 1, H, W)``; noise and samples are zero outside it.
    callback : callable, optional
        Called as ``callback(step, t, x0_hat)`` after each step.

    Returns
    -------
    torch.Tensor
        Samples ``(N, *shape)`` float32 on ``device``.
    """
    if len(generators) != cond.shape[0]:
        raise ValueError(f"{len(generators)} generators for {cond.shape[0]} conditions")
    n = cond.shape[0]
    mask64 = None if mask is None else mask.to(device=device, dtype=torch.float64)
    x = event_noise(generators, shape).to(device)
    if mask64 is not None:
        x = x * mask64
    times = ddim_timesteps(n_steps)
    for i in range(int(n_steps)):
        t, s = times[i], times[i + 1]
        t_batch = torch.full((n,), float(t), dtype=torch.float32, device=device)
        v = denoise(x.float(), t_batch, cond).to(torch.float64)
        x0, eps = predict_x0_eps(x, v, t.to(device))
        alpha_s, sigma_s = alpha_sigma(s)
        if eta > 0 and s > 0:
            alpha_t, sigma_t = alpha_sigma(t)
            # DDIM's sigma_eta in terms of alpha_bar = alpha**2
            ratio = (sigma_s**2 / sigma_t**2) * (1 - alpha_t**2 / alpha_s**2)
            sigma_eta = eta * torch.sqrt(ratio.clamp_min(0.0))
            direction = torch.sqrt((sigma_s**2 - sigma_eta**2).clamp_min(0.0))
            z = event_noise(generators, shape).to(device)
            if mask64 is not None:
                z = z * mask64
            x = alpha_s.item() * x0 + direction.item() * eps + sigma_eta.item() * z
        else:
            x = alpha_s.item() * x0 + sigma_s.item() * eps
        if mask64 is not None:
            x = x * mask64
        if callback is not None:
            callback(i, float(s), x0)
    return x.float()
