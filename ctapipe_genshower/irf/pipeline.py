"""The background pipeline: proton DL2 samples -> weighted, selected events -> GADF HDUs.

The steps of ``ctapipe-genshower-background`` between its options and its output files:

1. :func:`read_samples`: one :class:`~ctapipe_genshower.irf.samples.ProtonSample` per DL2
   file, with a warning where a sample's thrown phase space does not cover the binning;
2. :func:`~ctapipe_genshower.irf.samples.combine_samples` stacks them;
   :func:`weight_and_select` gives every event its balance-heuristic weight for the target
   spectrum and applies the G/H cuts of ``ctapipe-optimize-event-selection``;
3. :func:`background_hdus`: the 2D and 3D background rates (optionally smoothed over the
   FoV) and the proton effective area as GADF HDUs; :func:`table_counts` the raw events per
   bin of both tables, for the sparse-table warnings.
"""

import astropy.units as u
import numpy as np
from pyirf.io import create_aeff2d_hdu
from tqdm.auto import tqdm

from .background import (
    background_2d_smoothed,
    background_3d,
    create_background_2d_hdu,
    create_background_3d_hdu,
    weighted_histogram,
)
from .compare import proton_effective_area
from .samples import check_support, select_gh
from .weights import balance_heuristic_weights

__all__ = ["background_hdus", "read_samples", "table_counts", "weight_and_select"]


@u.quantity_input(reco_energy_bins=u.TeV, fov_offset_bins=u.deg)
def read_samples(reader, files, reco_energy_bins, fov_offset_bins, label="input", progress=False):
    """Read every DL2 file as one sample and warn where it does not cover the binning.

    Parameters
    ----------
    reader : ctapipe_genshower.irf.samples.DL2SampleReader
    files : list of path-like
    reco_energy_bins, fov_offset_bins : astropy.units.Quantity
        The binning of the background; each sample's thrown energies and viewcone are
        checked against its range (:func:`~ctapipe_genshower.irf.samples.check_support`).
    label : str
        Name of the set of files in the progress bar.
    progress : bool
        Show a progress bar.

    Returns
    -------
    list of ctapipe_genshower.irf.samples.ProtonSample
    """
    samples = []
    for path in tqdm(files, desc=f"reading {label}", disable=not progress):
        sample = reader.read(path)
        check_support(sample, (reco_energy_bins[0], reco_energy_bins[-1]), fov_offset_bins[-1])
        samples.append(sample)
    return samples


@u.quantity_input(obs_time=u.s)
def weight_and_select(events, components, target_spectrum, obs_time, gh_cuts=None):
    """Balance-heuristic weights for a target spectrum, then the G/H cuts.

    Parameters
    ----------
    events : astropy.table.QTable
        Stacked events of all samples; the column ``weight`` is set in place.
    components : list of ctapipe_genshower.irf.weights.SimulatedComponent
        How all samples were thrown.
    target_spectrum : callable
        A pyirf spectrum (``energy -> flux``).
    obs_time : astropy.units.Quantity
        Observation time the weights are normalised to.
    gh_cuts : astropy.table.QTable, optional
        pyirf-style binned G/H cuts (``gh_score >= cut`` per reco-energy bin).

    Returns
    -------
    events : astropy.table.QTable
        The events that pass the cuts, with ``weight``.
    n_outside : int
        Events (before cuts) outside every sample's thrown support: their weight is 0.
    """
    events["weight"] = balance_heuristic_weights(
        events["true_energy"],
        events["true_core_distance"],
        events["true_source_fov_offset"],
        components,
        target_spectrum,
        obs_time,
    )
    n_outside = int(np.count_nonzero(events["weight"] == 0))
    if gh_cuts is not None:
        events = events[select_gh(events, gh_cuts)]
    return events, n_outside


@u.quantity_input(
    reco_energy_bins=u.TeV,
    fov_offset_bins=u.deg,
    fov_lonlat_bins=u.deg,
    true_energy_bins=u.TeV,
    obs_time=u.s,
    fov_smoothing=u.deg,
)
def background_hdus(
    events,
    components,
    reco_energy_bins,
    fov_offset_bins,
    fov_lonlat_bins,
    true_energy_bins,
    obs_time,
    suffix="",
    fov_smoothing=0 * u.deg,
):
    """The IRF HDUs of one weighted, selected proton sample.

    Parameters
    ----------
    events : astropy.table.QTable
        Output of :func:`weight_and_select`.
    components : list of ctapipe_genshower.irf.weights.SimulatedComponent
        How the sample was thrown (for the proton effective area).
    reco_energy_bins, fov_offset_bins : astropy.units.Quantity
        Binning of the 2D background.
    fov_lonlat_bins : astropy.units.Quantity
        Bin edges of both FoV axes of the 3D background.
    true_energy_bins : astropy.units.Quantity
        Binning of the proton effective area.
    obs_time : astropy.units.Quantity
        Observation time the weights were computed for.
    suffix : str
        Appended to the HDU names (e.g. ``" REFERENCE"``).
    fov_smoothing : astropy.units.Quantity
        Gaussian sigma of the FoV smoothing of both background tables
        (:func:`~ctapipe_genshower.irf.background.fov_smoothed_rate`; 0: none), written to
        the header card ``FOVSMOOT`` [deg].

    Returns
    -------
    list of astropy.io.fits.BinTableHDU
        ``BACKGROUND`` (GADF ``BKG_2D``), ``BACKGROUND_3D`` (``BKG_3D``) and
        ``EFFECTIVE AREA PROTONS`` (``AEFF_2D`` with one offset bin over the viewcone),
        each name followed by ``suffix``.
    """
    rate = background_2d_smoothed(
        events, reco_energy_bins, fov_offset_bins, obs_time, fov_smoothing
    )
    rate_3d = background_3d(
        events, reco_energy_bins, fov_lonlat_bins, fov_lonlat_bins, obs_time, fov_smoothing
    )
    area, _ = proton_effective_area(events, components, true_energy_bins)
    viewcone = u.Quantity([0 * u.deg, max(c.thrown.max_viewcone for c in components)])
    smoothing = {"FOVSMOOT": (fov_smoothing.to_value(u.deg), "FoV smoothing sigma [deg]")}
    return [
        create_background_2d_hdu(
            rate, reco_energy_bins, fov_offset_bins, extname="BACKGROUND" + suffix, **smoothing
        ),
        create_background_3d_hdu(
            rate_3d,
            reco_energy_bins,
            fov_lonlat_bins,
            fov_lonlat_bins,
            extname="BACKGROUND_3D" + suffix,
            **smoothing,
        ),
        create_aeff2d_hdu(
            area[:, np.newaxis],
            true_energy_bins,
            viewcone,
            extname="EFFECTIVE AREA PROTONS" + suffix,
            point_like=False,
        ),
    ]


@u.quantity_input(reco_energy_bins=u.TeV, fov_offset_bins=u.deg, fov_lonlat_bins=u.deg)
def table_counts(events, reco_energy_bins, fov_offset_bins, fov_lonlat_bins):
    """Raw (unweighted) events per bin of the tables :func:`background_hdus` writes.

    Returns
    -------
    dict
        ``{"BACKGROUND": (n_energy, n_offset), "BACKGROUND_3D": (n_energy, n_lon, n_lat)}``
        integer arrays.
    """
    ones = np.ones(len(events))
    n_2d, _ = weighted_histogram(
        [events["reco_energy"], events["reco_source_fov_offset"]],
        [reco_energy_bins, fov_offset_bins],
        ones,
    )
    n_3d, _ = weighted_histogram(
        [events["reco_energy"], events["reco_fov_lon"], events["reco_fov_lat"]],
        [reco_energy_bins, fov_lonlat_bins, fov_lonlat_bins],
        ones,
    )
    return {"BACKGROUND": n_2d.astype(int), "BACKGROUND_3D": n_3d.astype(int)}
