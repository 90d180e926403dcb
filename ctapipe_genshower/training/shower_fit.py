"""Fitting the shower-level model: selection classifier, size density, calibration.

The first training phase: it needs only the conditions and image sizes of the training
events (read chunk by chunk, no images kept) and draws from the thrown distribution, so it
is short and runs with large batches. It also records the trained domain: the range of
every shower feature and of the size the model saw.
"""

import math

import numpy as np
import torch

from ..model.transforms import FEATURE_NAMES, ConditionTransform
from .dataset import read_checked
from .distributed import all_reduce_min_max, wrap_ddp

__all__ = ["fit_shower_model", "shower_training_data", "trained_domain"]


def shower_training_data(dataset, lo, hi, transforms, chunk_size):
    """What the shower model learns from events ``lo..hi`` of ``dataset``.

    Returns
    -------
    features : torch.Tensor
        ``(N, 7)`` standardised shower features.
    z : torch.Tensor
        ``(N,)`` standardised ``log10 size``.
    raw : torch.Tensor
        ``(N, 8)`` unstandardised features and size (for :func:`trained_domain`).
    """
    feats, zs, raw = [], [], []
    for start in range(lo, hi, chunk_size):
        stop = min(start + chunk_size, hi)
        batch = read_checked(dataset, start, stop)
        size = transforms["image"].size(batch["image"])
        feats.append(transforms["conditions"].features(batch["conditions"]))
        zs.append(transforms["conditions"].log_size(size))
        c = ConditionTransform.raw_features(batch["conditions"])
        raw.append(torch.cat([c, size[:, None]], dim=1))
    return torch.cat(feats), torch.cat(zs), torch.cat(raw)


def trained_domain(raw, device):
    """``{name: [min, max]}`` of every feature and of ``size`` over all ranks' events."""
    lo, hi = raw.min(0).values.to(device), raw.max(0).values.to(device)
    lo, hi = all_reduce_min_max(lo, hi)
    names = [*FEATURE_NAMES, "size"]
    return {
        name: [float(a), float(b)] for name, a, b in zip(names, lo.cpu(), hi.cpu(), strict=True)
    }


def fit_shower_model(
    shower,
    features,
    z,
    sampler,
    condition_transform,
    selected_fraction,
    steps=3000,
    batch_size=1024,
    learning_rate=2e-3,
    calibration_events=500_000,
    seed=0,
    rank=0,
    device="cpu",
    callback=None,
    progress=None,
):
    """Train the selection classifier and the size MDN, then calibrate the selection.

    Parameters
    ----------
    shower : ShowerModel
    features : torch.Tensor
        ``(N, 7)`` standardised features of the selected training showers.
    z : torch.Tensor
        ``(N,)`` standardised ``log10 size`` of those showers.
    sampler : ThrownSampler
        The thrown distribution (negatives come from it, with the proposal energy index).
    condition_transform : ConditionTransform
    selected_fraction : float
        ``N_selected / N_thrown`` of the whole training simulation.
    steps, batch_size, learning_rate
        AdamW with a cosine decay.
    calibration_events : int
        Thrown showers the selection probability is calibrated on.
    seed, rank : int
        Seeds of the batches and proposals (per rank) and of the calibration sample.
    device : str or torch.device
    callback : callable, optional
        Gets ``{"kind": "shower", "step", "loss"}`` ten times during the fit.
    progress : callable, optional
        ``progress(step)`` after every optimizer step (``step`` from 1 to ``steps``), e.g.
        to move a progress bar.

    Returns
    -------
    ShowerModel
        ``shower``, trained and calibrated, in eval mode.
    """
    device = torch.device(device)
    model = wrap_ddp(shower, device)
    shower.train()
    opt = torch.optim.AdamW(shower.parameters(), lr=learning_rate, weight_decay=1e-4, foreach=True)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps))
    )
    rng = np.random.default_rng([seed, rank, 2])
    loss_sum, n_sum = 0.0, 0
    for step in range(steps):
        idx = torch.as_tensor(rng.integers(0, len(features), batch_size))
        proposal = sampler.sample(batch_size, rng, energy_index=shower.proposal_index)
        f_prop = condition_transform.features(proposal).to(device)
        loss = model(features[idx].to(device), f_prop, z[idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(shower.parameters(), 5.0)
        opt.step()
        sched.step()
        loss_sum, n_sum = loss_sum + loss.item(), n_sum + 1
        if progress is not None:
            progress(step + 1)
        if callback is not None and ((step + 1) % max(1, steps // 10) == 0 or step + 1 == steps):
            callback({"kind": "shower", "step": step + 1, "loss": loss_sum / n_sum})
            loss_sum, n_sum = 0.0, 0
    shower.eval()
    # the same calibration sample on every rank, so all ranks end with the same constant
    thrown = sampler.sample(calibration_events, np.random.default_rng([seed, 3]))
    shower.calibrate(
        condition_transform.features(thrown).to(device), thrown[:, 0], sampler, selected_fraction
    )
    return shower
