"""Per-event noise streams drawn in one batch on the sampling device.

The samplers' default streams are one CPU ``torch.Generator`` per event
(:func:`.samplers.event_generators`): exact, but drawn event by event on the CPU, which
caps a GPU at a few thousand images/s (``docs/sampling.md``). :class:`CounterStreams` gives
each event its own stream too, as a counter-based generator: the ``c``-th number of the
event with seed ``k`` is SplitMix64's output for the state ``mix(k) + (c + 1) * golden``
(Steele et al. 2014, the generator behind Java's ``SplittableRandom``), so every number is
a pure function of ``(seed, counter)`` and a whole batch is a few integer tensor operations
on the device. An event's noise still depends only on its seed, not on its batch.

Integer arithmetic is exact on every device; the Box-Muller transform to normal numbers
uses float64 ``log``/``cos``/``sin``, which CPU and GPU libraries may round differently in
the last bit.
"""

import math

import torch

__all__ = ["CounterStreams", "splitmix64"]


def _signed(value):
    """A 64-bit constant as the int64 with the same bits."""
    return value - (1 << 64) if value >= 1 << 63 else value


_GOLDEN = _signed(0x9E3779B97F4A7C15)
_MIX1 = _signed(0xBF58476D1CE4E5B9)
_MIX2 = _signed(0x94D049BB133111EB)
#: Counter values per draw: a draw of up to 2**40 numbers per event.
_DRAW_STRIDE = 1 << 40


def _shift_right(x, k):
    """Logical right shift of int64 bits (torch's ``>>`` is arithmetic)."""
    return (x >> k) & ((1 << (64 - k)) - 1)


def splitmix64(z):
    """SplitMix64's output function on int64 tensors (bits as uint64, wrapping arithmetic)."""
    z = (z ^ _shift_right(z, 30)) * _MIX1
    z = (z ^ _shift_right(z, 27)) * _MIX2
    return z ^ _shift_right(z, 31)


class CounterStreams:
    """One counter-based standard normal stream per event, drawn in batches on ``device``.

    A drop-in for the list of generators the samplers take (:func:`.samplers.event_noise`
    draws from it); each :meth:`normal` call is the next draw of every event's stream.

    Parameters
    ----------
    seeds : sequence of int
        One seed per event, integers in ``[0, 2**63)``.
    device : str or torch.device
        Where the numbers are made.
    """

    def __init__(self, seeds, device="cpu"):
        seeds = [int(s) for s in seeds]
        for seed in seeds:
            if not 0 <= seed < 2**63:
                raise ValueError(f"seeds must be integers in [0, 2**63), got {seed}")
        self.device = torch.device(device)
        self._keys = splitmix64(torch.tensor(seeds, dtype=torch.int64, device=self.device))
        self._draws = 0

    def __len__(self):
        return len(self._keys)

    def _uniform(self, n):
        """``(N, n)`` float64 uniform numbers in ``[0, 1)`` of the current draw."""
        start = self._draws * _DRAW_STRIDE + 1
        counter = torch.arange(start, start + n, dtype=torch.int64, device=self.device)
        state = self._keys[:, None] + counter[None, :] * _GOLDEN
        return _shift_right(splitmix64(state), 11).to(torch.float64) * 2.0**-53

    def normal(self, shape):
        """Standard normal numbers ``(N, *shape)`` float64: the next draw of every stream."""
        n = math.prod(shape)
        if n >= _DRAW_STRIDE:
            raise ValueError(f"a draw holds at most {_DRAW_STRIDE - 1} numbers per event")
        pairs = -(-n // 2)
        u = self._uniform(2 * pairs)
        # Box-Muller: 1 - u is in (0, 1], so the logarithm is finite
        radius = torch.sqrt(-2.0 * torch.log1p(-u[:, :pairs]))
        angle = (2.0 * math.pi) * u[:, pairs:]
        z = torch.cat([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)
        self._draws += 1
        return z[:, :n].reshape(len(self), *shape)
