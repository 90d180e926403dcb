"""ctapipe-process with the student's DDIM eta set per step (ETA_SCHEDULE, experiment only)."""

import os
import sys

import torch

from ctapipe_genshower.model import config, samplers

config.ModelConfig.check_sampling = lambda self, *a, **k: None
SCHEDULE = [float(e) for e in os.environ["ETA_SCHEDULE"].split(",")]
CHANNELS = [int(c) for c in os.environ.get("ETA_CHANNELS", "0,1").split(",")]


def ddim_scheduled(
    denoise, cond, generators, shape, n_steps=20, eta=0.0, mask=None, device="cpu", callback=None
):
    n = cond.shape[0]
    mask64 = None if mask is None else mask.to(device=device, dtype=torch.float64)
    x = samplers.event_noise(generators, shape).to(device)
    if mask64 is not None:
        x = x * mask64
    times = samplers.ddim_timesteps(n_steps)
    for i in range(int(n_steps)):
        t, s = times[i], times[i + 1]
        eta_i = SCHEDULE[i] if i < len(SCHEDULE) else 0.0
        t_batch = torch.full((n,), float(t), dtype=torch.float32, device=device)
        v = denoise(x.float(), t_batch, cond).to(torch.float64)
        x0, eps = samplers.predict_x0_eps(x, v, t.to(device))
        alpha_s, sigma_s = samplers.alpha_sigma(s)
        if eta_i > 0 and s > 0:
            alpha_t, sigma_t = samplers.alpha_sigma(t)
            ratio = (sigma_s**2 / sigma_t**2) * (1 - alpha_t**2 / alpha_s**2)
            on = torch.zeros((1, shape[0], 1, 1), dtype=torch.float64)
            on[:, CHANNELS] = 1.0
            sigma_eta = eta_i * torch.sqrt(ratio.clamp_min(0.0)) * on
            direction = torch.sqrt((sigma_s**2 - sigma_eta**2).clamp_min(0.0))
            z = samplers.event_noise(generators, shape).to(device)
            if mask64 is not None:
                z = z * mask64
            x = alpha_s.item() * x0 + direction * eps + sigma_eta * z
        else:
            x = alpha_s.item() * x0 + sigma_s.item() * eps
        if mask64 is not None:
            x = x * mask64
    return x.float()


samplers.ddim_sample = ddim_scheduled
from ctapipe.tools.process import main  # noqa: E402

sys.exit(main())
