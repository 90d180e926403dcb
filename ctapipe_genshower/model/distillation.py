"""Distillation of the pixel model into a few-step student (pure functions).

A student network, initialised with the teacher's weights, learns to make in **one** DDIM
step from ``t`` to ``t_next`` (a grid of ``n_steps`` intervals uniform in ``t``) what the
teacher makes in ``substeps`` steps of DPM-Solver++(2M) over the same interval. This is
progressive distillation (Salimans & Ho 2022, arXiv 2202.00512) with a second-order teacher
and ``substeps`` teacher steps per student step, done in one round: a 4-step student of a
teacher at 4 x 4 = 16 network calls needs no intermediate 8-step student. A distilled
student can be the teacher of a further round (its DDIM grid must refine the new one, and
its sub-steps are DDIM steps, as it was trained for).

The student's target follows from the DDIM update
``z_next = alpha_next x0 + sigma_next (z - alpha x0) / sigma``: the ``x0`` that lands on the
teacher's ``z_next`` is

    x0~ = (z_next - (sigma_next / sigma) z) / (alpha_next - (sigma_next / sigma) alpha),

and the velocity the student must predict is ``v~ = (alpha z - x0~) / sigma``. The loss is the
masked v-MSE of training (SNR + 1 weighting of the ``x0`` error, as the paper's "truncated
SNR" weighting), at the student's grid times only, on training images noised to them.
"""

import torch

from .diffusion import alpha_sigma, masked_mse, predict_x0_eps
from .samplers import ddim_timesteps

__all__ = ["distillation_loss", "student_target", "teacher_solve"]


def _col(t):
    return t.reshape(-1, 1, 1, 1)


@torch.no_grad()
def teacher_solve(denoise, x_t, t, t_next, cond, substeps, mask=None, second_order=True):
    """DPM-Solver++(2M) (or DDIM) of the teacher from per-sample times ``t`` to ``t_next``.

    Parameters
    ----------
    denoise : callable
        The teacher, ``denoise(x_t, t, cond) -> v`` (float32).
    x_t : torch.Tensor
        ``(N, C, H, W)`` noisy samples at ``t``.
    t, t_next : torch.Tensor
        ``(N,)`` start and end times, ``t > t_next >= 0``.
    cond : torch.Tensor
        ``(N, D)`` conditions.
    substeps : int
        Solver steps (network calls), uniform in ``t``.
    mask : torch.Tensor, optional
        ``(1, 1, H, W)``; the state is zero outside it.
    second_order : bool
        False: DDIM sub-steps, for a teacher that is itself a distilled DDIM student
        (a further round of progressive distillation).

    Returns
    -------
    torch.Tensor
        ``(N, C, H, W)`` float64, the teacher's sample at ``t_next``.

    Notes
    -----
    In the log signal-to-noise ``lambda = log(alpha / sigma)`` one step is
    ``x' = (sigma' / sigma) x - alpha' expm1(-h) D`` with ``h = lambda' - lambda`` and the
    denoised estimate ``D`` extrapolated linearly from the previous step (Lu et al. 2022,
    arXiv 2211.01095). Steps that start at ``t = 1`` (no signal) or end at ``t = 0`` (no
    noise) have an infinite ``h`` and are first order: the first is DDIM's, the last returns
    the denoised estimate.
    """
    x = x_t.to(torch.float64)
    t, t_next = t.to(torch.float64), t_next.to(torch.float64)
    mask64 = None if mask is None else mask.to(torch.float64)
    fractions = torch.linspace(0.0, 1.0, int(substeps) + 1, dtype=torch.float64, device=x.device)
    previous, h_previous = None, None
    for i in range(int(substeps)):
        s = t + (t_next - t) * fractions[i]
        s_next = t + (t_next - t) * fractions[i + 1]
        v = denoise(x.float(), s.float(), cond).to(torch.float64)
        d, _ = predict_x0_eps(x, v, s)
        alpha, sigma = alpha_sigma(s)
        alpha_next, sigma_next = alpha_sigma(s_next)
        h = (torch.log(alpha_next) - torch.log(sigma_next)) - (torch.log(alpha) - torch.log(sigma))
        d_hat = d
        if second_order and previous is not None:
            finite = torch.isfinite(h) & torch.isfinite(h_previous)
            half_inverse_r = torch.where(finite, 0.5 * h / h_previous, 0.0)
            d_hat = d + _col(half_inverse_r) * (d - previous)
        x = _col(sigma_next / sigma) * x - _col(alpha_next * torch.expm1(-h)) * d_hat
        if mask64 is not None:
            x = x * mask64
        previous, h_previous = d, h
    return x


def student_target(z, z_next, t, t_next):
    """The velocity whose DDIM step from ``(z, t)`` lands on ``z_next`` at ``t_next``.

    ``t > t_next`` per sample, ``t > 0``; returns float64 ``(N, C, H, W)``.
    """
    t, t_next = t.to(torch.float64), t_next.to(torch.float64)
    alpha, sigma = (_col(a) for a in alpha_sigma(t))
    alpha_next, sigma_next = (_col(a) for a in alpha_sigma(t_next))
    ratio = sigma_next / sigma
    x0 = (z_next - ratio * z) / (alpha_next - ratio * alpha)
    return (alpha * z - x0) / sigma


def distillation_loss(
    student,
    teacher,
    x0,
    cond,
    mask,
    n_steps,
    substeps,
    generator=None,
    channel_weights=None,
    step_index=None,
    eps=None,
    second_order=True,
):
    """Masked v-MSE of the student against the teacher's ``substeps``-step solution.

    Parameters
    ----------
    student, teacher : callable
        ``denoise(x_t, t, cond) -> v``; the teacher is evaluated without gradients.
    x0 : torch.Tensor
        Clean samples ``(N, C, H, W)`` in network space, zero outside the camera.
    cond : torch.Tensor
        ``(N, D)`` conditions.
    mask : torch.Tensor
        ``(1 or N, 1, H, W)``, one on real pixels.
    n_steps : int
        The student's DDIM steps (its grid: ``ddim_timesteps(n_steps)``).
    substeps : int
        Teacher solver steps per student step.
    generator : torch.Generator, optional
        Source of the grid steps and the noise.
    channel_weights : sequence of float, optional
        Weight of each channel in the mean.
    step_index, eps : torch.Tensor, optional
        Fixed grid steps ``(N,)`` (0 = the step from ``t = 1``) / noise, e.g. for a
        deterministic validation loss.
    second_order : bool
        The teacher's sub-steps: DPM-Solver++(2M), or DDIM (False) for a distilled teacher.

    Returns
    -------
    torch.Tensor
        Scalar loss.
    """
    n = x0.shape[0]
    grid = ddim_timesteps(n_steps).to(x0.device)
    if step_index is None:
        step_index = torch.randint(0, int(n_steps), (n,), device=x0.device, generator=generator)
    if eps is None:
        eps = torch.randn(x0.shape, device=x0.device, generator=generator)
    t, t_next = grid[step_index], grid[step_index + 1]
    alpha, sigma = (_col(a) for a in alpha_sigma(t))
    z = (alpha * x0.to(torch.float64) + sigma * (eps * mask).to(torch.float64)) * mask
    z_next = teacher_solve(teacher, z, t, t_next, cond, substeps, mask, second_order)
    target = student_target(z, z_next, t, t_next).float()
    pred = student(z.float(), t.float(), cond).float()
    return masked_mse(pred, target, mask, channel_weights)
