"""numpy's SeedSequence for many events at once (``model.seed_streams``) against numpy's own."""

import numpy as np
import pytest

from ctapipe_genshower.generator import _event_streams
from ctapipe_genshower.model import seed_streams

SEEDS = np.concatenate(
    [
        [0, 1, 5, 2**32 - 1, 2**32, 2**63 - 1],  # one and two 32-bit words
        np.random.default_rng(0).integers(0, 2**63, 200),
        np.random.default_rng(1).integers(0, 2**32, 50),
    ]
)


@pytest.mark.parametrize("key", [(0,), (3,), (2, 7, 1), (2, 2**32 - 1, 3)])
def test_pools_and_states_are_numpys(key):
    words = seed_streams.entropy_words(SEEDS, 0x5E1EC7, key)
    pools = seed_streams.pools(words)
    states = seed_streams.generate_state(pools, 4)
    for seed, pool, state in zip(SEEDS.tolist(), pools, states, strict=True):
        ss = np.random.SeedSequence([seed, 0x5E1EC7], spawn_key=key)
        np.testing.assert_array_equal(pool, ss.pool)
        np.testing.assert_array_equal(state, ss.generate_state(4, np.uint64))


def test_generators_are_in_default_rngs_state():
    key = (2, 3, 0)
    pools = seed_streams.pools(seed_streams.entropy_words(SEEDS, 7, key))
    for seed, rng in zip(SEEDS.tolist(), seed_streams.pcg64_generators(pools), strict=True):
        reference = np.random.default_rng(np.random.SeedSequence([seed, 7], spawn_key=key))
        assert rng.bit_generator.state == reference.bit_generator.state
        assert rng.standard_normal() == reference.standard_normal()


def _event_streams_one_by_one(seeds, draw=0):
    """The generator's streams as numpy makes them, one event at a time (the definition)."""
    spawn_key = () if draw == 0 else (2, int(draw))
    rows = []
    for seed in np.asarray(seeds).tolist():
        ss = np.random.SeedSequence([int(seed), 0x5E1EC7], spawn_key=spawn_key)
        size_ss, image_ss, response_ss, accept_ss = ss.spawn(4)
        rng = np.random.default_rng(size_ss)
        uniform, normal = rng.uniform(), rng.standard_normal()
        image_seed = int(image_ss.generate_state(1, np.uint64)[0] >> np.uint64(1))
        response_seed = int(response_ss.generate_state(1, np.uint64)[0] >> np.uint64(1))
        accept, reservoir = np.random.default_rng(accept_ss).uniform(size=2)
        rows.append((uniform, normal, image_seed, response_seed, accept, reservoir))
    return [np.array(column) for column in zip(*rows, strict=True)]


@pytest.mark.parametrize("draw", [0, 1, 37])
def test_event_streams_are_bit_identical_to_numpys(draw):
    fast = _event_streams(SEEDS, draw)
    for got, expected in zip(fast, _event_streams_one_by_one(SEEDS, draw), strict=True):
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)


def test_bad_entropy_is_refused():
    with pytest.raises(ValueError, match="spawn key"):
        seed_streams.entropy_words([1], 7, ())
    with pytest.raises(ValueError, match="spawn key"):
        seed_streams.entropy_words([1], 7, (2**32,))
