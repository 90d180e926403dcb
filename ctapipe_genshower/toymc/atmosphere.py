"""Isothermal (exponential) toy atmosphere: depth, height, density, refractive index.

All functions work on plain numpy arrays in fixed units (heights in m above sea level,
depths in g/cm2, densities in g/cm3); the simulator strips units once at its boundary.
Flat-earth geometry: slant depth = vertical depth / cos(zenith).
"""

import numpy as np

__all__ = [
    "RADIATION_LENGTH",
    "SCALE_HEIGHT",
    "cherenkov_angle",
    "density",
    "height_from_vertical_depth",
    "moliere_radius",
    "refractivity",
    "vertical_depth",
]

#: Scale height of the exponential atmosphere [m] (same as ``hess_atmosphere_profile``).
SCALE_HEIGHT = 8000.0
#: Vertical depth at sea level [g/cm2].
SEA_LEVEL_DEPTH = 1030.0
#: Density at sea level [g/cm3] (= SEA_LEVEL_DEPTH / SCALE_HEIGHT in cm, rounded).
SEA_LEVEL_DENSITY = SEA_LEVEL_DEPTH / (SCALE_HEIGHT * 100.0)
#: Refractivity n - 1 at sea level.
SEA_LEVEL_REFRACTIVITY = 2.9e-4
#: Radiation length of air [g/cm2].
RADIATION_LENGTH = 36.7
#: Moliere unit of air [g/cm2] (Moliere radius times density).
MOLIERE_DEPTH = 9.6


def vertical_depth(height):
    """Vertical atmospheric depth [g/cm2] above ``height`` [m a.s.l.]."""
    return SEA_LEVEL_DEPTH * np.exp(-np.asarray(height) / SCALE_HEIGHT)


def height_from_vertical_depth(depth):
    """Height [m a.s.l.] at which the vertical depth is ``depth`` [g/cm2]."""
    return -SCALE_HEIGHT * np.log(np.maximum(depth, 1e-6) / SEA_LEVEL_DEPTH)


def density(height):
    """Air density [g/cm3] at ``height`` [m a.s.l.]."""
    return SEA_LEVEL_DENSITY * np.exp(-np.asarray(height) / SCALE_HEIGHT)


def refractivity(height):
    """n - 1 at ``height`` [m a.s.l.] (proportional to the density)."""
    return SEA_LEVEL_REFRACTIVITY * np.exp(-np.asarray(height) / SCALE_HEIGHT)


def cherenkov_angle(height, beta=1.0):
    """Cherenkov angle [rad] of a particle of speed ``beta`` at ``height``; 0 below threshold."""
    cos_theta = 1.0 / ((1.0 + refractivity(height)) * beta)
    return np.arccos(np.minimum(cos_theta, 1.0))


def moliere_radius(height):
    """Moliere radius [m] at ``height`` [m a.s.l.]: about 80 m at sea level, 200 m at 8 km."""
    return MOLIERE_DEPTH / density(height) / 100.0
