"""The learned selection probability against the toy simulator's true trigger efficiency."""

import astropy.units as u
import numpy as np
import torch

from ctapipe_genshower.instrument import single_telescope_subarray
from ctapipe_genshower.model.shower_model import ShowerModel, ThrownSampler
from ctapipe_genshower.model.transforms import ConditionTransform
from ctapipe_genshower.thrown import ThrownDistribution
from ctapipe_genshower.toymc.simulator import ToyShowerSimulator
from ctapipe_genshower.training.shower_fit import fit_shower_model

THROWN = ThrownDistribution(
    energy_min=0.2 * u.TeV,
    energy_max=20 * u.TeV,
    spectral_index=-1.5,
    max_scatter_radius=500 * u.m,
    pointing_alt=70 * u.deg,
    pointing_az=0 * u.deg,
)


def _simulate(n, seed, chunk=10_000):
    """Throw ``n`` toy protons; return their conditions and whether they triggered."""
    simulator = ToyShowerSimulator(single_telescope_subarray())
    rng = np.random.default_rng(seed)
    conditions, triggered = [], []
    for start in range(0, n, chunk):
        showers = THROWN.sample(min(chunk, n - start), rng)
        result = simulator.simulate(
            showers, rng, "proton", (THROWN.pointing_alt, THROWN.pointing_az)
        )
        conditions.append(
            np.stack(
                [
                    np.log10(showers["true_energy"].to_value(u.TeV)),
                    showers["true_core_x"].to_value(u.m),
                    showers["true_core_y"].to_value(u.m),
                    showers["true_source_fov_lon"].to_value(u.deg),
                    showers["true_source_fov_lat"].to_value(u.deg),
                ],
                axis=-1,
            )
        )
        triggered.append(result.triggered)
    return np.concatenate(conditions).astype(np.float32), np.concatenate(triggered)


def test_learned_efficiency_matches_toy_trigger_efficiency():
    # training: only the triggered showers are "in the file", plus the thrown count
    cond, triggered = _simulate(100_000, seed=1)
    selected = cond[triggered]
    n_thrown = len(cond)
    assert 1000 < len(selected) < n_thrown

    sampler = ThrownSampler.from_dict(THROWN.to_dict())
    ctf = ConditionTransform().fit(selected, np.full(len(selected), 100.0))
    model = ShowerModel(hidden=32, depth=2, n_components=1)
    torch.manual_seed(0)
    fit_shower_model(
        model,
        ctf.features(selected),
        torch.zeros(len(selected)),
        sampler,
        ctf,
        selected_fraction=len(selected) / n_thrown,
        steps=500,
        batch_size=2048,
        learning_rate=5e-3,
        calibration_events=100_000,
        seed=0,
    )

    # truth: an independent toy sample, efficiency = triggered / thrown per energy bin
    test_cond, test_triggered = _simulate(50_000, seed=2)
    p = model.selection_probability(ctf.features(test_cond), test_cond[:, 0], sampler)
    assert np.all((p >= 0) & (p <= 1))

    bins = np.linspace(np.log10(0.2), np.log10(20), 6)
    idx = np.digitize(test_cond[:, 0], bins) - 1
    n_train_sel = np.histogram(selected[:, 0], bins)[0]
    truths = []
    for b in range(len(bins) - 1):
        in_bin = idx == b
        truth = test_triggered[in_bin].mean()
        learned = p[in_bin].mean()
        truths.append(truth)
        # binomial error of the test sample plus the training sample's relative 1/sqrt(N)
        sigma = np.hypot(
            np.sqrt(truth * (1 - truth) / in_bin.sum()), truth / np.sqrt(max(n_train_sel[b], 1))
        )
        assert abs(learned - truth) < 4 * sigma + 0.005, (b, learned, truth, sigma)
    # the toy's efficiency rises with energy, so this is not a flat-efficiency coincidence
    assert truths[-1] > 3 * truths[0]
