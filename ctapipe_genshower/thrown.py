"""The thrown shower distribution, exactly as sim_telarray throws it.

One description is shared by the toy simulator, the shower-level model (whose selection
probability is a density ratio against this distribution), the DiffusionEventSource and
the IRF weights, so "how showers were thrown" is written down once:

* energy: power law ``dN/dE ~ E**spectral_index`` between ``energy_min`` and ``energy_max``;
* core: uniform in a disc of radius ``max_scatter_radius`` on the ground, centred on the
  array reference point (``core_pos_mode = 0``, pyirf's area ``pi r**2``);
* direction: uniform in solid angle in a cone (``min_viewcone``..``max_viewcone``) around
  the fixed telescope pointing.

Directions are handled in ctapipe's ``TelescopeFrame`` (``fov_lon``, ``fov_lat``) with the
``AltAz`` conversion done by ctapipe/astropy, so ``true_source_fov_*`` agree with ctapipe.
"""

from dataclasses import asdict, dataclass

import astropy.units as u
import numpy as np
from astropy.coordinates import AltAz, SkyCoord
from astropy.table import QTable
from ctapipe.containers import SimulatedShowerDistribution, SimulationConfigContainer
from ctapipe.coordinates import TelescopeFrame

__all__ = [
    "CORE_DISTANCE_BINS",
    "ENERGY_BINS_PER_DECADE",
    "ThrownDistribution",
    "fov_to_altaz",
]

#: Binning of the simulated-shower histogram, like sim_telarray's histogram 6.
ENERGY_BINS_PER_DECADE = 10
CORE_DISTANCE_BINS = 100


def fov_to_altaz(fov_lon, fov_lat, pointing_alt, pointing_az):
    """Convert ``TelescopeFrame`` offsets to true ``(alt, az)`` with ctapipe's frames."""
    pointing = AltAz(alt=pointing_alt, az=pointing_az)
    coord = SkyCoord(
        fov_lon=fov_lon, fov_lat=fov_lat, frame=TelescopeFrame(telescope_pointing=pointing)
    )
    altaz = coord.transform_to(AltAz())
    return altaz.alt.to(u.deg), altaz.az.to(u.deg)


@dataclass(frozen=True)
class ThrownDistribution:
    """Phase space in which showers are thrown (one simulation run's settings).

    All quantities carry units. ``spectral_index`` is the sim_telarray convention
    (negative, e.g. -2.0 for ``dN/dE ~ E**-2``).
    """

    energy_min: u.Quantity = 0.1 * u.TeV
    energy_max: u.Quantity = 100.0 * u.TeV
    spectral_index: float = -2.0
    max_scatter_radius: u.Quantity = 1000.0 * u.m
    min_viewcone: u.Quantity = 0.0 * u.deg
    max_viewcone: u.Quantity = 0.0 * u.deg
    pointing_alt: u.Quantity = 70.0 * u.deg
    pointing_az: u.Quantity = 0.0 * u.deg

    def __post_init__(self):
        if not 0 < self.energy_min < self.energy_max:
            raise ValueError(
                f"Energy range must satisfy 0 < min < max, got {self.energy_min}..{self.energy_max}"
            )
        if self.max_scatter_radius <= 0 * u.m:
            raise ValueError(f"max_scatter_radius must be positive, got {self.max_scatter_radius}")
        if not 0 * u.deg <= self.min_viewcone <= self.max_viewcone < 90 * u.deg:
            raise ValueError(
                f"Viewcone must satisfy 0 <= min <= max < 90 deg, got "
                f"{self.min_viewcone}..{self.max_viewcone}"
            )
        if not 0 * u.deg < self.pointing_alt <= 90 * u.deg:
            raise ValueError(f"Pointing altitude must be in (0, 90] deg, got {self.pointing_alt}")

    # -- sampling ---------------------------------------------------------------------
    def sample_energy(self, n, rng):
        """Draw ``n`` energies from the power law (inverse transform)."""
        e_min = self.energy_min.to_value(u.TeV)
        e_max = self.energy_max.to_value(u.TeV)
        g = self.spectral_index + 1.0
        v = rng.uniform(size=n)
        if abs(g) < 1e-12:
            energy = e_min * (e_max / e_min) ** v
        else:
            energy = (e_min**g + v * (e_max**g - e_min**g)) ** (1.0 / g)
        return energy * u.TeV

    def sample_core(self, n, rng):
        """Draw ``n`` core positions uniform in the ground disc."""
        r = self.max_scatter_radius.to_value(u.m) * np.sqrt(rng.uniform(size=n))
        phi = rng.uniform(0, 2 * np.pi, size=n)
        return r * np.cos(phi) * u.m, r * np.sin(phi) * u.m

    def sample_direction(self, n, rng):
        """Draw ``n`` directions uniform in solid angle inside the viewcone.

        Returns ``(fov_lon, fov_lat)`` in the telescope frame.
        """
        cos_max = np.cos(self.min_viewcone.to_value(u.rad))
        cos_min = np.cos(self.max_viewcone.to_value(u.rad))
        theta = np.arccos(rng.uniform(cos_min, cos_max, size=n))
        phi = rng.uniform(0, 2 * np.pi, size=n)
        # offset/angle -> TelescopeFrame spherical coordinates (pointing at lon=lat=0)
        lat = np.arcsin(np.sin(theta) * np.sin(phi))
        lon = np.arctan2(np.sin(theta) * np.cos(phi), np.cos(theta))
        return np.rad2deg(lon) * u.deg, np.rad2deg(lat) * u.deg

    def sample(self, n, rng):
        """Throw ``n`` showers.

        Parameters
        ----------
        n : int
            Number of showers.
        rng : numpy.random.Generator
            Random generator; the draws are made in a fixed order, so a seed fixes them.

        Returns
        -------
        astropy.table.QTable
            Columns ``true_energy``, ``true_core_x``, ``true_core_y``,
            ``true_source_fov_lon``, ``true_source_fov_lat``, ``true_source_fov_offset``,
            ``true_alt``, ``true_az``.
        """
        energy = self.sample_energy(n, rng)
        core_x, core_y = self.sample_core(n, rng)
        fov_lon, fov_lat = self.sample_direction(n, rng)
        alt, az = fov_to_altaz(fov_lon, fov_lat, self.pointing_alt, self.pointing_az)
        return QTable(
            {
                "true_energy": energy,
                "true_core_x": core_x,
                "true_core_y": core_y,
                "true_source_fov_lon": fov_lon,
                "true_source_fov_lat": fov_lat,
                "true_source_fov_offset": self.fov_offset(fov_lon, fov_lat),
                "true_alt": alt,
                "true_az": az,
            }
        )

    # -- densities (for density ratios and importance weights) -----------------------
    @staticmethod
    def fov_offset(fov_lon, fov_lat):
        """Angular distance from the pointing of a ``TelescopeFrame`` position."""
        lon, lat = fov_lon.to_value(u.rad), fov_lat.to_value(u.rad)
        return np.rad2deg(np.arccos(np.clip(np.cos(lon) * np.cos(lat), -1, 1))) * u.deg

    @property
    def area(self):
        return np.pi * self.max_scatter_radius.to(u.m) ** 2

    @property
    def solid_angle(self):
        cos_min = np.cos(self.max_viewcone.to_value(u.rad))
        cos_max = np.cos(self.min_viewcone.to_value(u.rad))
        return 2 * np.pi * (cos_max - cos_min) * u.sr

    def energy_pdf(self, energy):
        """Probability density of the thrown energies (1/TeV); zero outside the range."""
        e = energy.to_value(u.TeV)
        e_min = self.energy_min.to_value(u.TeV)
        e_max = self.energy_max.to_value(u.TeV)
        g = self.spectral_index + 1.0
        if abs(g) < 1e-12:
            norm = np.log(e_max / e_min)
        else:
            norm = (e_max**g - e_min**g) / g
        pdf = e**self.spectral_index / norm
        return np.where((e >= e_min) & (e <= e_max), pdf, 0.0) / u.TeV

    def contains(self, energy, core_distance, fov_offset):
        """True where a shower lies inside this distribution's support."""
        return (
            (energy >= self.energy_min)
            & (energy <= self.energy_max)
            & (core_distance <= self.max_scatter_radius)
            & (fov_offset >= self.min_viewcone)
            & (fov_offset <= self.max_viewcone)
        )

    # -- ctapipe bookkeeping ----------------------------------------------------------
    def simulation_config(self, n_showers, run_number=1, **extra):
        """The ``SimulationConfigContainer`` a sim_telarray run with these settings has."""
        alt = self.pointing_alt.to(u.rad)
        az = self.pointing_az.to(u.rad)
        return SimulationConfigContainer(
            run_number=run_number,
            energy_range_min=self.energy_min.to(u.TeV),
            energy_range_max=self.energy_max.to(u.TeV),
            spectral_index=self.spectral_index,
            n_showers=int(n_showers),
            shower_reuse=1,
            max_alt=alt,
            min_alt=alt,
            max_az=az,
            min_az=az,
            diffuse=bool(self.max_viewcone > 0 * u.deg),
            max_viewcone_radius=self.max_viewcone.to(u.deg),
            min_viewcone_radius=self.min_viewcone.to(u.deg),
            max_scatter_range=self.max_scatter_radius.to(u.m),
            min_scatter_range=0 * u.m,
            core_pos_mode=0,
            **extra,
        )

    @classmethod
    def from_simulation_config(cls, config, pointing_alt=None, pointing_az=None):
        """Read the thrown distribution back from a ``SimulationConfigContainer`` (or table row)."""

        def q(key, unit):
            return u.Quantity(config[key], unit)

        return cls(
            energy_min=q("energy_range_min", u.TeV),
            energy_max=q("energy_range_max", u.TeV),
            spectral_index=float(config["spectral_index"]),
            max_scatter_radius=q("max_scatter_range", u.m),
            min_viewcone=q("min_viewcone_radius", u.deg),
            max_viewcone=q("max_viewcone_radius", u.deg),
            pointing_alt=pointing_alt if pointing_alt is not None else q("max_alt", u.deg),
            pointing_az=pointing_az if pointing_az is not None else q("max_az", u.deg),
        )

    def energy_bins(self):
        """Log-spaced energy bin edges covering the range, ``ENERGY_BINS_PER_DECADE`` per decade."""
        lo = np.log10(self.energy_min.to_value(u.TeV))
        hi = np.log10(self.energy_max.to_value(u.TeV))
        n = max(1, int(np.ceil((hi - lo) * ENERGY_BINS_PER_DECADE - 1e-9)))
        return np.logspace(lo, hi, n + 1) * u.TeV

    def core_distance_bins(self):
        return np.linspace(0, self.max_scatter_radius.to_value(u.m), CORE_DISTANCE_BINS + 1) * u.m

    def shower_distribution(self, obs_id, energy, core_distance):
        """Histogram of ALL thrown showers, like sim_telarray's histogram 6.

        Parameters
        ----------
        obs_id : int
        energy, core_distance : astropy.units.Quantity
            True energy and ground core distance of every thrown shower.
        """
        bins_energy = self.energy_bins()
        bins_core = self.core_distance_bins()
        hist, _, _ = np.histogram2d(
            energy.to_value(u.TeV),
            core_distance.to_value(u.m),
            bins=[bins_energy.to_value(u.TeV), bins_core.to_value(u.m)],
        )
        return SimulatedShowerDistribution(
            obs_id=obs_id,
            hist_id=6,
            n_entries=len(energy),
            bins_energy=bins_energy,
            bins_core_dist=bins_core,
            histogram=hist.astype(np.float32),
        )

    def to_dict(self):
        """JSON-ready dict with explicit units (for checkpoints and provenance)."""
        out = {}
        for key, value in asdict(self).items():
            if isinstance(value, u.Quantity):
                out[key] = {"value": float(value.value), "unit": value.unit.to_string()}
            else:
                out[key] = value
        return out

    @classmethod
    def from_dict(cls, data):
        kwargs = {}
        for key, value in data.items():
            if isinstance(value, dict):
                kwargs[key] = u.Quantity(value["value"], value["unit"])
            else:
                kwargs[key] = value
        return cls(**kwargs)
