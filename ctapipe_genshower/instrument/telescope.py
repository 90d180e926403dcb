"""A single CT5-like telescope with a FlashCam-like camera, built offline.

ctapipe's ``CameraGeometry.from_name`` downloads its camera files, which does not work
without internet and would not give a camera we control. This module builds the whole
instrument in code. It is *FlashCam-like*, not the real CT5 pixel map: hexagonal pixels
of 50 mm pitch on a hexagonal lattice, cut to a hexagonal outline with rounded corners
(1765 pixels, 0.08 deg per pixel at 36 m focal length, about 3.5 deg field of view).
"""

import astropy.units as u
import numpy as np
from astropy.coordinates import EarthLocation
from ctapipe.atmosphere import ExponentialAtmosphereDensityProfile
from ctapipe.coordinates import CameraFrame
from ctapipe.instrument import (
    CameraDescription,
    CameraGeometry,
    CameraReadout,
    OpticsDescription,
    PixelShape,
    ReflectorShape,
    SizeType,
    SubarrayDescription,
    TelescopeDescription,
)

__all__ = [
    "CAMERA_NAME",
    "HESS_SITE",
    "TELESCOPE_NAME",
    "flashcam_like_camera",
    "flashcam_like_geometry",
    "hess_atmosphere_profile",
    "single_telescope_subarray",
    "telescope_description",
]

CAMERA_NAME = "FlashCamLike"
TELESCOPE_NAME = "CT5Like"

#: H.E.S.S. site, Khomas Highland, Namibia.
HESS_SITE = EarthLocation(lon=16.5002 * u.deg, lat=-23.2717 * u.deg, height=1835 * u.m)

PIXEL_PITCH = 50 * u.mm
FOCAL_LENGTH = 36 * u.m
MIRROR_AREA = 614 * u.m**2
# Outline: hexagon (distance of the flat sides from the centre) cut by a circle that
# rounds its corners; chosen to give 1765 pixels, close to FlashCam's 1764.
OUTLINE_HEX_RADIUS = 1.05 * u.m
OUTLINE_CIRCLE_RADIUS = 1.14 * u.m


def _hexagonal_lattice(pitch, n_rings):
    """Pixel centres of a hexagonal lattice (rows along x), ``n_rings`` around the centre."""
    q, r = np.meshgrid(np.arange(-n_rings, n_rings + 1), np.arange(-n_rings, n_rings + 1))
    q, r = q.ravel(), r.ravel()
    # axial -> cartesian: neighbouring rows are shifted by half a pitch
    x = pitch * (q + 0.5 * r)
    y = pitch * (np.sqrt(3) / 2 * r)
    return x, y


def flashcam_like_geometry():
    """Build the FlashCam-like hexagonal camera geometry.

    Returns
    -------
    ctapipe.instrument.CameraGeometry
        1765 hexagonal pixels, 50 mm pitch, ordered by row (y) then column (x).
    """
    pitch = PIXEL_PITCH.to_value(u.m)
    x, y = _hexagonal_lattice(pitch, n_rings=30)

    # camera outline: hexagon rotated by 30 deg w.r.t. the pixels, like FlashCam
    angles = np.deg2rad(np.arange(6) * 60 + 30)
    hex_norm = np.max(np.abs(np.outer(x, np.cos(angles)) + np.outer(y, np.sin(angles))), axis=1)
    keep = (hex_norm <= OUTLINE_HEX_RADIUS.to_value(u.m) + 1e-9) & (
        np.hypot(x, y) <= OUTLINE_CIRCLE_RADIUS.to_value(u.m)
    )
    x, y = x[keep], y[keep]
    order = np.lexsort((x, y))
    x, y = x[order], y[order]

    n_pixels = len(x)
    return CameraGeometry(
        name=CAMERA_NAME,
        pix_id=np.arange(n_pixels),
        pix_x=x * u.m,
        pix_y=y * u.m,
        pix_area=np.full(n_pixels, np.sqrt(3) / 2 * pitch**2) * u.m**2,
        pix_type=PixelShape.HEXAGON,
        pix_rotation=0 * u.deg,
        cam_rotation=0 * u.deg,
    )


def flashcam_like_camera():
    """The camera description: geometry plus a FlashCam-like readout (250 MHz, 25 samples)."""
    geometry = flashcam_like_geometry()
    # a unipolar pulse of ~8 ns FWHM sampled at 1 ns; used only by ctapipe's bookkeeping
    t = np.arange(0, 40, 1.0)
    pulse = (t / 4.0) ** 2 * np.exp(-t / 4.0)
    readout = CameraReadout(
        name=CAMERA_NAME,
        sampling_rate=250 * u.MHz,
        reference_pulse_shape=(pulse / pulse.max())[np.newaxis, :],
        reference_pulse_sample_width=1 * u.ns,
        n_channels=1,
        n_pixels=geometry.n_pixels,
        n_samples=25,
    )
    return CameraDescription(name=CAMERA_NAME, geometry=geometry, readout=readout)


def telescope_description():
    """A CT5-like 28 m class telescope (36 m focal length, 614 m2) with the FlashCam-like camera."""
    optics = OpticsDescription(
        name=TELESCOPE_NAME,
        size_type=SizeType.LST,
        reflector_shape=ReflectorShape.PARABOLIC,
        n_mirrors=1,
        equivalent_focal_length=FOCAL_LENGTH,
        effective_focal_length=FOCAL_LENGTH,
        mirror_area=MIRROR_AREA,
        n_mirror_tiles=875,
    )
    camera = flashcam_like_camera()
    # image processing goes to the TelescopeFrame, which needs the focal length on the frame
    camera.geometry.frame = CameraFrame(focal_length=optics.effective_focal_length)
    return TelescopeDescription(name=TELESCOPE_NAME, optics=optics, camera=camera)


def single_telescope_subarray(tel_id=1, position=(0.0, 0.0, 0.0) * u.m):
    """A subarray with one CT5-like telescope at the H.E.S.S. site.

    Parameters
    ----------
    tel_id : int
        Telescope id of the single telescope.
    position : astropy.units.Quantity
        Ground position (x, y, z) relative to the array reference point.
    """
    return SubarrayDescription(
        name=f"{TELESCOPE_NAME}-single",
        tel_positions={tel_id: u.Quantity(position, u.m)},
        tel_descriptions={tel_id: telescope_description()},
        reference_location=HESS_SITE,
    )


def hess_atmosphere_profile():
    """Exponential atmosphere (8.0 km scale height), a toy stand-in for the H.E.S.S. profile."""
    return ExponentialAtmosphereDensityProfile(
        scale_height=8.0 * u.km, scale_density=0.00125 * u.g / u.cm**3
    )
