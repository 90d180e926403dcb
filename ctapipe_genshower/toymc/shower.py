"""Longitudinal development: electromagnetic (sub-)showers with a Gaisser-Hillas profile.

Every shower is a set of electromagnetic *components* (padded to a fixed number per primary,
unused ones have zero energy):

* a **gamma** is one component: first interaction after ``Exp(9/7 X0)``, depth of maximum
  ``X1 + X0 (ln(E/E_c) - 1.3)`` with a Gaussian fluctuation (about 340 g/cm2 at 1 TeV);
* a **proton** interacts after ``Exp(lambda_p)``; a fluctuating fraction of its energy
  (Beta-distributed, about 40 % on average) goes into electromagnetic sub-showers from pi0
  decays. Their number grows with log(E), the energy shares are Dirichlet-like, each starts
  a little deeper than the first interaction, displaced sideways and tilted from the primary
  axis by the transverse momentum ``p_t / E_k``. The superposition gives the irregular,
  broader images of hadrons.

The electron track length of a component of energy ``E`` is ``(E / E_c) X0`` (Rossi's
approximation B); its distribution in depth is the Gaisser-Hillas shape, which is a gamma
distribution in ``X - X1`` with shape ``(Xmax - X1) / lambda + 1`` and scale ``lambda``, so slices
are integrated exactly with the regularised incomplete gamma function.
"""

from dataclasses import dataclass

import numpy as np
from scipy.special import gammainc

from .atmosphere import RADIATION_LENGTH

__all__ = [
    "CRITICAL_ENERGY",
    "GH_LAMBDA",
    "Components",
    "gaisser_hillas_cdf",
    "gaisser_hillas_fraction",
    "sample_components",
    "track_length",
]

#: Critical energy of air [TeV].
CRITICAL_ENERGY = 85e-6
#: Gaisser-Hillas interaction-length parameter [g/cm2].
GH_LAMBDA = 70.0
#: Photon-conversion length 9/7 X0 [g/cm2].
GAMMA_CONVERSION_LENGTH = 9.0 / 7.0 * RADIATION_LENGTH
#: Proton-air interaction length at TeV energies [g/cm2].
PROTON_INTERACTION_LENGTH = 85.0
#: Effective transverse momentum of the sub-showers [TeV]: 0.35 GeV per pi0 photon, enlarged
#: to 0.8 GeV for the generations of charged hadrons in between (toy parameter).
TRANSVERSE_MOMENTUM = 0.8e-3
#: Lateral displacement (Rayleigh sigma) of sub-showers from later hadron generations [m].
LATERAL_DISPLACEMENT = 30.0
#: Largest tilt of a sub-shower against the primary axis [rad].
MAX_TILT = np.deg2rad(4.0)

MAX_COMPONENTS = {"gamma": 1, "proton": 12}


@dataclass
class Components:
    """Electromagnetic components of ``N`` showers, arrays of shape ``(N, M)``.

    Depths are slant depths along the primary axis [g/cm2], energies in TeV, tilts in rad.
    """

    energy: np.ndarray
    x_start: np.ndarray
    x_max: np.ndarray
    tilt: np.ndarray
    tilt_azimuth: np.ndarray
    offset: np.ndarray  # lateral displacement of the start point [m]
    offset_azimuth: np.ndarray
    x_first: np.ndarray  # (N,) first interaction of the primary

    def subset(self, rows):
        """The components of the showers ``rows`` only."""
        return Components(**{k: v[rows] for k, v in self.__dict__.items()})

    @property
    def valid(self):
        return self.energy > 0

    def shower_x_max(self):
        """Energy-weighted depth of maximum of each shower (N,), the toy's ``x_max`` truth."""
        weight = np.where(self.valid, self.energy, 0.0)
        return np.sum(weight * self.x_max, axis=1) / np.maximum(weight.sum(axis=1), 1e-30)


def _em_x_max(x_start, energy, rng, sigma=15.0):
    """Depth of maximum of an electromagnetic cascade starting at ``x_start``."""
    energy = np.maximum(energy, 2 * CRITICAL_ENERGY)
    mean = x_start + RADIATION_LENGTH * (np.log(energy / CRITICAL_ENERGY) - 1.3)
    x_max = mean + sigma * rng.standard_normal(size=np.shape(energy))
    return np.maximum(x_max, x_start + 20.0)


def sample_components(primary, energy, rng):
    """Draw the electromagnetic components of ``N`` showers.

    Parameters
    ----------
    primary : {"gamma", "proton"}
    energy : numpy.ndarray
        Primary energies [TeV], shape ``(N,)``.
    rng : numpy.random.Generator

    Returns
    -------
    Components
    """
    energy = np.asarray(energy, dtype=np.float64)
    n = len(energy)
    if primary == "gamma":
        x_first = rng.exponential(GAMMA_CONVERSION_LENGTH, size=n)
        x_max = _em_x_max(x_first, energy, rng)
        zeros = np.zeros((n, 1))
        return Components(
            energy=energy[:, None].copy(),
            x_start=x_first[:, None].copy(),
            x_max=x_max[:, None],
            tilt=zeros,
            tilt_azimuth=zeros.copy(),
            offset=zeros.copy(),
            offset_azimuth=zeros.copy(),
            x_first=x_first,
        )
    if primary != "proton":
        raise ValueError(f"Unknown primary {primary!r}, expected 'gamma' or 'proton'")

    m = MAX_COMPONENTS["proton"]
    x_first = rng.exponential(PROTON_INTERACTION_LENGTH, size=n)
    # number of pi0 sub-showers grows with log(E)
    mean_number = 2.0 + 1.5 * np.log10(np.maximum(energy / 0.1, 1.0))
    number = np.clip(1 + rng.poisson(mean_number), 1, m)
    # fluctuating electromagnetic energy fraction, Dirichlet-like shares
    em_fraction = rng.beta(4.0, 6.0, size=n)
    shares = rng.gamma(0.8, size=(n, m))
    shares[np.arange(m)[None, :] >= number[:, None]] = 0.0
    shares /= shares.sum(axis=1, keepdims=True)
    energy_k = shares * (em_fraction * energy)[:, None]
    # sub-showers start at or after the first interaction (later generations deeper)
    delay = rng.exponential(60.0, size=(n, m))
    delay[:, 0] = 0.0
    x_start = x_first[:, None] + delay
    x_max = _em_x_max(x_start, energy_k, rng, sigma=20.0)
    # transverse momentum: tilt ~ Rayleigh(p_t / E_k)
    scale = TRANSVERSE_MOMENTUM / np.maximum(energy_k, 1e-6)
    tilt = np.minimum(scale * np.sqrt(-2.0 * np.log1p(-rng.uniform(size=(n, m)))), MAX_TILT)
    tilt_azimuth = rng.uniform(0.0, 2 * np.pi, size=(n, m))
    # later generations start displaced from the axis
    offset = LATERAL_DISPLACEMENT * np.sqrt(-2.0 * np.log1p(-rng.uniform(size=(n, m))))
    offset[:, 0] = 0.0
    offset_azimuth = rng.uniform(0.0, 2 * np.pi, size=(n, m))
    energy_k[shares == 0] = 0.0
    return Components(
        energy=energy_k,
        x_start=x_start,
        x_max=x_max,
        tilt=tilt,
        tilt_azimuth=tilt_azimuth,
        offset=offset,
        offset_azimuth=offset_azimuth,
        x_first=x_first,
    )


def gaisser_hillas_cdf(x, x_start, x_max, lam=GH_LAMBDA):
    """Fraction of a Gaisser-Hillas profile's integral before slant depth ``x``.

    All arguments broadcast; zero before ``x_start``.
    """
    shape = np.maximum((x_max - x_start) / lam, 0.0) + 1.0
    return gammainc(shape, np.maximum(x - x_start, 0.0) / lam)


def gaisser_hillas_fraction(x_low, x_high, x_start, x_max, lam=GH_LAMBDA):
    """Fraction of a Gaisser-Hillas profile's integral between slant depths ``x_low..x_high``."""
    return gaisser_hillas_cdf(x_high, x_start, x_max, lam) - gaisser_hillas_cdf(
        x_low, x_start, x_max, lam
    )


def track_length(energy):
    """Total electron track length [g/cm2] of an electromagnetic cascade (approximation B)."""
    return np.asarray(energy) / CRITICAL_ENERGY * RADIATION_LENGTH
