"""The telescope built in code (offline) and the camera <-> square-grid mapping."""

from .grid import CameraGridMapping
from .telescope import (
    HESS_SITE,
    TELESCOPE_NAME,
    flashcam_like_camera,
    flashcam_like_geometry,
    hess_atmosphere_profile,
    single_telescope_subarray,
    telescope_description,
)

__all__ = [
    "HESS_SITE",
    "TELESCOPE_NAME",
    "CameraGridMapping",
    "flashcam_like_camera",
    "flashcam_like_geometry",
    "hess_atmosphere_profile",
    "single_telescope_subarray",
    "telescope_description",
]
