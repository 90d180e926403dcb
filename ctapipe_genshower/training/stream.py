"""Endless training batches of one rank's shard, positioned by the global step.

Each epoch visits the shard in a shuffled chunk order, shuffled within each chunk, both
drawn from ``default_rng([seed, rank, epoch])``. Because the position in that order follows
from the step alone, a resumed run needs no data-loader state to continue bit-for-bit.
"""

import math

import numpy as np
import torch

from ..model.transforms import encode_images
from .dataset import read_checked

__all__ = ["BatchStream", "encode_batch"]

_ARRAYS = ("image", "peak_time", "conditions")


def encode_batch(batch, transforms):
    """A batch read from a dataset -> ``(x, conditions, size)`` (see :class:`BatchStream`).

    A model with night-sky times learns a filler time in the night-sky pixels
    (:meth:`~ctapipe_genshower.model.night_sky_times.NightSkyTimes.training_times`)."""
    image, peak_time = batch["image"], batch["peak_time"]
    if "night_sky" in transforms:
        peak_time = transforms["night_sky"].training_times(
            image, peak_time, transforms["grid"].positions()
        )
    size = transforms["image"].size(image)
    x = encode_images(transforms, image, peak_time, size)
    return x, torch.as_tensor(np.asarray(batch["conditions"])), size


class BatchStream:
    """Batches ``(x, conditions, size)`` of events ``lo..hi`` of a dataset.

    ``x`` ``(B, 2, Hp, Wp)`` is in network space on the grid; ``conditions`` ``(B, 5)`` and
    ``size`` ``(B,)`` (p.e.) are what the pixel condition is built from
    (:meth:`~ctapipe_genshower.model.denoiser.Denoiser.condition`).

    Parameters
    ----------
    dataset
        A training dataset (see :mod:`.dataset`).
    lo, hi : int
        This rank's shard.
    transforms : dict
        The fitted transforms.
    batch_size, chunk_size : int
        Events per batch and per read.
    seed, rank : int
        Seed of the shuffling; the rank keeps shards' orders independent.
    """

    def __init__(self, dataset, lo, hi, transforms, batch_size, chunk_size, seed, rank):
        self.dataset, self.lo, self.hi, self.transforms = dataset, lo, hi, transforms
        self.batch_size, self.chunk_size, self.seed, self.rank = batch_size, chunk_size, seed, rank
        self.n = hi - lo
        self.batches_per_epoch = self.n // batch_size
        if self.batches_per_epoch < 1:
            raise ValueError(
                f"rank {rank} has {self.n} training events, fewer than one batch of {batch_size}"
            )
        self.n_chunks = math.ceil(self.n / chunk_size)

    def epoch_of(self, step):
        """Epoch (0-based) that optimizer step ``step`` (0-based) belongs to."""
        return step // self.batches_per_epoch

    def batches(self, start_step):
        """Batches from step ``start_step`` on, forever (the caller stops)."""
        epoch, skip_batches = divmod(start_step, self.batches_per_epoch)
        while True:
            yield from self._epoch(epoch, skip_batches * self.batch_size)
            epoch, skip_batches = epoch + 1, 0

    def _epoch(self, epoch, skip):
        rng = np.random.default_rng([self.seed, self.rank, epoch])
        order = rng.permutation(self.n_chunks)
        buffer, n_buffer, n_yield = [], 0, 0
        for c in order:
            start = self.lo + int(c) * self.chunk_size
            stop = min(start + self.chunk_size, self.hi)
            # drawn even for skipped chunks: the generator state must not depend on `skip`
            perm = rng.permutation(stop - start)
            if skip >= stop - start:
                skip -= stop - start
                continue
            batch = read_checked(self.dataset, start, stop)
            shuffled = {k: np.asarray(batch[k])[perm[skip:]] for k in _ARRAYS}
            buffer.append(encode_batch(shuffled, self.transforms))
            n_buffer += len(buffer[-1][0])
            skip = 0
            while n_buffer >= self.batch_size and n_yield < self.batches_per_epoch:
                joined = [torch.cat([b[i] for b in buffer]) for i in range(3)]
                yield tuple(a[: self.batch_size] for a in joined)
                n_yield += 1
                buffer = [tuple(a[self.batch_size :] for a in joined)]
                n_buffer = len(joined[0]) - self.batch_size
