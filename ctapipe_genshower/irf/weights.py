"""Event weights for a target spectrum from one or several simulated samples.

A sample ``k`` throws ``N_k`` showers with the ``ThrownDistribution`` ``D_k``: energy pdf
``p_k(E)`` on ``[E_min, E_max]``, cores uniform on the area ``A_k`` and directions uniform in
the solid angle ``Omega_k``. Its density of thrown showers per unit energy, area and solid
angle is ``n_k(E, r, theta) = N_k p_k(E) / (A_k Omega_k)`` inside its support and zero outside.

The "balance heuristic" of multiple importance sampling weights every event ``i`` of any
sample with

    w_i = T Phi(E_i) / sum_k n_k(E_i, r_i, theta_i),

where ``Phi`` is the target flux (per energy, area, time and solid angle) and ``T`` the
observation time. The sum of weights of the selected events is then an unbiased estimate of
the number of target events wherever at least one sample covers the phase space. For a single
sample (or samples with identical settings, where the ``N_k`` add) this is exactly pyirf's
``calculate_event_weights(E, target, PowerLaw.from_simulation(info, T))``.

Point-like samples (``Omega_k = 0``) have no solid-angle factor; then the target must be a
point-source flux and all samples must be point-like.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import astropy.units as u
import numpy as np
from pyirf.simulations import SimulatedEventsInfo
from pyirf.spectral import (
    DIFFUSE_FLUX_UNIT,
    IRFDOC_ELECTRON_SPECTRUM,
    IRFDOC_PROTON_SPECTRUM,
    POINT_SOURCE_FLUX_UNIT,
    DAMPE_P_He_SPECTRUM,
    PowerLaw,
    calculate_event_weights,
)

from ..thrown import ThrownDistribution

__all__ = [
    "TARGET_SPECTRA",
    "SimulatedComponent",
    "balance_heuristic_weights",
    "merge_components",
    "pyirf_weights",
    "settings_key",
    "simulated_events_info",
    "support_mask",
    "thrown_density",
]

#: Target spectra selectable by name (pyirf's definitions).
TARGET_SPECTRA = {
    "IRFDOC_PROTON_SPECTRUM": IRFDOC_PROTON_SPECTRUM,
    "DAMPE_P_He_SPECTRUM": DAMPE_P_He_SPECTRUM,
    "IRFDOC_ELECTRON_SPECTRUM": IRFDOC_ELECTRON_SPECTRUM,
}

# Tolerances for the support test: values written to and read back from files
# (float32 columns, alt/az round trips) sit on the boundary up to rounding.
_ENERGY_RTOL = 1e-5
_CORE_ATOL = 1e-3 * u.m
_OFFSET_ATOL = 1e-3 * u.deg


@dataclass(frozen=True)
class SimulatedComponent:
    """One set of simulation settings and the number of showers thrown with it."""

    thrown: ThrownDistribution
    n_showers: int

    @property
    def is_point_like(self):
        return self.thrown.max_viewcone <= 0 * u.deg


def merge_components(components: Sequence[SimulatedComponent]):
    """Merge components with identical settings: their shower counts add."""
    merged = {}
    for comp in components:
        key = settings_key(comp.thrown)
        thrown, n = merged.get(key, (comp.thrown, 0))
        merged[key] = (thrown, n + int(comp.n_showers))
    return [SimulatedComponent(thrown, n) for thrown, n in merged.values()]


def settings_key(thrown):
    """Hashable key of a ``ThrownDistribution``; settings equal to 6 significant digits match."""
    key = []
    for name, value in sorted(thrown.to_dict().items()):
        if isinstance(value, dict):
            key.append((name, float(f"{value['value']:.6g}"), value["unit"]))
        else:
            key.append((name, float(f"{value:.6g}")))
    return tuple(key)


def simulated_events_info(component: SimulatedComponent):
    """pyirf's ``SimulatedEventsInfo`` of one component."""
    t = component.thrown
    return SimulatedEventsInfo(
        n_showers=int(component.n_showers),
        energy_min=t.energy_min,
        energy_max=t.energy_max,
        max_impact=t.max_scatter_radius,
        spectral_index=t.spectral_index,
        viewcone_min=t.min_viewcone,
        viewcone_max=t.max_viewcone,
    )


def support_mask(thrown, true_energy, core_distance, fov_offset):
    """Where events lie inside ``thrown``'s support (with rounding tolerance)."""
    e = true_energy.to(u.TeV)
    e_min, e_max = thrown.energy_min.to(u.TeV), thrown.energy_max.to(u.TeV)
    energy = np.where((e < e_min) & (e >= e_min * (1 - _ENERGY_RTOL)), e_min, e)
    energy = np.where((energy > e_max) & (energy <= e_max * (1 + _ENERGY_RTOL)), e_max, energy)
    core = np.where(
        core_distance <= thrown.max_scatter_radius + _CORE_ATOL,
        np.minimum(core_distance, thrown.max_scatter_radius),
        core_distance,
    )
    off = fov_offset.to(u.deg)
    lo, hi = thrown.min_viewcone.to(u.deg), thrown.max_viewcone.to(u.deg)
    off = np.where((off < lo) & (off >= lo - _OFFSET_ATOL), lo, off)
    off = np.where((off > hi) & (off <= hi + _OFFSET_ATOL), hi, off)
    return np.asarray(thrown.contains(energy, core, off), dtype=bool)


def _point_like_flag(components):
    flags = {c.is_point_like for c in components}
    if len(flags) > 1:
        raise ValueError("Cannot mix point-like and diffuse samples in one set of weights")
    return flags.pop()


def thrown_density(components, true_energy, core_distance, fov_offset):
    """Total density of thrown showers ``sum_k n_k`` at each event.

    Returns
    -------
    astropy.units.Quantity
        ``1 / (TeV m2 sr)`` for diffuse samples, ``1 / (TeV m2)`` for point-like ones;
        zero where no sample covers the event.
    """
    point_like = _point_like_flag(components)
    unit = u.Unit("TeV-1 m-2") if point_like else u.Unit("TeV-1 m-2 sr-1")
    total = np.zeros(len(true_energy)) * unit
    for comp in components:
        t = comp.thrown
        norm = t.area if point_like else t.area * t.solid_angle
        inside = support_mask(t, true_energy, core_distance, fov_offset)
        energy = np.clip(true_energy.to(u.TeV), t.energy_min, t.energy_max)  # rounding at edges
        density = comp.n_showers * t.energy_pdf(energy) / norm
        total += np.where(inside, density, 0 * unit)
    return total


@u.quantity_input(obs_time=u.s)
def balance_heuristic_weights(
    true_energy, core_distance, fov_offset, components, target_spectrum, obs_time
):
    """Balance-heuristic weights ``T Phi(E_i) / sum_k n_k(E_i, r_i, theta_i)``.

    Parameters
    ----------
    true_energy, core_distance, fov_offset : astropy.units.Quantity
        True energy, ground distance of the core from the array centre and true
        offset of the shower direction from the pointing, one entry per event.
    components : sequence of SimulatedComponent
        All simulation settings whose events enter the weighted sample (also those of
        samples that contributed no selected event). Identical settings are merged.
    target_spectrum : callable
        ``energy -> flux``; a pyirf spectrum (diffuse for diffuse samples).
    obs_time : astropy.units.Quantity
        Observation time.

    Returns
    -------
    numpy.ndarray
        Weights; zero for events outside every sample's support.
    """
    components = merge_components(components)
    if not components:
        raise ValueError("At least one simulated component is needed")
    density = thrown_density(components, true_energy, core_distance, fov_offset)
    flux = target_spectrum(true_energy)
    expected_unit = POINT_SOURCE_FLUX_UNIT if _point_like_flag(components) else DIFFUSE_FLUX_UNIT
    if not flux.unit.is_equivalent(expected_unit):
        raise ValueError(
            f"Target spectrum unit {flux.unit} does not fit the samples (need {expected_unit})"
        )
    covered = density.value > 0
    weights = np.zeros(len(density))
    weights[covered] = (obs_time * flux[covered] / density[covered]).to_value(u.one)
    return weights


@u.quantity_input(obs_time=u.s)
def pyirf_weights(true_energy, component, target_spectrum, obs_time):
    """Plain pyirf weights of one component (reference for a single sample)."""
    simulated = PowerLaw.from_simulation(simulated_events_info(component), obstime=obs_time)
    return calculate_event_weights(true_energy, target_spectrum, simulated)
