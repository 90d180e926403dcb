"""Peak-time residuals of cleaned pixels around ctapipe's timing fit, from DL1 files."""

import sys

import astropy.units as u
import numpy as np
from astropy.table import join
from ctapipe.coordinates import TelescopeFrame
from ctapipe.image import camera_to_shower_coordinates
from ctapipe.instrument import SubarrayDescription
from ctapipe.io import read_table


def load(path, tel_id=1):
    """Images joined with parameters, and the pixel coordinates in deg (telescope frame)."""
    subarray = SubarrayDescription.from_hdf(path)
    geom = subarray.tel[tel_id].camera.geometry.transform_to(TelescopeFrame())
    images = read_table(path, f"/dl1/event/telescope/images/tel_{tel_id:03d}")
    parameters = read_table(path, f"/dl1/event/telescope/parameters/tel_{tel_id:03d}")
    table = join(images, parameters, keys=["obs_id", "event_id", "tel_id"])
    return table, geom.pix_x.to_value(u.deg), geom.pix_y.to_value(u.deg)


def fit_columns(table):
    """Hillas centroid and axis, timing slope and intercept, as float arrays."""
    return (
        u.Quantity(table["hillas_fov_lon"]).to_value(u.deg),
        u.Quantity(table["hillas_fov_lat"]).to_value(u.deg),
        u.Quantity(table["hillas_psi"]).to_value(u.rad),
        u.Quantity(table["timing_slope"]).to_value(1 / u.deg),
        np.asarray(table["timing_intercept"], dtype=float),
    )


def image_residuals(table, i, pix_x, pix_y, columns):
    """Cleaning mask and residuals of the cleaned pixels of image ``i`` (None: no fit)."""
    lon, lat, psi, slope, intercept = columns
    mask = np.asarray(table["image_mask"][i], bool)
    if not mask.any() or not np.isfinite(slope[i]):
        return mask, None
    longitudinal, _ = camera_to_shower_coordinates(pix_x[mask], pix_y[mask], lon[i], lat[i], psi[i])
    peak_time = np.asarray(table["peak_time"][i])[mask]
    return mask, peak_time - (slope[i] * longitudinal + intercept[i])


def residuals(table, pix_x, pix_y):
    """(charge, residual, image index) of every cleaned pixel of images with a timing fit."""
    columns = fit_columns(table)
    charge, residual, index = [], [], []
    for i in range(len(table)):
        mask, r = image_residuals(table, i, pix_x, pix_y, columns)
        if r is None:
            continue
        charge.append(np.asarray(table["image"][i])[mask])
        residual.append(r)
        index.append(np.full(len(r), i))
    return np.concatenate(charge), np.concatenate(residual), np.concatenate(index)


if __name__ == "__main__":
    for path in sys.argv[1:]:
        table, pix_x, pix_y = load(path)
        _, r, _ = residuals(table, pix_x, pix_y)
        print(path, len(table), len(r), np.median(np.abs(r)), np.mean(np.abs(r) > 5))
