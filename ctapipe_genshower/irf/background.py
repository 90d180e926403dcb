"""Background rates (2D offset-symmetric and 3D lon/lat) and their GADF HDUs.

The 2D rate is pyirf's ``background_2d``; pyirf 0.13 has no 3D version, so it is built
here from the same pieces: a weighted histogram in reconstructed energy and the
reconstructed ``TelescopeFrame``/nominal FoV coordinates (ctapipe's ``reco_fov_lon``,
``reco_fov_lat``, GADF sign convention), divided by energy bin width, pyirf's
``rectangle_solid_angle`` and the observation time.

Sparse tables: :func:`bin_occupancy` counts the empty and low-statistics bins of a table and
:func:`fov_smoothed_rate` is the one remedy built in (``BackgroundTool.fov_smoothing``): the
weight of every FoV bin is shared with its neighbours by a Gaussian kernel times their solid
angles, in each reco-energy bin, keeping the total rate of the energy bin.
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
    "OCCUPANCY_QUANTILE",
    "background_2d",
    "background_2d_smoothed",
    "background_2d_with_errors",
    "background_3d",
    "bin_occupancy",
    "create_background_2d_hdu",
    "create_background_3d_hdu",
    "fov_kernel",
    "fov_smoothed_rate",
    "read_background_2d_hdu",
    "weighted_histogram",
]

#: ``bin_occupancy`` estimates the statistics for enough events in this fraction of the
#: non-empty bins.
OCCUPANCY_QUANTILE = 0.9


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
def background_3d(
    events, reco_energy_bins, fov_lon_bins, fov_lat_bins, obs_time, fov_smoothing=0 * u.deg
):
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
    fov_smoothing : astropy.units.Quantity
        Gaussian sigma of :func:`fov_smoothed_rate` along lon and lat (0: none).

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
    per_sr = fov_smoothed_rate(
        sum_w, solid_angle, [_centres(fov_lon_bins), _centres(fov_lat_bins)], fov_smoothing
    )
    rate = per_sr / np.diff(reco_energy_bins)[:, np.newaxis, np.newaxis]
    return (rate / obs_time).to(BACKGROUND_UNIT)


@u.quantity_input(reco_energy_bins=u.TeV, fov_offset_bins=u.deg, obs_time=u.s)
def background_2d_smoothed(events, reco_energy_bins, fov_offset_bins, obs_time, fov_smoothing):
    """pyirf's ``background_2d`` averaged over FoV-offset bins with :func:`fov_smoothed_rate`.

    With ``fov_smoothing = 0`` this is pyirf's ``background_2d`` itself.
    """
    if fov_smoothing <= 0 * u.deg:
        return background_2d(events, reco_energy_bins, fov_offset_bins, obs_time)
    sum_w, _ = weighted_histogram(
        [events["reco_energy"], events["reco_source_fov_offset"]],
        [reco_energy_bins, fov_offset_bins],
        events["weight"],
    )
    solid_angle = np.diff(cone_solid_angle(fov_offset_bins))
    per_sr = fov_smoothed_rate(sum_w, solid_angle, [_centres(fov_offset_bins)], fov_smoothing)
    rate = per_sr / np.diff(reco_energy_bins)[:, np.newaxis]
    return (rate / obs_time).to(BACKGROUND_UNIT)


def _centres(edges):
    return 0.5 * (edges[:-1] + edges[1:])


@u.quantity_input(centres=u.deg, sigma=u.deg)
def fov_kernel(centres, sigma):
    """Gaussian weights ``exp(-(c_i - c_j)**2 / (2 sigma**2))`` between bin centres.

    Returns
    -------
    numpy.ndarray
        ``(n, n)``; the identity for ``sigma = 0``.
    """
    if sigma <= 0 * u.deg:
        return np.eye(len(centres))
    d = (centres[:, np.newaxis] - centres[np.newaxis, :]).to_value(u.deg)
    return np.exp(-0.5 * (d / sigma.to_value(u.deg)) ** 2)


@u.quantity_input(solid_angle=u.sr, sigma=u.deg)
def fov_smoothed_rate(sum_w, solid_angle, fov_centres, sigma):
    """Weighted counts per solid angle, spread over neighbouring FoV bins, totals conserved.

    In every energy bin (axis 0), the weight ``S_j`` of each FoV bin ``j`` is shared among
    the FoV bins ``i`` in proportion to ``K_ij Omega_i``: Gaussian weights ``K``
    (:func:`fov_kernel`, separable over the FoV axes) times the bin solid angles ``Omega``,
    i.e. ``rate_i = sum_j K_ij S_j / sum_k K_kj Omega_k``. The sum of weights of every energy
    bin is kept exactly (the FoV edges do not lose rate), empty bins get rate from their
    neighbours, a uniform rate stays (nearly) uniform away from the edges, and ``sigma = 0`` gives
    ``S / Omega``. There is no smoothing in energy (the rate falls by decades).

    Parameters
    ----------
    sum_w : numpy.ndarray
        ``(n_energy, *fov_shape)`` sums of weights.
    solid_angle : astropy.units.Quantity
        ``fov_shape`` solid angles of the FoV bins.
    fov_centres : list of astropy.units.Quantity
        Bin centres per FoV axis (one for offset, two for lon/lat).
    sigma : astropy.units.Quantity
        Gaussian sigma.

    Returns
    -------
    astropy.units.Quantity
        ``(n_energy, *fov_shape)`` in ``1 / sr``.
    """
    kernels = [fov_kernel(centres, sigma) for centres in fov_centres]

    def apply(values, first_axis):
        for axis, kernel in enumerate(kernels, start=first_axis):
            values = np.moveaxis(np.tensordot(kernel, values, axes=([1], [axis])), 0, axis)
        return values

    omega = solid_angle.to_value(u.sr)
    share = apply(omega, 0)  # sum_k K_kj Omega_k (K is symmetric)
    return apply(np.asarray(sum_w, dtype=float) / share, 1) / u.sr


def bin_occupancy(n_events, min_events=10, quantile=OCCUPANCY_QUANTILE):
    """How sparse a table is, from its raw event counts per bin.

    Parameters
    ----------
    n_events : numpy.ndarray
        Raw (unweighted) events per bin.
    min_events : int
        Bins with fewer events (but at least one) count as low statistics.
    quantile : float
        The statistics factor is for ``min_events`` in this fraction of the non-empty bins.

    Returns
    -------
    dict
        ``n_bins``, ``n_empty``, ``n_low`` (``0 < n < min_events``), and ``scale``: by how
        much the statistics would have to grow for ``min_events`` in the fraction
        ``quantile`` of the non-empty bins (``min_events`` over the ``1 - quantile``
        quantile of their counts; nan for an empty table). The non-empty bins of the sample
        at hand stand in for the populated ones, so it is an estimate.
    """
    n = np.asarray(n_events)
    filled = n[n > 0]
    scale = float("nan")
    if filled.size:
        scale = max(1.0, min_events / np.quantile(filled, 1 - quantile))
    return {
        "n_bins": int(n.size),
        "n_empty": int(np.count_nonzero(n == 0)),
        "n_low": int(np.count_nonzero((n > 0) & (n < min_events))),
        "scale": scale,
    }


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
