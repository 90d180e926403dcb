"""The second-order solvers (DPM-Solver++ 2M, EDM Heun) against the exact Gaussian flow."""

import math

import pytest
import torch
from test_model_diffusion import _gaussian_denoiser

from ctapipe_genshower.model.config import SOLVER_NAMES
from ctapipe_genshower.model.samplers import (
    SOLVERS,
    ddim_sample,
    edm_noise_levels,
    event_generators,
    event_noise,
    network_evaluations,
    sample,
    time_noise_levels,
)

N, MEAN, STD = 2000, 1.5, 0.3


def _error(solver, n_steps, **kwargs):
    """Largest distance to the exact probability-flow map ``eps -> mean + std eps``."""
    exact = MEAN + STD * event_noise(event_generators(range(N)), (1,))
    x = sample(
        solver,
        _gaussian_denoiser(MEAN, STD),
        torch.zeros(N, 1),
        event_generators(range(N)),
        (1,),
        n_steps,
        **kwargs,
    )
    return float((x.double() - exact).abs().max())


@pytest.mark.parametrize("schedule", ["time", "karras"])
@pytest.mark.parametrize("solver", ["dpmpp-2m", "heun"])
def test_second_order_solvers_converge_to_the_exact_flow(solver, schedule):
    errors = [_error(solver, k, schedule=schedule) for k in (8, 16, 32)]
    assert errors[0] > errors[1] > errors[2]
    # started at s_max = 80, not at infinite noise: a floor of ~ MEAN * STD / 80 remains
    assert errors[2] < 0.03
    # at 32 network calls both are closer to the flow than DDIM's 32 steps
    assert errors[2] < 0.5 * _error("ddim", 32)


def test_network_evaluations_are_counted():
    for solver in SOLVER_NAMES:
        calls = []
        base = _gaussian_denoiser(MEAN, STD)

        def counting(x_t, t, cond, base=base, calls=calls):
            calls.append(len(t))
            return base(x_t, t, cond)

        sample(solver, counting, torch.zeros(3, 1), event_generators(range(3)), (1,), 5)
        assert len(calls) == network_evaluations(solver, 5)
    assert network_evaluations("heun", 5) == 9 and network_evaluations("dpmpp-2m", 5) == 5


@pytest.mark.parametrize("solver", ["dpmpp-2m", "heun"])
def test_per_event_seeds_and_mask(solver):
    mask = torch.zeros(1, 1, 2, 3)
    mask[..., 1, :] = 1
    seeds = [3, 1, 4, 1, 5]
    denoise = _gaussian_denoiser(0.5, 0.2)
    kw = dict(n_steps=4, mask=mask)
    a = sample(solver, denoise, torch.zeros(5, 1), event_generators(seeds), (1, 2, 3), **kw)
    b = sample(solver, denoise, torch.zeros(2, 1), event_generators(seeds[2:4]), (1, 2, 3), **kw)
    torch.testing.assert_close(a[2:4], b)
    torch.testing.assert_close(a[1], a[3])
    assert not torch.allclose(a[0], a[2])
    assert float((a * (1 - mask)).abs().sum()) == 0


def test_noise_levels_and_errors():
    levels = edm_noise_levels(4)
    assert levels.dtype == torch.float64 and len(levels) == 5
    assert float(levels[0]) == 80 and float(levels[-2]) == pytest.approx(0.002)
    assert float(levels[-1]) == 0 and bool((levels[:-1] > levels[1:]).all())
    # rho = 7: uniform in s ** (1/7)
    roots = levels[:-1] ** (1 / 7)
    torch.testing.assert_close(roots[1:] - roots[:-1], (roots[1] - roots[0]).expand(3))
    times = time_noise_levels(4)
    assert float(times[0]) == pytest.approx(80) and float(times[-1]) == 0
    t = 2 / math.pi * torch.atan(times)
    torch.testing.assert_close(t[:-1] - t[1:], (t[0] - t[1]).expand(4))
    assert tuple(SOLVERS) == SOLVER_NAMES
    denoise = _gaussian_denoiser(0.5, 0.2)
    with pytest.raises(ValueError, match="unknown solver 'euler'"):
        sample("euler", denoise, torch.zeros(1, 1), event_generators([0]), (1,), 2)
    with pytest.raises(ValueError, match="eta applies to the ddim solver only"):
        sample("heun", denoise, torch.zeros(1, 1), event_generators([0]), (1,), 2, eta=1.0)
    with pytest.raises(ValueError, match="n_steps"):
        edm_noise_levels(0)
    with pytest.raises(ValueError, match="unknown schedule 'linear'"):
        sample(
            "heun", denoise, torch.zeros(1, 1), event_generators([0]), (1,), 2, schedule="linear"
        )
    assert math.isclose(float(edm_noise_levels(1)[0]), 80.0)


def test_ddim_eta_per_step_and_per_channel_keeps_the_data_distribution():
    """A per-step eta on one channel (what a stochastic student samples with): with the exact
    denoiser and fine steps every channel still ends as the data; the other channel follows
    the deterministic flow exactly; a number is the same as that number at every step."""
    n, steps = 4000, 100
    denoise = _gaussian_denoiser(MEAN, STD)

    def run(**kwargs):
        gens = event_generators(range(n))
        return ddim_sample(denoise, torch.zeros(n, 1), gens, (2, 1), n_steps=steps, **kwargs)

    deterministic = run()
    mixed = run(eta=[1] * 60, eta_channels=[0])
    for channel in (0, 1):
        x = mixed[:, channel, 0].double()
        assert float(x.mean()) == pytest.approx(MEAN, abs=4 * STD / math.sqrt(n))
        assert float(x.std()) == pytest.approx(STD, rel=0.05)
    assert torch.equal(mixed[:, 1], deterministic[:, 1])  # no fresh noise there
    assert float((mixed[:, 0] - deterministic[:, 0]).abs().max()) > 0.1 * STD
    assert torch.equal(run(eta=0.7), run(eta=[0.7] * steps))
    assert torch.equal(run(eta=[0, 0]), deterministic)  # steps beyond the list: 0
    with pytest.raises(ValueError, match="eta must be finite and >= 0"):
        run(eta=[1, -1])
    with pytest.raises(ValueError, match="eta applies to the ddim solver only"):
        sample("heun", denoise, torch.zeros(1, 1), event_generators([0]), (2, 1), 2, eta=[1])
    with pytest.raises(ValueError, match="eta applies to the ddim solver only"):
        sample(
            "dpmpp-2m",
            denoise,
            torch.zeros(1, 1),
            event_generators([0]),
            (2, 1),
            2,
            eta_channels=[0],
        )
