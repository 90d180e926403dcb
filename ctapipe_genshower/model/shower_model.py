"""Shower-level model: P(selected | shower) and a stochastic image size.

Selection probability as a density ratio
    The training file holds only selected showers, but the thrown distribution ``p`` is
    known exactly. With ``f = N_selected / N_thrown``,
    ``P(selected | x) = f * p_sel(x) / p(x)``. A classifier is trained to separate the
    selected showers (label 1) from an equal number of showers drawn from a proposal ``q``
    per batch (label 0); its logit estimates ``log p_sel(x) / q(x)``. The proposal is the
    thrown distribution with the energy drawn log-uniformly (core and direction exactly as
    thrown), so the rare high energies are well covered; ``q(E) / p(E)`` is analytic. The
    result is calibrated on a large sample of thrown showers so that its mean equals
    ``f`` exactly (``log_norm``), then clipped to [0, 1].
Size
    A mixture density network gives ``p(log10 size | x)`` as a ``n_components`` Gaussian
    mixture in the standardised ``log10 size``; sampling draws a component, then a normal.

``ThrownSampler`` re-implements the numpy sampling of
:class:`ctapipe_genshower.thrown.ThrownDistribution` (same draws in the same order) so the
model package works without ctapipe/astropy; a test checks that both agree.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import MLPConfig
from .networks import MLP
from .transforms import FEATURE_NAMES

__all__ = ["ShowerModel", "ThrownSampler"]

_UNITS = {
    "TeV": 1.0,
    "GeV": 1e-3,
    "PeV": 1e3,
    "m": 1.0,
    "km": 1e3,
    "cm": 1e-2,
    "deg": 1.0,
    "rad": 180.0 / math.pi,
}


def _value(entry, unit):
    """Value of a ``ThrownDistribution.to_dict`` entry converted to ``unit``."""
    if not isinstance(entry, dict):
        return float(entry)
    try:
        return float(entry["value"]) * _UNITS[entry["unit"]] / _UNITS[unit]
    except KeyError:
        raise ValueError(f"unsupported unit {entry.get('unit')!r} in thrown settings") from None


class ThrownSampler:
    """Numpy-only thrown distribution (energy power law, disc, viewcone cone) in plain units.

    ``tel_x``, ``tel_y`` [m] is the telescope position; the impact is ``core - tel``.
    """

    def __init__(
        self,
        energy_min,
        energy_max,
        spectral_index,
        max_scatter_radius,
        min_viewcone,
        max_viewcone,
        tel_x=0.0,
        tel_y=0.0,
    ):
        self.energy_min = float(energy_min)
        self.energy_max = float(energy_max)
        self.spectral_index = float(spectral_index)
        self.max_scatter_radius = float(max_scatter_radius)
        self.min_viewcone = float(min_viewcone)
        self.max_viewcone = float(max_viewcone)
        self.tel_x = float(tel_x)
        self.tel_y = float(tel_y)
        if not 0 < self.energy_min < self.energy_max:
            raise ValueError(
                "thrown energy range must satisfy 0 < min < max, "
                f"got {self.energy_min}..{self.energy_max}"
            )

    @classmethod
    def from_dict(cls, data, tel_x=0.0, tel_y=0.0):
        """From ``ThrownDistribution.to_dict()`` (values with units)."""
        return cls(
            energy_min=_value(data["energy_min"], "TeV"),
            energy_max=_value(data["energy_max"], "TeV"),
            spectral_index=float(data["spectral_index"]),
            max_scatter_radius=_value(data["max_scatter_radius"], "m"),
            min_viewcone=_value(data.get("min_viewcone", 0.0), "deg"),
            max_viewcone=_value(data.get("max_viewcone", 0.0), "deg"),
            tel_x=tel_x,
            tel_y=tel_y,
        )

    def _energy(self, v, index):
        g = index + 1.0
        lo, hi = self.energy_min, self.energy_max
        if abs(g) < 1e-12:
            return lo * (hi / lo) ** v
        return (lo**g + v * (hi**g - lo**g)) ** (1.0 / g)

    def log_energy_pdf(self, energy, index=None):
        """``log`` of the normalised power-law density (1/TeV) with ``index`` (default: thrown)."""
        index = self.spectral_index if index is None else index
        g = index + 1.0
        lo, hi = self.energy_min, self.energy_max
        norm = math.log(hi / lo) if abs(g) < 1e-12 else (hi**g - lo**g) / g
        return index * np.log(energy) - math.log(norm)

    def sample(self, n, rng, energy_index=None):
        """``(n, 5)`` float64 conditions ``[log10 E, impact_x, impact_y, fov_lon, fov_lat]``.

        Same draws, in the same order, as ``ThrownDistribution.sample``; ``energy_index``
        replaces the spectral index (used for the classifier's proposal).
        """
        index = self.spectral_index if energy_index is None else energy_index
        energy = self._energy(rng.uniform(size=n), index)
        r = self.max_scatter_radius * np.sqrt(rng.uniform(size=n))
        phi = rng.uniform(0, 2 * np.pi, size=n)
        core_x, core_y = r * np.cos(phi), r * np.sin(phi)
        cos_max = np.cos(np.deg2rad(self.min_viewcone))
        cos_min = np.cos(np.deg2rad(self.max_viewcone))
        theta = np.arccos(rng.uniform(cos_min, cos_max, size=n))
        phi = rng.uniform(0, 2 * np.pi, size=n)
        lat = np.arcsin(np.sin(theta) * np.sin(phi))
        lon = np.arctan2(np.sin(theta) * np.cos(phi), np.cos(theta))
        return np.stack(
            [
                np.log10(energy),
                core_x - self.tel_x,
                core_y - self.tel_y,
                np.rad2deg(lon),
                np.rad2deg(lat),
            ],
            axis=1,
        )


class ShowerModel(nn.Module):
    """Selection classifier + size mixture density network on standardised shower features.

    Parameters
    ----------
    in_dim : int
        Number of shower features (``len(FEATURE_NAMES)``).
    hidden, depth : int
        MLP width and number of residual blocks (both networks).
    n_components : int
        Gaussians in the size mixture.
    proposal_index : float
        Spectral index of the classifier's energy proposal (-1: log-uniform).
    """

    def __init__(self, in_dim=7, hidden=64, depth=3, n_components=4, proposal_index=-1.0):
        super().__init__()
        self.hparams = {
            "in_dim": in_dim,
            "hidden": hidden,
            "depth": depth,
            "n_components": n_components,
            "proposal_index": proposal_index,
        }
        self.n_components = n_components
        self.proposal_index = float(proposal_index)
        self.selection = MLP(MLPConfig(in_dim=in_dim, out_dim=1, hidden=hidden, depth=depth))
        self.size = MLP(
            MLPConfig(in_dim=in_dim, out_dim=3 * n_components, hidden=hidden, depth=depth)
        )
        # log of the calibration factor: log(f) + log(E_thrown[ratio])^-1
        self.register_buffer("log_norm", torch.zeros((), dtype=torch.float64))

    @classmethod
    def from_config(cls, config):
        """The shower-level model of a :class:`~.config.ModelConfig` (untrained)."""
        return cls(
            in_dim=len(FEATURE_NAMES),
            hidden=config.shower_hidden,
            depth=config.shower_depth,
            n_components=config.size_components,
            proposal_index=config.proposal_index,
        )

    def forward(self, features_selected, features_proposal, z_selected):
        """Training loss of both networks (selection BCE + size NLL), for DDP."""
        return self.selection_loss(features_selected, features_proposal) + self.size_nll(
            features_selected, z_selected
        )

    # -- selection ----------------------------------------------------------------------
    def selection_loss(self, features_selected, features_proposal):
        """Balanced binary cross entropy: selected showers vs proposal showers."""
        logit_s = self.selection(features_selected).squeeze(-1)
        logit_p = self.selection(features_proposal).squeeze(-1)
        return 0.5 * (
            F.binary_cross_entropy_with_logits(logit_s, torch.ones_like(logit_s))
            + F.binary_cross_entropy_with_logits(logit_p, torch.zeros_like(logit_p))
        )

    def log_ratio(self, features, log10_energy, sampler):
        """Uncalibrated ``log p_sel(x) / p(x)`` (float64 numpy)."""
        with torch.no_grad():
            logit = self.selection(features).squeeze(-1).double().cpu().numpy()
        energy = 10.0 ** np.asarray(log10_energy, dtype=np.float64)
        log_q = sampler.log_energy_pdf(energy, self.proposal_index)
        log_p = sampler.log_energy_pdf(energy)
        return logit + log_q - log_p

    def calibrate(self, features_thrown, log10_energy_thrown, sampler, selected_fraction):
        """Set ``log_norm``: mean probability over thrown showers = ``selected_fraction``.

        Solves ``mean(min(1, exp(log_ratio + log_norm))) = selected_fraction`` by bisection
        (monotone in ``log_norm``), so the clipping at one is accounted for.
        """
        if not 0 < selected_fraction <= 1:
            raise ValueError(f"selected fraction must be in (0, 1], got {selected_fraction}")
        log_r = self.log_ratio(features_thrown, log10_energy_thrown, sampler)

        def mean_p(log_norm):
            return np.mean(np.exp(np.minimum(log_r + log_norm, 0.0)))

        m = log_r.max()
        lo = math.log(selected_fraction) - (m + math.log(np.mean(np.exp(log_r - m))))
        hi = lo
        while mean_p(hi) < selected_fraction and hi - lo < 100:
            hi += 1.0
        for _ in range(100):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if mean_p(mid) < selected_fraction else (lo, mid)
        self.log_norm.fill_(0.5 * (lo + hi))

    def selection_probability(self, features, log10_energy, sampler):
        """Calibrated ``P(selected | shower)``, float64 numpy, clipped to [0, 1]."""
        log_p = self.log_ratio(features, log10_energy, sampler) + float(self.log_norm)
        return np.exp(np.minimum(log_p, 0.0))

    # -- size -----------------------------------------------------------------------------
    def _mixture(self, features):
        out = self.size(features).float()
        logits, mean, log_std = out.split(self.n_components, dim=-1)
        return F.log_softmax(logits, dim=-1), mean, log_std.clamp(-7.0, 3.0)

    def size_nll(self, features, z):
        """Mean negative log likelihood of standardised ``log10 size`` values ``z``."""
        log_w, mean, log_std = self._mixture(features)
        zz = z.float()[:, None]
        log_n = (
            -0.5 * ((zz - mean) / log_std.exp()).square() - log_std - 0.5 * math.log(2 * math.pi)
        )
        return -torch.logsumexp(log_w + log_n, dim=-1).mean()

    @torch.no_grad()
    def sample_z(self, features, uniform, normal):
        """Draw the standardised ``log10 size``.

        ``uniform`` picks the mixture component, ``normal`` the value within it.
        """
        log_w, mean, log_std = self._mixture(features)
        cdf = log_w.exp().cumsum(-1)
        u = uniform.to(cdf)[:, None]
        k = (cdf < u).sum(-1).clamp_max(self.n_components - 1)
        m = mean.gather(1, k[:, None]).squeeze(1)
        s = log_std.gather(1, k[:, None]).squeeze(1).exp()
        return m + s * normal.to(m)
