"""Neural networks (``nn.Module`` only; no schedules, losses or sampling loops here).

* :class:`UNet`: the pixel model. Input ``(N, 2, H, W)`` noisy [charge, peak time] on the
  padded camera grid plus the validity mask as a third channel; conditioned on the
  diffusion time (sinusoidal embedding) and a condition vector (shower features +
  log image size) through adaptive group norm (FiLM scale/shift after each GroupNorm).
  Self-attention at the levels listed in ``attention_levels`` (the low resolutions).
  Output ``(N, 2, H, W)``, zero outside the camera.
* :class:`MLP`: residual multilayer perceptron for the shower-level model.
* :class:`MeanOfNets`: the mean output of several networks of the same input (the refiner's
  ensemble of classifiers).

Their sizes (:class:`~.config.UNetConfig`, :class:`~.config.MLPConfig`) live in the
torch-free ``model/config.py``.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import MLPConfig, UNetConfig

__all__ = ["MLP", "MeanOfNets", "UNet", "timestep_embedding"]


def timestep_embedding(t, dim, max_period=10_000.0):
    """Sinusoidal embedding of diffusion times ``t`` in [0, 1] -> ``(N, dim)``."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


def _groups(channels, groups):
    g = min(groups, channels)
    while channels % g:
        g -= 1
    return g


class ResBlock(nn.Module):
    """GroupNorm-SiLU-Conv, adaptive GroupNorm (scale/shift from the embedding), SiLU-Conv."""

    def __init__(self, c_in, c_out, emb_dim, groups):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(c_in, groups), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * c_out)
        self.norm2 = nn.GroupNorm(_groups(c_out, groups), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(F.silu(h))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    """Multi-head self-attention over all grid cells of one image."""

    def __init__(self, channels, heads, groups):
        super().__init__()
        self.heads = heads if channels % heads == 0 else 1
        self.norm = nn.GroupNorm(_groups(channels, groups), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x):
        n, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(n, 3, self.heads, c // self.heads, h * w)
        q, k, v = (qkv[:, i].transpose(-1, -2) for i in range(3))
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(-1, -2).reshape(n, c, h, w)
        return x + self.proj(out)


class UNet(nn.Module):
    """Conditional U-Net: ``forward(x, t, cond, mask) -> (N, out_channels, H, W)``.

    Parameters of ``forward``: ``x`` ``(N, in_channels, H, W)`` with ``H, W`` multiples of
    ``config.pad_to``; ``t`` ``(N,)`` diffusion time in [0, 1]; ``cond`` ``(N, cond_dim)``;
    ``mask`` ``(1 or N, 1, H, W)`` one on real pixels.
    """

    def __init__(self, config=None):
        super().__init__()
        self.config = cfg = config or UNetConfig()
        emb = cfg.emb_dim
        self.time_mlp = nn.Sequential(nn.Linear(emb, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.cond_mlp = nn.Sequential(nn.Linear(cfg.cond_dim, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.emb_act = nn.SiLU()
        chans = [cfg.base_channels * m for m in cfg.channel_mult]
        self.stem = nn.Conv2d(cfg.in_channels + 1, chans[0], 3, padding=1)

        self.down = nn.ModuleList()
        skip_channels = [chans[0]]
        c = chans[0]
        for level, c_level in enumerate(chans):
            blocks = nn.ModuleList()
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResBlock(c, c_level, emb, cfg.groups))
                c = c_level
                skip_channels.append(c)
            attn = (
                AttentionBlock(c, cfg.attention_heads, cfg.groups)
                if level in cfg.attention_levels
                else None
            )
            downsample = nn.Conv2d(c, c, 3, stride=2, padding=1) if level < len(chans) - 1 else None
            if downsample is not None:
                skip_channels.append(c)
            self.down.append(
                nn.ModuleDict(
                    {
                        "blocks": blocks,
                        "attn": attn or nn.Identity(),
                        "down": downsample or nn.Identity(),
                    }
                )
            )

        self.mid1 = ResBlock(c, c, emb, cfg.groups)
        self.mid_attn = AttentionBlock(c, cfg.attention_heads, cfg.groups)
        self.mid2 = ResBlock(c, c, emb, cfg.groups)

        self.up = nn.ModuleList()
        for level in reversed(range(len(chans))):
            c_level = chans[level]
            blocks = nn.ModuleList()
            for _ in range(cfg.num_res_blocks + 1):
                blocks.append(ResBlock(c + skip_channels.pop(), c_level, emb, cfg.groups))
                c = c_level
            attn = (
                AttentionBlock(c, cfg.attention_heads, cfg.groups)
                if level in cfg.attention_levels
                else None
            )
            upsample = nn.Conv2d(c, c, 3, padding=1) if level > 0 else None
            self.up.append(
                nn.ModuleDict(
                    {
                        "blocks": blocks,
                        "attn": attn or nn.Identity(),
                        "up": upsample or nn.Identity(),
                    }
                )
            )
        self.out_norm = nn.GroupNorm(_groups(c, cfg.groups), c)
        self.out = nn.Conv2d(c, cfg.out_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x, t, cond, mask):
        cfg = self.config
        mask = mask.to(x.dtype)
        emb = self.time_mlp(timestep_embedding(t, cfg.emb_dim)) + self.cond_mlp(cond.to(x.dtype))
        emb = self.emb_act(emb)
        h = self.stem(torch.cat([x * mask, mask.expand(x.shape[0], -1, -1, -1)], dim=1))
        skips = [h]
        for level in self.down:
            for block in level["blocks"]:
                h = block(h, emb)
                skips.append(h)
            h = level["attn"](h)
            if not isinstance(level["down"], nn.Identity):
                h = level["down"](h)
                skips.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for level in self.up:
            for block in level["blocks"]:
                h = block(torch.cat([h, skips.pop()], dim=1), emb)
            h = level["attn"](h)
            if not isinstance(level["up"], nn.Identity):
                h = level["up"](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.out(F.silu(self.out_norm(h))) * mask


class MLP(nn.Module):
    """Residual MLP with SiLU activations and LayerNorm (used by the shower-level model)."""

    def __init__(self, config=None):
        super().__init__()
        self.config = config = config or MLPConfig()
        self.inp = nn.Linear(config.in_dim, config.hidden)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.LayerNorm(config.hidden),
                nn.Linear(config.hidden, config.hidden),
                nn.SiLU(),
                nn.Linear(config.hidden, config.hidden),
            )
            for _ in range(config.depth)
        )
        self.out = nn.Sequential(
            nn.LayerNorm(config.hidden), nn.Linear(config.hidden, config.out_dim)
        )

    def forward(self, x):
        h = self.inp(x)
        for block in self.blocks:
            h = h + block(h)
        return self.out(h)


class MeanOfNets(nn.Module):
    """The mean of several networks' outputs for the same input.

    Averaging the log-odds of classifiers fitted with different initial weights and batch
    orders keeps what they agree on and damps what each learned from its own noise, which is
    largest where the data are fewest (the ratio's tails).

    Parameters
    ----------
    nets : sequence of nn.Module
        Networks of one input and equal output shapes (stored as ``members.<k>.*``).
    """

    def __init__(self, nets):
        super().__init__()
        if len(nets) < 1:
            raise ValueError("need at least one network")
        self.members = nn.ModuleList(nets)

    def forward(self, x):
        return torch.stack([net(x) for net in self.members]).mean(dim=0)
