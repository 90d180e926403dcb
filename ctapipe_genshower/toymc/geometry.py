"""Ground frame -> telescope frame -> camera, in numpy (no astropy frames in the hot loop).

Conventions are ctapipe's, checked against ctapipe's frames in the tests:

* ``GroundFrame``: x north, y west, z up; a direction with ``(alt, az)`` (az east of north) is
  ``(cos alt cos az, -cos alt sin az, sin alt)`` (``altaz_to_righthanded_cartesian``);
* ``TelescopeFrame``: spherical offsets ``(fov_lon, fov_lat)`` around the pointing, ``fov_lon``
  growing with azimuth and ``fov_lat`` with altitude;
* ``CameraFrame``: ``x = f * fov_lat``, ``y = f * fov_lon`` (ctapipe's equidistant mapping).
"""

import numpy as np

__all__ = [
    "altaz_to_vector",
    "camera_from_fov",
    "fov_from_vector",
    "rotate_about_perpendicular",
]


def altaz_to_vector(alt, az):
    """Unit vectors ``(..., 3)`` in the ground frame of directions ``alt, az`` [rad]."""
    alt, az = np.asarray(alt), np.asarray(az)
    return np.stack([np.cos(alt) * np.cos(az), -np.cos(alt) * np.sin(az), np.sin(alt)], axis=-1)


def fov_from_vector(vectors, pointing_alt, pointing_az):
    """``TelescopeFrame`` offsets ``(fov_lon, fov_lat)`` [rad] of ground-frame directions.

    Parameters
    ----------
    vectors : numpy.ndarray
        Directions ``(..., 3)`` in the ground frame (need not be normalised).
    pointing_alt, pointing_az : float
        Telescope pointing [rad].
    """
    v = np.asarray(vectors, dtype=np.float64)
    # astropy's left-handed AltAz cartesian (y east), then rotate the pointing onto +x
    x, y, z = v[..., 0], -v[..., 1], v[..., 2]
    ca, sa = np.cos(pointing_az), np.sin(pointing_az)
    x1 = ca * x + sa * y
    y1 = -sa * x + ca * y
    ce, se = np.cos(pointing_alt), np.sin(pointing_alt)
    x2 = ce * x1 + se * z
    z2 = -se * x1 + ce * z
    norm = np.sqrt(x2**2 + y1**2 + z2**2)
    fov_lon = np.arctan2(y1, x2)
    fov_lat = np.arcsin(np.clip(z2 / norm, -1.0, 1.0))
    return fov_lon, fov_lat


def camera_from_fov(fov_lon, fov_lat, focal_length):
    """Camera-frame ``(x, y)`` [m] of telescope-frame offsets [rad] (ctapipe's mapping)."""
    return focal_length * fov_lat, focal_length * fov_lon


def rotate_about_perpendicular(axis, tilt, azimuth):
    """Tilt unit vectors ``axis (..., 3)`` by angle ``tilt`` towards ``azimuth`` around them.

    Used for the directions of sub-showers and muons scattered around the shower axis.
    """
    axis = np.asarray(axis, dtype=np.float64)
    # an orthonormal basis (e1, e2) perpendicular to the axis
    helper = np.zeros_like(axis)
    helper[..., 0] = 1.0
    parallel = np.abs(axis[..., 0]) > 0.9
    helper[parallel] = (0.0, 1.0, 0.0)
    e1 = np.cross(axis, helper)
    e1 /= np.linalg.norm(e1, axis=-1, keepdims=True)
    e2 = np.cross(axis, e1)
    tilt = np.asarray(tilt)[..., None]
    azimuth = np.asarray(azimuth)[..., None]
    return np.cos(tilt) * axis + np.sin(tilt) * (np.cos(azimuth) * e1 + np.sin(azimuth) * e2)
