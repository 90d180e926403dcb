"""Counter-based per-event noise streams (model/noise.py)."""

import numpy as np
import pytest
import torch
from scipy import stats

from ctapipe_genshower.model.noise import CounterStreams
from ctapipe_genshower.model.samplers import ddim_sample, event_noise

MASK64 = (1 << 64) - 1


def reference_splitmix64(seed, n):
    """SplitMix64 (Steele et al. 2014) in Python integers: the first n outputs for a state
    seeded with the mixed seed, as CounterStreams defines its streams."""

    def mix(z):
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9 & MASK64
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB & MASK64
        return z ^ (z >> 31)

    state = mix(seed)
    out = []
    for _ in range(n):
        state = (state + 0x9E3779B97F4A7C15) & MASK64
        out.append(mix(state))
    return out


@pytest.mark.parametrize("seed", [0, 1, 12345, 2**63 - 1])
def test_streams_are_splitmix64(seed):
    streams = CounterStreams([seed])
    uniform = streams._uniform(6)[0].numpy()
    expected = np.array([(z >> 11) * 2.0**-53 for z in reference_splitmix64(seed, 6)])
    np.testing.assert_array_equal(uniform, expected)


def test_an_events_noise_depends_on_its_seed_only():
    batch = CounterStreams([7, 8, 9])
    alone = CounterStreams([9])
    first, again = batch.normal((2, 3, 5)), alone.normal((2, 3, 5))
    assert first.shape == (3, 2, 3, 5) and first.dtype == torch.float64
    torch.testing.assert_close(first[2], again[0], rtol=0, atol=0)
    assert not torch.equal(first[0], first[1])
    # the next draw continues each stream with new numbers
    second = batch.normal((2, 3, 5))
    assert not torch.equal(second, first)
    torch.testing.assert_close(second[2], alone.normal((2, 3, 5))[0], rtol=0, atol=0)


def test_streams_are_standard_normal_and_uncorrelated():
    z = CounterStreams(range(400)).normal((501,)).numpy()
    assert stats.kstest(z.ravel(), "norm").pvalue > 1e-3
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    # neighbouring seeds and neighbouring numbers are independent
    assert abs(np.corrcoef(z[:-1].ravel(), z[1:].ravel())[0, 1]) < 0.01
    assert abs(np.corrcoef(z[:, :-1].ravel(), z[:, 1:].ravel())[0, 1]) < 0.01


def test_bad_seeds_are_refused():
    with pytest.raises(ValueError, match="seeds must be integers"):
        CounterStreams([-1])
    with pytest.raises(ValueError, match="seeds must be integers"):
        CounterStreams([2**63])


def test_samplers_take_counter_streams():
    cond = torch.zeros(3, 2)
    shape = (1, 4, 4)

    def denoise(x, t, c):
        return 0.5 * x

    noise = event_noise(CounterStreams([4, 5, 6]), shape)
    torch.testing.assert_close(noise, CounterStreams([4, 5, 6]).normal(shape))
    both = ddim_sample(denoise, cond, CounterStreams([4, 5, 6]), shape, n_steps=3)
    one = ddim_sample(denoise, cond[:1], CounterStreams([6]), shape, n_steps=3)
    torch.testing.assert_close(both[2:], one, rtol=0, atol=0)
