"""numpy's ``SeedSequence`` for many events at once, bit-identical to numpy's own.

The generator derives each event's random streams from ``SeedSequence([seed, tag],
spawn_key=key)`` and its spawned children. Made one event at a time in Python this cost
~50 us per event draw, half the time of ``ShowerGenerator.generate`` on a GPU
(``runs/2026-12-05_gpu_generate/``). Here the hashing of numpy's algorithm (O'Neill's
``seed_seq`` variant in ``numpy/random/bit_generator.pyx``: a pool of four 32-bit words
mixed from the entropy, then hashed into the output words) runs on arrays of events in
unsigned 32-bit arithmetic, and a ``PCG64`` generator is set to each event's state instead of
being built from a new ``SeedSequence``. The numbers are the same; only their cost changes.

Entropy here is what the generator uses: one non-negative integer below ``2**64`` (one or
two 32-bit words) and a tag below ``2**32``; spawn keys of integers below ``2**32``.
"""

import numpy as np

__all__ = ["entropy_words", "generate_state", "pcg64_generators", "pools"]

_INIT_A = 0x43B0D7E5
_MULT_A = 0x931E8875
_INIT_B = 0x8B51F9DD
_MULT_B = 0x58F38DED
_MIX_MULT_L = np.uint32(0xCA01F9DD)
_MIX_MULT_R = np.uint32(0x4973F715)
_XSHIFT = np.uint32(16)
_POOL_SIZE = 4
_MASK32 = 0xFFFFFFFF
_MASK128 = (1 << 128) - 1
#: PCG64's default 128-bit multiplier.
_PCG_MULT = 0x2360ED051FC65DA44385DF649FCCF645


def entropy_words(seeds, tag, spawn_key):
    """The assembled entropy of ``SeedSequence([seed, tag], spawn_key=spawn_key)`` per seed.

    Parameters
    ----------
    seeds : array-like of int
        ``(N,)`` non-negative integers below ``2**64``.
    tag : int
        Second entropy word, below ``2**32``.
    spawn_key : tuple of int
        Non-empty; each below ``2**32``.

    Returns
    -------
    numpy.ndarray
        ``(N, 4 + len(spawn_key))`` uint32: the entropy words, zero-padded to the pool size
        (numpy pads when there is a spawn key), then the spawn key.
    """
    seeds = np.asarray(seeds, dtype=np.uint64)
    if not spawn_key or not all(0 <= k <= _MASK32 for k in spawn_key) or not 0 <= tag <= _MASK32:
        raise ValueError("need a non-empty spawn key and a tag of 32-bit words")
    low = (seeds & np.uint64(_MASK32)).astype(np.uint32)
    high = (seeds >> np.uint64(32)).astype(np.uint32)
    two_words = high > 0  # numpy writes an integer in as many 32-bit words as it needs
    words = np.zeros((len(seeds), _POOL_SIZE + len(spawn_key)), dtype=np.uint32)
    words[:, 0] = low
    words[:, 1] = np.where(two_words, high, np.uint32(tag))
    words[:, 2] = np.where(two_words, np.uint32(tag), np.uint32(0))
    words[:, _POOL_SIZE:] = np.asarray(spawn_key, dtype=np.uint32)
    return words


class _Hash:
    """numpy's multiplicative hash with its running constant (shared by all rows)."""

    def __init__(self, init, mult):
        self.const, self.mult = init, mult

    def __call__(self, value):
        value = value ^ np.uint32(self.const)
        self.const = (self.const * self.mult) & _MASK32
        value = value * np.uint32(self.const)
        return value ^ (value >> _XSHIFT)


def _mix(x, y):
    result = _MIX_MULT_L * x - _MIX_MULT_R * y
    return result ^ (result >> _XSHIFT)


def pools(words):
    """``SeedSequence.pool`` of each row of entropy words, ``(N, 4)`` uint32."""
    words = np.asarray(words, dtype=np.uint32)
    n, length = words.shape
    hashmix = _Hash(_INIT_A, _MULT_A)
    with np.errstate(over="ignore"):
        mixer = np.empty((n, _POOL_SIZE), dtype=np.uint32)
        for i in range(_POOL_SIZE):
            mixer[:, i] = hashmix(words[:, i] if i < length else np.zeros(n, np.uint32))
        for src in range(_POOL_SIZE):
            for dst in range(_POOL_SIZE):
                if src != dst:
                    mixer[:, dst] = _mix(mixer[:, dst], hashmix(mixer[:, src]))
        for src in range(_POOL_SIZE, length):
            for dst in range(_POOL_SIZE):
                mixer[:, dst] = _mix(mixer[:, dst], hashmix(words[:, src]))
    return mixer


def generate_state(pool, n_words):
    """``SeedSequence.generate_state(n_words, np.uint64)`` of each pool, ``(N, n_words)``."""
    hashmix = _Hash(_INIT_B, _MULT_B)
    out = np.empty((len(pool), 2 * n_words), dtype=np.uint32)
    with np.errstate(over="ignore"):
        for i in range(2 * n_words):
            out[:, i] = hashmix(pool[:, i % _POOL_SIZE])
    low, high = out[:, 0::2].astype(np.uint64), out[:, 1::2].astype(np.uint64)
    return low | (high << np.uint64(32))


def pcg64_generators(pool):
    """Yield, per pool, one ``numpy.random.Generator`` in the state of
    ``default_rng(SeedSequence with that pool)`` (the same object, re-set each time)."""
    words = generate_state(pool, 4).tolist()
    generator = np.random.Generator(np.random.PCG64())
    state = {"bit_generator": "PCG64", "state": {}, "has_uint32": 0, "uinteger": 0}
    for w0, w1, w2, w3 in words:
        # pcg64_set_seed: state 0, increment 2 * initseq + 1, step, add initstate, step
        inc = ((((w2 << 64) | w3) << 1) | 1) & _MASK128
        value = ((inc + ((w0 << 64) | w1)) * _PCG_MULT + inc) & _MASK128
        state["state"] = {"state": value, "inc": inc}
        generator.bit_generator.state = state
        yield generator
