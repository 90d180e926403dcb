"""Distillation: the teacher's solver, the student's target and loss, distilled configs."""

import json
from dataclasses import replace

import pytest
import torch

from ctapipe_genshower.model.config import PRESETS, ModelConfig
from ctapipe_genshower.model.diffusion import alpha_sigma, predict_x0_eps
from ctapipe_genshower.model.distillation import distillation_loss, student_target, teacher_solve

MEAN, WIDTH = 0.7, 0.5


def _col(t):
    return t.double().reshape(-1, 1, 1, 1)


def gaussian_denoiser(x, t, cond):
    """The exact v-prediction of data ``N(MEAN, WIDTH**2)`` per pixel."""
    alpha, sigma = (_col(a) for a in alpha_sigma(t.double()))
    x = x.double()
    d = MEAN + alpha * WIDTH**2 / (alpha**2 * WIDTH**2 + sigma**2) * (x - alpha * MEAN)
    return ((alpha * x - d) / sigma).float()


def exact_flow(z, t, t_next):
    """The probability-flow ODE of the Gaussian conserves the standardised value."""
    alpha, sigma = (_col(a) for a in alpha_sigma(t.double()))
    alpha_n, sigma_n = (_col(a) for a in alpha_sigma(t_next.double()))
    u = (z - alpha * MEAN) / torch.sqrt(alpha**2 * WIDTH**2 + sigma**2)
    return alpha_n * MEAN + u * torch.sqrt(alpha_n**2 * WIDTH**2 + sigma_n**2)


@pytest.mark.parametrize("start,end", [(1.0, 0.75), (0.75, 0.5), (0.5, 0.25)])
def test_teacher_solver_converges_at_second_order(start, end):
    z = torch.randn(6, 2, 3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    t, t_next = torch.full((6,), start), torch.full((6,), end)
    exact = exact_flow(z, t, t_next)
    errors = [
        float((teacher_solve(gaussian_denoiser, z, t, t_next, None, k) - exact).abs().max())
        for k in (2, 4, 8)
    ]
    # second order: halving the step cuts the error about 4 times (first order: 2 times)
    assert errors[1] < errors[0] / 2.8 and errors[2] < errors[1] / 2.8, errors
    assert errors[2] < 5e-3  # 1 % of the data width


def test_one_teacher_step_is_ddim_and_the_last_returns_the_denoised_estimate():
    z = torch.randn(4, 2, 3, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    t, t_next = torch.tensor([1.0, 0.8, 0.5, 0.3]), torch.tensor([0.6, 0.5, 0.2, 0.0])
    v = gaussian_denoiser(z, t, None).double()
    x0, eps = predict_x0_eps(z, v, _col(t).flatten())
    alpha_n, sigma_n = (_col(a) for a in alpha_sigma(t_next.double()))
    ddim = alpha_n * x0 + sigma_n * eps
    got = teacher_solve(gaussian_denoiser, z, t, t_next, None, 1)
    torch.testing.assert_close(got, ddim, rtol=1e-6, atol=1e-6)
    # per-sample times: the sample ending at t = 0 is the denoised estimate
    torch.testing.assert_close(got[3], x0[3], rtol=1e-6, atol=1e-6)


def test_first_order_sub_steps_are_ddim_steps():
    """A distilled teacher's sub-steps: consecutive DDIM steps."""
    z = torch.randn(3, 2, 3, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    t, middle, end = torch.full((3,), 1.0), torch.full((3,), 0.75), torch.full((3,), 0.5)
    two = teacher_solve(gaussian_denoiser, z, t, end, None, 2, second_order=False)
    first = teacher_solve(gaussian_denoiser, z, t, middle, None, 1)
    torch.testing.assert_close(two, teacher_solve(gaussian_denoiser, first, middle, end, None, 1))
    assert not torch.allclose(two, teacher_solve(gaussian_denoiser, z, t, end, None, 2))


def test_a_ddim_step_with_the_student_target_lands_on_the_teacher():
    g = torch.Generator().manual_seed(2)
    z = torch.randn(5, 2, 4, 4, generator=g, dtype=torch.float64)
    z_next = torch.randn(5, 2, 4, 4, generator=g, dtype=torch.float64)
    t = torch.tensor([1.0, 0.75, 0.5, 0.25, 0.9])
    t_next = torch.tensor([0.75, 0.5, 0.25, 0.0, 0.1])
    v = student_target(z, z_next, t, t_next)
    x0, eps = predict_x0_eps(z, v, t.double())
    alpha_n, sigma_n = (_col(a) for a in alpha_sigma(t_next.double()))
    torch.testing.assert_close(alpha_n * x0 + sigma_n * eps, z_next, rtol=1e-9, atol=1e-9)


def test_distillation_loss_is_zero_for_the_exact_solution_only():
    """A 'student' that makes the teacher's 4-step solution in one step has loss ~0; the
    teacher itself (one step of it is DDIM) does not."""
    mask = torch.ones(1, 1, 3, 3)
    x0 = MEAN + WIDTH * torch.randn(8, 2, 3, 3, generator=torch.Generator().manual_seed(3))
    step_index = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(4))
    grid = torch.linspace(1.0, 0.0, 5, dtype=torch.float64)

    def exact_student(x, t, cond):
        t_next = grid[step_index + 1]
        z_next = teacher_solve(gaussian_denoiser, x.double(), t.double(), t_next, None, 4)
        return student_target(x.double(), z_next, t.double(), t_next).float()

    common = dict(n_steps=4, substeps=4, step_index=step_index, eps=eps)
    exact = distillation_loss(exact_student, gaussian_denoiser, x0, None, mask, **common)
    teacher = distillation_loss(gaussian_denoiser, gaussian_denoiser, x0, None, mask, **common)
    assert float(exact) < 1e-8
    assert float(teacher) > 1e-3


def test_distilled_config_samples_only_as_trained():
    student = PRESETS["tiny"].distilled(2)
    assert student.default_n_steps == 2 and student.distilled_steps == 2
    assert student.network_dict() == PRESETS["tiny"].network_dict()
    student.check_sampling("ddim", 2)
    PRESETS["tiny"].check_sampling("heun", 7)
    with pytest.raises(ValueError, match="distilled for the ddim solver at 2 steps"):
        student.check_sampling("ddim", 4)
    with pytest.raises(ValueError, match="distilled for the ddim solver at 2 steps"):
        student.check_sampling("dpmpp-2m", 2)
    with pytest.raises(ValueError, match="must default to them"):
        type(student)(**{**vars(student), "default_n_steps": 20})


def test_a_student_records_a_stochastic_sampler_and_samples_only_with_it_or_eta_0():
    student = replace(PRESETS["tiny"].distilled(4), default_eta=(1, 1, 0), eta_channels=(0,))
    assert student.sampler_eta == ((1.0, 1.0, 0.0), (0,))
    assert PRESETS["tiny"].distilled(4).sampler_eta == (0.0, None)
    student.check_sampling("ddim", 4, (1, 1, 0), (0,))
    student.check_sampling("ddim", 4, [1, 1, 0, 0], [0])  # trailing steps at 0
    student.check_sampling("ddim", 4, 0.0)  # what it was distilled for
    for eta, channels in (((1, 1, 0), None), (1.0, None), ((1, 0, 0), (0,))):
        with pytest.raises(ValueError, match=r"eta 0 or eta \[1.0, 1.0, 0.0\]"):
            student.check_sampling("ddim", 4, eta, channels)
    # plain numbers in the file, read back; older files have none (deterministic)
    again = ModelConfig.from_dict(json.loads(json.dumps(student.to_dict())))
    assert again == student and again.network_dict() == PRESETS["tiny"].network_dict()
    old = student.to_dict()
    del old["default_eta"], old["eta_channels"]
    assert ModelConfig.from_dict(old).sampler_eta == (0.0, None)
    with pytest.raises(ValueError, match="eta_channels must be in"):
        replace(student, eta_channels=(2,))
    with pytest.raises(ValueError, match="default_eta must be finite"):
        replace(student, default_eta=(-1.0,))
