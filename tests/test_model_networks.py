"""Networks: shapes, masking, conditioning, configurable size."""

import pytest
import torch

from ctapipe_genshower.model.config import PRESETS, MLPConfig, UNetConfig
from ctapipe_genshower.model.networks import MLP, UNet


def _inputs(cfg, n=2, size=52):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 2, size, size, generator=g)
    mask = torch.zeros(1, 1, size, size)
    mask[..., :49, :49] = 1
    return x, torch.rand(n, generator=g), torch.randn(n, cfg.cond_dim, generator=g), mask


def _randomise(net):
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)


@torch.no_grad()
def test_unet_shape_mask_and_conditioning():
    cfg = PRESETS["tiny"].unet
    net = UNet(cfg)
    assert sum(p.numel() for p in net.parameters()) < 20_000
    x, t, c, mask = _inputs(cfg)
    out = net(x, t, c, mask)
    assert out.shape == (2, 2, 52, 52)
    assert float(out.abs().sum()) == 0  # zero-initialised output layer
    _randomise(net)
    out = net(x, t, c, mask)
    assert float(out[..., 49:, :].abs().sum()) == 0 and float(out.abs().sum()) > 0
    # the output depends on time and on the condition
    assert not torch.allclose(net(x, t * 0.5, c, mask), out)
    assert not torch.allclose(net(x, t, c + 1, mask), out)
    # per-event: an event's output does not depend on its batch neighbours
    torch.testing.assert_close(net(x[:1], t[:1], c[:1], mask), out[:1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("preset", ["small"])
def test_bundled_size(preset):
    net = UNet(PRESETS[preset].unet)
    n = sum(p.numel() for p in net.parameters())
    assert 5e5 < n < 2e6


def test_config_round_trip():
    cfg = UNetConfig(base_channels=8, channel_mult=(1, 2), attention_levels=(1,))
    assert UNetConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.pad_to == 2


def test_mlp():
    net = MLP(MLPConfig(in_dim=7, out_dim=3, hidden=16, depth=2))
    assert net(torch.randn(5, 7)).shape == (5, 3)
