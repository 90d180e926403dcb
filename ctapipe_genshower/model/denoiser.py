"""The pixel model as the loss and the samplers see it: ``denoise(x_t, t, cond) -> v``.

:class:`Denoiser` binds a network to the camera's grid mask and owns the one way the pixel
condition (standardised shower features + standardised ``log10 size``) is built from the
shower conditions and the image size. Training (:mod:`ctapipe_genshower.training.loop`)
and generation (:mod:`ctapipe_genshower.generator`) both use it, so the two cannot drift
apart (k-diffusion's model wrappers play the same role).

With geometry channels (a ``"geometry"`` transform, :mod:`.geometry`) the condition vector
carries four more per-event numbers after the network's condition, from which
:meth:`Denoiser.__call__` builds the channels that are fed to the network next to ``x_t``;
samplers and the loss pass the vector through unchanged.
"""

import torch

from .diffusion import v_loss
from .samplers import sample
from .transforms import FEATURE_NAMES

__all__ = ["PIXEL_CONDITION_DIM", "Denoiser"]

#: Length of the network's condition vector: the shower features and ``log10 size``.
PIXEL_CONDITION_DIM = len(FEATURE_NAMES) + 1


class Denoiser:
    """A pixel network on the padded camera grid, callable as ``denoise(x_t, t, cond)``.

    Parameters
    ----------
    net : torch.nn.Module
        ``net(x_t, t, cond, mask) -> v`` (a ``UNet``, or the same wrapped in
        ``DistributedDataParallel``).
    transforms : dict
        ``{"grid", "image", "time", "conditions"}`` (see :mod:`.transforms`).
    device : str or torch.device
        Where the mask and the condition vectors live.
    channels_last : bool
        Convert ``net`` (in place) and its inputs to the channels-last memory format: the
        same arithmetic in another order, about 1.5x faster convolutions on the CPU
        (``benchmarks/bench_generator.py --variants``). Used for generation, not training.
    """

    def __init__(self, net, transforms, device="cpu", channels_last=False):
        self.channels_last = bool(channels_last)
        self.net = net.to(memory_format=torch.channels_last) if self.channels_last else net
        self.transforms = transforms
        self.device = torch.device(device)
        grid = transforms["grid"]
        self.mask = grid.mask(self.device)
        #: one sample: [charge, peak time] on the padded grid
        self.sample_shape = (2, *grid.padded_shape)
        self.geometry = transforms.get("geometry")
        if self.geometry is not None:
            self.pixel_positions = grid.to_grid(self.geometry.pixel_positions()).to(self.device)

    def condition(self, conditions, size):
        """Condition vectors ``(N, 8)`` (``(N, 12)`` with geometry channels) on :attr:`device`.

        Parameters
        ----------
        conditions : array-like, shape (N, 5)
            ``CONDITION_COLUMNS`` of each shower.
        size : array-like, shape (N,)
            Image sizes (p.e.).
        """
        cond = self.transforms["conditions"].pixel_condition(conditions, size)
        if self.geometry is not None:
            cond = torch.cat([cond, self.geometry.scalars(conditions)], dim=1)
        return cond.to(self.device)

    def __call__(self, x_t, t, cond):
        if self.geometry is not None:
            maps = self.geometry.maps(cond[:, PIXEL_CONDITION_DIM:], self.pixel_positions)
            x_t = torch.cat([x_t, (maps * self.mask).to(x_t.dtype)], dim=1)
            cond = cond[:, :PIXEL_CONDITION_DIM]
        if self.channels_last:
            x_t = x_t.contiguous(memory_format=torch.channels_last)
        return self.net(x_t, t, cond, self.mask)

    def loss(
        self,
        x0,
        cond,
        channel_weights=None,
        generator=None,
        t=None,
        eps=None,
        min_snr_gamma=None,
        pixel_weight=None,
        sample_weight=None,
        per_channel=False,
    ):
        """Masked v-prediction loss of one batch (see :func:`.diffusion.v_loss`)."""
        return v_loss(
            self,
            x0,
            cond,
            self.mask,
            generator=generator,
            channel_weights=channel_weights,
            t=t,
            eps=eps,
            min_snr_gamma=min_snr_gamma,
            pixel_weight=pixel_weight,
            sample_weight=sample_weight,
            per_channel=per_channel,
        )

    def sample(self, cond, generators, n_steps, eta=0.0, solver="ddim", eta_channels=None):
        """Samples ``(N, 2, Hp, Wp)`` from per-event generators (see :func:`.samplers.sample`)."""
        extra = {} if eta_channels is None else {"eta_channels": eta_channels}
        return sample(
            solver,
            self,
            cond,
            generators,
            self.sample_shape,
            n_steps=n_steps,
            eta=eta,
            mask=self.mask,
            device=self.device,
            **extra,
        )
