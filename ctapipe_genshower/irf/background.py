"""Background rates (2D offset-symmetric and 3D lon/lat) and their GADF HDUs.

The 2D rate is pyirf's ``background_2d``; pyirf 0.13 has no 3D version, so it is built
here from the same pieces: a weighted histogram in reconstructed energy and the
reconstructed ``TelescopeFrame``/nominal FoV coordinates (ctapipe's ``reco_fov_lon``,
``reco_fov_lat``, GADF sign convention), divided by energy bin width, pyirf's
``rectangle_solid_angle`` and the observation time.
"""

import astropy.units as u
import numpy as np
from astropy.io.fits import BinTableHDU
from astropy.table import QTable
from astropy.time import Time
from pyirf.binning import split_bin_lo_hi
from pyirf.io.gadf import DEFAULT_HEADER, GADF_BACKGROUND_UNIT, create_background_2d_hdu
from pyirf.irf import background_2d
from pyirf.irf.background import BACKGROUND_UNIT
from pyirf.utils import cone_solid_angle, rectangle_solid_angle

__all__ = [
    "BACKGROUND_UNIT",
    "background_2d",
    "background_2d_with_errors",
    "background_3d",
    "create_background_2d_hdu",
    "create_background_3d_hdu",
    "read_background_2d_hdu",
    "weighted_histogram",
]


def weighted_histogram(values, bins, weights):
    """Sum of weights and of squared weights in N-dimensional bins.

    Parameters
    ----------
    values : list of astropy.units.Quantity
        One array per dimension.
    bins : list of astropy.units.Quantity
        Bin edges per dimension (converted to the unit of the values).
    weights : numpy.ndarray

    Returns
    -------
    sum_w, sum_w2 : numpy.ndarray
    """
    sample = [v.to_value(b.unit) for v, b in zip(values, bins, strict=True)]
    edges = [b.value for b in bins]
    sum_w, _ = np.histogramdd(sample, bins=edges, weights=weights)
    sum_w2, _ = np.histogramdd(sample, bins=edges, weights=np.asarray(weights) ** 2)
    return sum_w, sum_w2


@u.quantity_input(reco_energy_bins=u.TeV, fov_offset_bins=u.deg, obs_time=u.s)
def background_2d_with_errors(events, reco_energy_bins, fov_offset_bins, obs_time):
    """pyirf's ``background_2d`` plus its statistical error and effective event counts.

    Returns
    -------
    rate, error : astropy.units.Quantity
        ``(n_energy, n_offset)`` in ``1 / (s TeV sr)``; the error is ``sqrt(sum w**2)``
        scaled like the rate.
    n_events : numpy.ndarray
        Raw number of events per bin.
    """
    rate = background_2d(events, reco_energy_bins, fov_offset_bins, obs_time)
    _, sum_w2 = weighted_histogram(
        [events["reco_energy"], events["reco_source_fov_offset"]],
        [reco_energy_bins, fov_offset_bins],
        events["weight"],
    )
    n_events, _ = weighted_histogram(
        [events["reco_energy"], events["reco_source_fov_offset"]],
        [reco_energy_bins, fov_offset_bins],
        np.ones(len(events)),
    )
    norm = (
        np.diff(reco_energy_bins)[:, np.newaxis]
        * np.diff(cone_solid_angle(fov_offset_bins))[np.newaxis, :]
        * obs_time
    )
    error = (np.sqrt(sum_w2) / norm).to(BACKGROUND_UNIT)
    return rate, error, n_events.astype(int)


@u.quantity_input(reco_energy_bins=u.TeV, fov_lon_bins=u.deg, fov_lat_bins=u.deg, obs_time=u.s)
def background_3d(events, reco_energy_bins, fov_lon_bins, fov_lat_bins, obs_time):
    """Background rate in reconstructed energy and FoV longitude/latitude.

    Parameters
    ----------
    events : astropy.table.QTable
        Selected background events with ``reco_energy``, ``reco_fov_lon``,
        ``reco_fov_lat`` and ``weight``.
    reco_energy_bins, fov_lon_bins, fov_lat_bins : astropy.units.Quantity
        Bin edges.
    obs_time : astropy.units.Quantity
        Observation time the weights were computed for.

    Returns
    -------
    astropy.units.Quantity
        ``(n_energy, n_lon, n_lat)`` in ``1 / (s TeV sr)``.
    """
    sum_w, _ = weighted_histogram(
        [events["reco_energy"], events["reco_fov_lon"], events["reco_fov_lat"]],
        [reco_energy_bins, fov_lon_bins, fov_lat_bins],
        events["weight"],
    )
    lon_lo, lon_hi = fov_lon_bins[:-1], fov_lon_bins[1:]
    lat_lo, lat_hi = fov_lat_bins[:-1], fov_lat_bins[1:]
    solid_angle = rectangle_solid_angle(
        lon_lo[:, np.newaxis], lon_hi[:, np.newaxis], lat_lo[np.newaxis, :], lat_hi[np.newaxis, :]
    )
    rate = sum_w / np.diff(reco_energy_bins)[:, np.newaxis, np.newaxis]
    return (rate / solid_angle[np.newaxis] / obs_time).to(BACKGROUND_UNIT)


@u.quantity_input(
    background_3d=GADF_BACKGROUND_UNIT,
    reco_energy_bins=u.TeV,
    fov_lon_bins=u.deg,
    fov_lat_bins=u.deg,
)
def create_background_3d_hdu(
    background_3d,
    reco_energy_bins,
    fov_lon_bins,
    fov_lat_bins,
    extname="BACKGROUND",
    fov_alignment="ALTAZ",
    **header_cards,
):
    """GADF ``BKG_3D`` HDU, written like pyirf's ``create_background_2d_hdu``.

    Parameters
    ----------
    background_3d : astropy.units.Quantity
        Shape ``(n_energy, n_lon, n_lat)``.
    reco_energy_bins, fov_lon_bins, fov_lat_bins : astropy.units.Quantity
        Bin edges.
    extname : str
    fov_alignment : str
        ``FOVALIGN`` header card (``ALTAZ``: lon/lat aligned with the horizontal frame).
    **header_cards
        Further header cards.
    """
    bkg = QTable()
    bkg["ENERG_LO"], bkg["ENERG_HI"] = split_bin_lo_hi(reco_energy_bins[np.newaxis, :].to(u.TeV))
    bkg["DETX_LO"], bkg["DETX_HI"] = split_bin_lo_hi(fov_lon_bins[np.newaxis, :].to(u.deg))
    bkg["DETY_LO"], bkg["DETY_HI"] = split_bin_lo_hi(fov_lat_bins[np.newaxis, :].to(u.deg))
    # transpose as FITS uses the opposite dimension order
    bkg["BKG"] = background_3d.T[np.newaxis, ...].to(GADF_BACKGROUND_UNIT)

    header = DEFAULT_HEADER.copy()
    header["HDUCLAS1"] = "RESPONSE"
    header["HDUCLAS2"] = "BKG"
    header["HDUCLAS3"] = "FULL-ENCLOSURE"
    header["HDUCLAS4"] = "BKG_3D"
    header["FOVALIGN"] = fov_alignment
    header["DATE"] = Time.now().utc.iso
    idx = bkg.colnames.index("BKG") + 1
    header[f"CREF{idx}"] = "(ENERG_LO:ENERG_HI,DETX_LO:DETX_HI,DETY_LO:DETY_HI)"
    for key, value in header_cards.items():
        header[key] = value
    return BinTableHDU(bkg, header=header, name=extname)


def read_background_2d_hdu(hdu):
    """Read a GADF ``BKG_2D`` HDU back: ``(rate, reco_energy_bins, fov_offset_bins)``."""
    table = QTable.read(hdu)
    energy_bins = np.append(table["ENERG_LO"][0], table["ENERG_HI"][0][-1])
    offset_bins = np.append(table["THETA_LO"][0], table["THETA_HI"][0][-1])
    rate = table["BKG"][0].T.to(BACKGROUND_UNIT)
    return rate, energy_bins, offset_bins
