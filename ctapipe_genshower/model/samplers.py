"""Samplers as plain functions over a model callable ``denoise(x_t, t, cond) -> v``.

* :func:`ddim_sample`: DDIM (first order), ``n_steps`` network evaluations (NFE), times
  uniform in ``t``.
* :func:`dpmpp_2m_sample`: DPM-Solver++(2M) (Lu et al. 2022, arXiv 2211.01095), second
  order multistep, ``n_steps`` NFE.
* :func:`heun_sample`: EDM's deterministic Heun solver (arXiv 2206.00364, Algorithm 1),
  ``n_steps`` intervals, ``2 n_steps - 1`` NFE.

Noise levels of the second-order solvers (``schedule``): ``"time"`` (default), uniform in the
cosine schedule's ``t`` as DDIM's grid, or ``"karras"``, EDM's ``rho = 7`` levels. Measured on
the bundled model (``docs/sampling.md``), EDM's levels spend most steps near pure noise and
near zero noise and make over-bright images at 4-8 steps; the uniform-time grid does not.

The two higher-order solvers work in EDM's variance-exploding variables: the noise level
``s = sigma / alpha = tan(pi t / 2)`` and ``x_s = x_t / alpha``, in which the
probability-flow ODE is ``dx/ds = (x - D(x; s)) / s`` with the denoised estimate ``D``
(the model's ``x_0`` prediction). The cosine-schedule model is evaluated at
``t = 2 atan(s) / pi`` on ``x_t = alpha x_s``. They start from ``s_max = 80`` (``t = 0.992``)
instead of ``t = 1``, as EDM does.

Reproducibility: each event's noise comes from its own stream seeded from a per-event
integer, so an event's sample depends only on its seed, its condition and the model, not on
the batch it is generated in. The streams are one CPU ``torch.Generator`` per event
(:func:`event_generators`, the same on every device) or counter-based streams drawn in one
batch on the device (:class:`.noise.CounterStreams`, what a GPU needs to be fast).
Time steps, ``alpha``/``sigma`` and the sampler state are float64; only the network call
runs in the model's dtype.
"""

import math

import torch

from .config import SOLVER_NAMES, eta_per_step, is_number
from .diffusion import alpha_sigma, predict_x0_eps
from .noise import CounterStreams

__all__ = [
    "SCHEDULES",
    "SOLVERS",
    "ddim_sample",
    "ddim_timesteps",
    "dpmpp_2m_sample",
    "edm_noise_levels",
    "eta_per_step",
    "event_generators",
    "event_noise",
    "heun_sample",
    "is_stochastic",
    "network_evaluations",
    "sample",
    "time_noise_levels",
]


def ddim_timesteps(n_steps):
    """``n_steps + 1`` float64 times from 1 (pure noise) down to 0 (data)."""
    if int(n_steps) < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    return torch.linspace(1.0, 0.0, int(n_steps) + 1, dtype=torch.float64)


def is_stochastic(eta):
    """Whether ``eta`` (a number or a per-step sequence) adds noise at any step."""
    return any(float(e) != 0 for e in ([eta] if is_number(eta) else eta))


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
    """Standard normal noise ``(N, *shape)`` float64, row ``i`` from ``generators[i]``.

    ``generators`` is a list of CPU generators or a :class:`.noise.CounterStreams` (whose
    noise is made on its device).
    """
    if isinstance(generators, CounterStreams):
        return generators.normal(shape)
    return torch.stack([torch.randn(shape, generator=g, dtype=torch.float64) for g in generators])


@torch.no_grad()
def ddim_sample(
    denoise,
    cond,
    generators,
    shape,
    n_steps=20,
    eta=0.0,
    mask=None,
    device="cpu",
    callback=None,
    eta_channels=None,
):
    """DDIM sampling (Song et al. 2020) for a v-prediction model on the cosine schedule.

    Parameters
    ----------
    denoise : callable
        ``denoise(x_t, t, cond) -> v`` with ``x_t`` float32 ``(N, *shape)``, ``t`` float32 ``(N,)``.
    cond : torch.Tensor
        ``(N, D)`` conditions, on ``device``.
    generators : list of torch.Generator or CounterStreams
        One noise stream per event (see :func:`event_generators`, :func:`event_noise`).
    shape : tuple of int
        Shape of one sample, e.g. ``(2, H, W)``.
    n_steps : int
        Number of network evaluations.
    eta : float or sequence of float
        0 gives the deterministic DDIM (probability-flow) sampler; 1 the ancestral (DDPM-like)
        one. A sequence gives each step its own value (steps beyond it: 0). Extra noise for
        ``eta > 0`` also comes from the per-event generators (a whole sample's worth at each
        stochastic step, whatever ``eta_channels``).
    mask : torch.Tensor, optional
        ``(1, 1, H, W)``; noise and samples are zero outside it.
    callback : callable, optional
        Called as ``callback(step, t, x0_hat)`` after each step.
    eta_channels : sequence of int, optional
        The channels that get fresh noise (None: all). DDIM's family allows a noise level
        per dimension; the others follow the deterministic update, each channel keeping the
        forward process's noise level ``sigma_s``.

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
    etas = eta_per_step(eta, n_steps)
    on = None
    if eta_channels is not None:  # 1 in the channels that get fresh noise
        on = torch.zeros((1, shape[0]) + (1,) * (len(shape) - 1), dtype=torch.float64)
        on[:, list(eta_channels)] = 1.0
        on = on.to(device)
    for i in range(int(n_steps)):
        t, s = times[i], times[i + 1]
        t_batch = torch.full((n,), float(t), dtype=torch.float32, device=device)
        v = denoise(x.float(), t_batch, cond).to(torch.float64)
        x0, eps = predict_x0_eps(x, v, t.to(device))
        alpha_s, sigma_s = alpha_sigma(s)
        if etas[i] > 0 and s > 0:
            alpha_t, sigma_t = alpha_sigma(t)
            # DDIM's sigma_eta in terms of alpha_bar = alpha**2
            ratio = (sigma_s**2 / sigma_t**2) * (1 - alpha_t**2 / alpha_s**2)
            sigma_eta = etas[i] * torch.sqrt(ratio.clamp_min(0.0))
            z = event_noise(generators, shape).to(device)
            if mask64 is not None:
                z = z * mask64
            if on is None:
                direction = torch.sqrt((sigma_s**2 - sigma_eta**2).clamp_min(0.0))
                x = alpha_s.item() * x0 + direction.item() * eps + sigma_eta.item() * z
            else:
                sigma_eta = sigma_eta.to(device) * on
                direction = torch.sqrt((sigma_s.to(device) ** 2 - sigma_eta**2).clamp_min(0.0))
                x = alpha_s.item() * x0 + direction * eps + sigma_eta * z
        else:
            x = alpha_s.item() * x0 + sigma_s.item() * eps
        if mask64 is not None:
            x = x * mask64
        if callback is not None:
            callback(i, float(s), x0)
    return x.float()


def time_noise_levels(n_steps, s_max=80.0):
    """``n_steps + 1`` float64 noise levels ``s = tan(pi t / 2)``, uniform in ``t`` from
    ``t(s_max)`` to 0 (DDIM's grid, started at ``s_max`` instead of ``t = 1``)."""
    if int(n_steps) < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    t_max = 2.0 / math.pi * math.atan(s_max)
    t = torch.linspace(t_max, 0.0, int(n_steps) + 1, dtype=torch.float64)
    levels = torch.tan(0.5 * math.pi * t)
    levels[-1] = 0.0
    return levels


def edm_noise_levels(n_steps, s_min=0.002, s_max=80.0, rho=7.0):
    """``n_steps + 1`` float64 EDM noise levels ``s``: ``s_max`` down to ``s_min``, then 0.

    Karras et al. (2022), eq. 5: uniform in ``s ** (1 / rho)``, which puts the steps where
    the denoised estimate changes fastest, at low noise.
    """
    if int(n_steps) < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    n = int(n_steps)
    if n == 1:
        return torch.tensor([s_max, 0.0], dtype=torch.float64)
    ramp = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
    lo, hi = s_min ** (1 / rho), s_max ** (1 / rho)
    levels = (hi + ramp * (lo - hi)) ** rho
    return torch.cat([levels, levels.new_zeros(1)])


class _EDMDenoised:
    """``D(x_s; s)``: the model's ``x_0`` estimate in EDM variables, masked."""

    def __init__(self, denoise, cond, mask64, device):
        self.denoise, self.cond, self.mask64, self.device = denoise, cond, mask64, device

    def __call__(self, x, s):
        s = torch.as_tensor(s, dtype=torch.float64)
        t = 2.0 / math.pi * torch.atan(s)
        alpha = 1.0 / torch.sqrt(1.0 + s * s)
        x_t = x * alpha.item()
        t_batch = torch.full((x.shape[0],), float(t), dtype=torch.float32, device=self.device)
        v = self.denoise(x_t.float(), t_batch, self.cond).to(torch.float64)
        x0, _ = predict_x0_eps(x_t, v, t.to(self.device))
        return x0 if self.mask64 is None else x0 * self.mask64


#: Noise-level grids of the second-order solvers by name.
SCHEDULES = {"time": time_noise_levels, "karras": edm_noise_levels}


def _noise_levels(schedule, n_steps):
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}, choose from {', '.join(SCHEDULES)}")
    return SCHEDULES[schedule](n_steps)


def _edm_start(generators, shape, cond, mask, device, s_max):
    if len(generators) != cond.shape[0]:
        raise ValueError(f"{len(generators)} generators for {cond.shape[0]} conditions")
    mask64 = None if mask is None else mask.to(device=device, dtype=torch.float64)
    x = event_noise(generators, shape).to(device) * s_max
    return (x if mask64 is None else x * mask64), mask64


@torch.no_grad()
def dpmpp_2m_sample(
    denoise,
    cond,
    generators,
    shape,
    n_steps=8,
    mask=None,
    device="cpu",
    callback=None,
    schedule="time",
):
    """DPM-Solver++(2M) sampling: second-order multistep, one network call per step.

    Parameters as :func:`ddim_sample` (deterministic, no ``eta``); ``n_steps`` is the number
    of network evaluations. The first and the last step are first order (the last returns
    the denoised estimate), the others extrapolate the denoised estimate linearly in the
    log noise level from the previous step (k-diffusion's ``sample_dpmpp_2m``). ``schedule``:
    ``"time"`` or ``"karras"`` noise levels (see the module docstring).
    """
    levels = _noise_levels(schedule, n_steps)
    x, mask64 = _edm_start(generators, shape, cond, mask, device, float(levels[0]))
    denoised_at = _EDMDenoised(denoise, cond, mask64, device)
    previous, h_previous = None, None
    for i in range(int(n_steps)):
        s, s_next = float(levels[i]), float(levels[i + 1])
        d = denoised_at(x, s)
        if s_next == 0:
            x = d
        else:
            h = math.log(s / s_next)
            if previous is None:
                d_hat = d
            else:
                r = h_previous / h
                d_hat = (1 + 1 / (2 * r)) * d - (1 / (2 * r)) * previous
            x = (s_next / s) * x - math.expm1(-h) * d_hat
            previous, h_previous = d, h
        if mask64 is not None:
            x = x * mask64
        if callback is not None:
            callback(i, 2.0 / math.pi * math.atan(s_next), d)
    return x.float()


@torch.no_grad()
def heun_sample(
    denoise,
    cond,
    generators,
    shape,
    n_steps=4,
    mask=None,
    device="cpu",
    callback=None,
    schedule="time",
):
    """EDM's deterministic second-order Heun sampler, ``2 n_steps - 1`` network calls.

    Parameters as :func:`ddim_sample` (deterministic, no ``eta``); ``n_steps`` is the number
    of noise-level intervals. Each interval takes an Euler step of the probability-flow ODE
    and corrects it with the slope at its end, except the last (to ``s = 0``), which is an
    Euler step. ``schedule``: ``"time"`` or ``"karras"`` noise levels.
    """
    levels = _noise_levels(schedule, n_steps)
    x, mask64 = _edm_start(generators, shape, cond, mask, device, float(levels[0]))
    denoised_at = _EDMDenoised(denoise, cond, mask64, device)
    for i in range(int(n_steps)):
        s, s_next = float(levels[i]), float(levels[i + 1])
        d = denoised_at(x, s)
        slope = (x - d) / s
        x_euler = x + (s_next - s) * slope
        if s_next > 0:
            slope_next = (x_euler - denoised_at(x_euler, s_next)) / s_next
            x = x + (s_next - s) * 0.5 * (slope + slope_next)
        else:
            x = x_euler
        if mask64 is not None:
            x = x * mask64
        if callback is not None:
            callback(i, 2.0 / math.pi * math.atan(s_next), d)
    return x.float()


#: The samplers by name: ``sample(name, ...)`` and the EventSource's ``solver`` trait.
SOLVERS = dict(zip(SOLVER_NAMES, (ddim_sample, dpmpp_2m_sample, heun_sample), strict=True))


def network_evaluations(solver, n_steps):
    """Network calls per image of ``solver`` at ``n_steps`` (Heun: ``2 n_steps - 1``)."""
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}, choose from {', '.join(SOLVERS)}")
    return 2 * int(n_steps) - 1 if solver == "heun" else int(n_steps)


def sample(solver, denoise, cond, generators, shape, n_steps, eta=0.0, **kwargs):
    """Sample with the solver named ``solver`` (see :data:`SOLVERS`).

    ``eta`` is DDIM's stochasticity (a number, or one per step; ``eta_channels`` the
    channels it applies to); the other solvers are deterministic and refuse both. Other
    keyword arguments (``mask``, ``device``, ``callback``) go to the solver.
    """
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}, choose from {', '.join(SOLVERS)}")
    if solver == "ddim":
        return ddim_sample(denoise, cond, generators, shape, n_steps=n_steps, eta=eta, **kwargs)
    if is_stochastic(eta) or kwargs.pop("eta_channels", None) is not None:
        raise ValueError(f"eta applies to the ddim solver only, got eta={eta} with {solver!r}")
    return SOLVERS[solver](denoise, cond, generators, shape, n_steps=n_steps, **kwargs)
