"""Read DL2 proton files (simulated or generated) with their simulation bookkeeping.

A *sample* is one or more DL2 files from ``ctapipe-process``/``ctapipe-apply-models``:
the preselected events (ctapipe's ``DL2EventPreprocessor`` renaming and quality query,
so the same configuration as ``ctapipe-compute-irf`` applies) and the thrown showers of
every run (``obs_id``), read from ``/configuration/simulation/run`` and
``/simulation/service/shower_distribution``. Runs with identical settings are merged into
one ``SimulatedComponent``; different settings stay separate for the balance heuristic.
:func:`check_dl2_file` tells in one line, before anything is read, why a file is not a DL2
file that can be used (missing, empty, a model file, not HDF5, DL1 only, no simulation
bookkeeping). :func:`selection_mismatch` tells when two sets of samples were selected at
different image sizes (a generator makes only images passing its training selection).
"""

import logging
import operator
from dataclasses import dataclass, field
from pathlib import Path

import astropy.units as u
import numpy as np
import tables
from astropy.coordinates import AltAz, SkyCoord
from astropy.table import QTable, vstack
from ctapipe.coordinates import NominalFrame
from ctapipe.core import Component
from ctapipe.core.expression_engine import ExpressionError
from ctapipe.core.traits import Float, Integer
from ctapipe.io import TableLoader
from ctapipe.io.dl2_tables_preprocessing import DL2EventPreprocessor, DL2EventQualityQuery
from pyirf.cuts import evaluate_binned_cut
from pyirf.utils import calculate_source_fov_offset, calculate_theta
from tables import NoSuchNodeError

from ..checkpoint import claims_file
from ..thrown import ThrownDistribution
from .weights import SimulatedComponent, merge_components

__all__ = [
    "POINTING_TOLERANCE",
    "DL2SampleReader",
    "ProtonSample",
    "check_dl2_file",
    "check_pointing",
    "check_support",
    "combine_samples",
    "largest_image_sizes",
    "select_gh",
    "selection_mismatch",
]

log = logging.getLogger(__name__)

#: Allowed pointing difference between the runs, files and samples that are mixed.
POINTING_TOLERANCE = 0.05 * u.deg

#: The subarray DL2 tables, ``<group>/<kind>/<algorithm>``; ``ctapipe-apply-models`` writes
#: the classifier under ``particle_type``, ctapipe's ``DataWriter`` under ``classification``
#: (``TableLoader`` reads every kind).
DL2_SUBARRAY_GROUP = "/dl2/event/subarray"
#: The ``DL2EventPreprocessor`` traits naming the algorithms whose DL2 tables are needed.
DL2_PREFIX_TRAITS = ("energy_reconstructor", "geometry_reconstructor", "gammaness_classifier")
SIMULATION_CONFIG_TABLE = "/configuration/simulation/run"

#: Shower columns kept beyond ctapipe's DL2 IRF schema (for the thrown-area support).
_EXTRA_COLUMNS = ["true_core_x", "true_core_y"]
#: The telescope image parameters ``ctapipe-process --write-parameters`` writes and
#: ``ctapipe-apply-models`` keeps: the image sizes of :func:`largest_image_sizes`.
DL1_PARAMETERS_GROUP = "/dl1/event/telescope/parameters"
#: :func:`selection_mismatch` reports a set of which more than this share (at least
#: ``5 / n`` for ``n`` events of the other set, the chance share below the smallest of ``n``)
#: lies below the other set's smallest image.
MISMATCH_SHARE = 0.05


@dataclass
class ProtonSample:
    """Preselected DL2 events of one sample and the showers thrown for it."""

    name: str
    events: QTable
    components: list
    n_raw_events: int
    pointing_alt: u.Quantity
    pointing_az: u.Quantity
    files: list = field(default_factory=list)
    #: Largest ``hillas_intensity`` of each event's images (NaN: no DL1 parameters in the file).
    image_sizes: np.ndarray = None

    @property
    def n_showers(self):
        return sum(c.n_showers for c in self.components)


class DL2SampleReader(Component):
    """Reads DL2 files into a ``ProtonSample``.

    Configure ``DL2EventPreprocessor`` and ``DL2EventQualityQuery`` as for ctapipe's IRF tools.
    """

    classes = [DL2EventPreprocessor, DL2EventQualityQuery]

    chunk_size = Integer(100_000, help="Events read at once").tag(config=True)
    pointing_tolerance = Float(
        POINTING_TOLERANCE.to_value(u.deg), help="Allowed pointing difference between runs [deg]"
    ).tag(config=True)

    def __init__(self, config=None, parent=None, **kwargs):
        super().__init__(config=config, parent=parent, **kwargs)
        # kept in a dict, not as an attribute: Component.get_current_config would walk into
        # it and the provenance log cannot serialise its ``output_table_schema`` Columns
        # (ctapipe's own DL2EventLoader is held in a dict by ctapipe-compute-irf likewise).
        self._parts = {"preprocessor": DL2EventPreprocessor(parent=self)}

    @property
    def preprocessor(self):
        """ctapipe's ``DL2EventPreprocessor`` (renaming, quality query)."""
        return self._parts["preprocessor"]

    def set_quality_criteria(self, quality_criteria):
        """Use these quality criteria (e.g. those stored with optimised cuts)."""
        self.preprocessor.quality_query = DL2EventQualityQuery(
            parent=self.preprocessor, quality_criteria=list(quality_criteria)
        )

    def read(self, paths, name=None):
        """Read one sample from one or several DL2 files.

        Parameters
        ----------
        paths : path-like or list of path-like
        name : str, optional
            Label of the sample (default: the first file name).

        Returns
        -------
        ProtonSample
        """
        paths = [Path(p) for p in (paths if isinstance(paths, list | tuple) else [paths])]
        tables, components, pointings, n_raw, sizes = [], [], [], 0, []
        for path in paths:
            check_dl2_file(path, self.preprocessor)
        for path in paths:
            events, comps, pointing, n = self._read_file(path)
            sizes.append(largest_image_sizes(path, events["obs_id"], events["event_id"]))
            tables.append(events)
            components.extend(comps)
            pointings.append(pointing)
            n_raw += n
        check_pointing(pointings, [str(p) for p in paths], self.pointing_tolerance * u.deg)
        alt, az = pointings[0]
        components = merge_components(
            SimulatedComponent(_with_pointing(c.thrown, alt, az), c.n_showers) for c in components
        )
        events = vstack(tables, join_type="exact", metadata_conflicts="silent")
        return ProtonSample(
            name=name or paths[0].name,
            events=events,
            components=components,
            n_raw_events=n_raw,
            pointing_alt=alt,
            pointing_az=az,
            files=[str(p) for p in paths],
            image_sizes=np.concatenate(sizes),
        )

    def _read_file(self, path):
        epp = self.preprocessor
        opts = dict(dl2=True, simulated=True, observation_info=True)
        with TableLoader(path, parent=self, **opts) as loader:
            components = _read_components(loader, path)
            chunks, n_raw = [_empty_table(epp)], 0
            for _, _, events in loader.read_subarray_events_chunked(self.chunk_size, **opts):
                n_raw += len(events)
                try:
                    selected = events[epp.quality_query.get_table_mask(events)]
                except ExpressionError as err:
                    raise ValueError(f"{path}: quality criteria: {err}") from None
                try:
                    normalised = epp.normalise_column_names(selected)
                except ValueError as err:
                    raise ValueError(f"{path}: {err}") from None
                for name in _EXTRA_COLUMNS:
                    normalised[name] = u.Quantity(selected[name])
                chunks.append(_derived_columns(normalised))
        chunks.append(_empty_table(epp))
        events = vstack(chunks, join_type="exact", metadata_conflicts="silent")
        for name in ("obs_id", "event_id"):  # the uint64 schema + int32 file columns stack to float
            events[name] = np.asarray(events[name]).astype(np.uint64)
        events["true_core_distance"] = np.hypot(events["true_core_x"], events["true_core_y"])
        if len(events) > 0:
            pointing = (np.mean(events["pointing_alt"]), np.mean(events["pointing_az"]))
        else:
            pointing = (components[0].thrown.pointing_alt, components[0].thrown.pointing_az)
        self.log.info("%s: %d of %d events pass the quality query", path.name, len(events), n_raw)
        return events, components, pointing, n_raw


def _empty_table(epp):
    table = epp.make_empty_table()
    for name in _EXTRA_COLUMNS:
        table[name] = u.Quantity([], u.m)
    return table


def _with_pointing(thrown, alt, az):
    data = thrown.to_dict()
    data["pointing_alt"] = {"value": float(alt.to_value(u.deg)), "unit": "deg"}
    data["pointing_az"] = {"value": float(az.to_value(u.deg)), "unit": "deg"}
    return ThrownDistribution.from_dict(data)


def _read_components(loader, path):
    try:
        config = QTable(loader.read_simulation_configuration())
    except NoSuchNodeError:
        raise ValueError(
            f"{path}: no simulation configuration table (/configuration/simulation/run); "
            "background weights need simulated (or generated) protons"
        ) from None
    if len(config) == 0:
        raise ValueError(f"{path}: the simulation configuration table is empty")
    try:
        showers = loader.read_shower_distribution()
        n_per_obs = {}
        for row in showers:
            n_per_obs[int(row["obs_id"])] = n_per_obs.get(int(row["obs_id"]), 0) + int(
                row["n_entries"]
            )
    except NoSuchNodeError:
        log.warning(
            "%s: no shower distribution table, using n_showers * shower_reuse of the "
            "simulation configuration",
            path,
        )
        n_per_obs = {
            int(row["obs_id"]): int(row["n_showers"]) * int(row["shower_reuse"]) for row in config
        }
    components = []
    for row in config:
        obs_id = int(row["obs_id"])
        if obs_id not in n_per_obs:
            raise ValueError(f"{path}: no shower distribution for obs_id {obs_id}")
        alt, az = u.Quantity(row["max_alt"], u.deg), u.Quantity(row["max_az"], u.deg)
        thrown = ThrownDistribution.from_simulation_config(row, pointing_alt=alt, pointing_az=az)
        components.append(SimulatedComponent(thrown, n_per_obs[obs_id]))
    return components


def _event_keys(obs_id, event_id):
    return (np.asarray(obs_id, dtype=np.int64) << 32) | np.asarray(event_id, dtype=np.int64)


def largest_image_sizes(path, obs_id, event_id):
    """The largest ``hillas_intensity`` of each event's telescope images in a DL1/DL2 file.

    Parameters
    ----------
    path : path-like
    obs_id, event_id : array-like
        The events.

    Returns
    -------
    numpy.ndarray
        ``(len(obs_id),)`` float64 p.e.; NaN for an event without image parameters (all NaN
        for a file written without them).
    """
    keys = _event_keys(obs_id, event_id)
    sizes = np.full(len(keys), np.nan)
    found_keys, found_sizes = [], []
    with tables.open_file(path, mode="r") as h5:
        if DL1_PARAMETERS_GROUP not in h5:
            return sizes
        for table in h5.get_node(DL1_PARAMETERS_GROUP)._f_iter_nodes("Table"):
            if "hillas_intensity" in table.colnames:
                found_keys.append(_event_keys(table.col("obs_id"), table.col("event_id")))
                found_sizes.append(np.asarray(table.col("hillas_intensity"), dtype=np.float64))
    if not found_keys:
        return sizes
    found_keys, found_sizes = np.concatenate(found_keys), np.concatenate(found_sizes)
    order = np.lexsort((np.nan_to_num(found_sizes, nan=-np.inf), found_keys))
    found_keys, found_sizes = found_keys[order], found_sizes[order]
    last = np.r_[found_keys[1:] != found_keys[:-1], True]  # the largest of each key is last
    unique_keys, largest = found_keys[last], found_sizes[last]
    index = np.clip(np.searchsorted(unique_keys, keys), 0, max(len(unique_keys) - 1, 0))
    match = unique_keys[index] == keys
    sizes[match] = largest[index[match]]
    return sizes


def selection_mismatch(sizes, other_sizes, names=("input", "reference")):
    """A one-line warning when one set holds many events below the other's smallest image.

    A generator only makes events that pass its training selection (e.g. 250 p.e.); a
    simulated reference whose reconstructors do not apply that selection keeps the smaller
    images, and the two backgrounds cannot agree. Each set is compared with the other's
    smallest image: more than :data:`MISMATCH_SHARE` below it (or ``5 / n`` for ``n``
    events in the other set) is reported.

    Parameters
    ----------
    sizes, other_sizes : array-like
        The largest image size of each event (:func:`largest_image_sizes`; NaN: unknown).
    names : tuple of str
        What to call the two sets.

    Returns
    -------
    str or None
        None when the sets agree, or where either has no known sizes.
    """
    sets = [np.asarray(s, dtype=np.float64) for s in (sizes, other_sizes)]
    sets = [s[np.isfinite(s)] for s in sets]
    if any(len(s) == 0 for s in sets):
        return None
    for i, j in ((0, 1), (1, 0)):
        (name, these), (other_name, other) = (names[i], sets[i]), (names[j], sets[j])
        smallest = other.min()
        share = np.mean(these < smallest)
        if share > max(MISMATCH_SHARE, 5 / len(other)):
            return (
                f"{100 * share:.0f} % of the {name} events have no image as large as the"
                f" {other_name}'s smallest ({smallest:.4g} p.e.): the two sets were selected"
                " differently. A generator makes only images that pass its training selection;"
                " apply that selection to the simulated protons too, e.g. in the"
                " reconstructors' quality query (examples/irf/selection_config.py,"
                " docs/irf.md)"
            )
    return None


def _derived_columns(events):
    """ctapipe's derived IRF columns (theta, offsets, GADF FoV lon/lat), weight = 1."""
    events["theta"] = calculate_theta(
        events, assumed_source_az=events["true_az"], assumed_source_alt=events["true_alt"]
    )
    events["true_source_fov_offset"] = calculate_source_fov_offset(events, prefix="true")
    events["reco_source_fov_offset"] = calculate_source_fov_offset(events, prefix="reco")
    pointing = SkyCoord(alt=events["pointing_alt"], az=events["pointing_az"], frame=AltAz())
    reco = SkyCoord(alt=events["reco_alt"], az=events["reco_az"], frame=AltAz())
    reco_nominal = reco.transform_to(NominalFrame(origin=pointing))
    events["reco_fov_lon"] = u.Quantity(-reco_nominal.fov_lon)  # minus for GADF, as ctapipe
    events["reco_fov_lat"] = u.Quantity(reco_nominal.fov_lat)
    events["weight"] = 1.0
    return events


def check_dl2_file(path, preprocessor=None):
    """Raise a one-line error unless ``path`` looks like a usable proton DL2 file.

    Cheap (a header and the table names, no events): the checks ``ctapipe-genshower-background``
    runs on every input in ``setup``, before any work.

    Parameters
    ----------
    path : path-like
    preprocessor : ctapipe.io.dl2_tables_preprocessing.DL2EventPreprocessor, optional
        When given, the DL2 tables of its ``energy_reconstructor``, ``geometry_reconstructor``
        and ``gammaness_classifier`` must exist.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        A directory, an empty file, a model file, not HDF5, no DL2 tables (a DL1 file, or
        other prefixes), no simulation configuration table.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, expected a DL2 file")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: the file is empty, expected a DL2 file")
    if claims_file(path):
        raise ValueError(
            f"{path}: this is a model file, expected a DL2 file (generate events with "
            "ctapipe-process -i MODEL, then ctapipe-apply-models)"
        )
    if not tables.is_hdf5_file(str(path)):
        raise ValueError(f"{path}: not an HDF5 file, expected a DL2 file")
    try:
        with tables.open_file(path, "r") as h5:
            _check_dl2_nodes(h5, path, preprocessor)
    except tables.HDF5ExtError:
        raise ValueError(
            f"{path}: the HDF5 file cannot be opened (truncated or damaged?)"
        ) from None
    except OSError as err:
        raise ValueError(f"{path}: cannot be read ({err.strerror or err})") from None


def _check_dl2_nodes(h5, path, preprocessor):
    if "/dl2" not in h5:
        raise ValueError(
            f"{path}: no DL2 tables (/dl2): a DL1 file? Apply the reconstruction models first "
            "(ctapipe-apply-models)"
        )
    if preprocessor is not None:
        found = []
        if DL2_SUBARRAY_GROUP in h5:
            for kind in h5.get_node(DL2_SUBARRAY_GROUP)._v_groups.values():
                found += [f"{kind._v_name}/{name}" for name in kind._v_children]
        for trait in DL2_PREFIX_TRAITS:
            prefix = getattr(preprocessor, trait)
            if not any(name.endswith(f"/{prefix}") for name in found):
                raise ValueError(
                    f"{path}: no DL2 table {DL2_SUBARRAY_GROUP}/*/{prefix} "
                    f"(DL2EventPreprocessor.{trait}); the file has {sorted(found) or 'none'}"
                )
    if SIMULATION_CONFIG_TABLE not in h5:
        raise ValueError(
            f"{path}: no simulation configuration table ({SIMULATION_CONFIG_TABLE}); "
            "background weights need simulated (or generated) protons"
        )


def check_pointing(pointings, names, tolerance=POINTING_TOLERANCE):
    """Raise ``ValueError`` if pointings ``[(alt, az), ...]`` differ by more than ``tolerance``."""
    alt0, az0 = pointings[0]
    for (alt, az), name in zip(pointings[1:], names[1:], strict=True):
        d_az = (az - az0 + 180 * u.deg) % (360 * u.deg) - 180 * u.deg
        if abs(alt - alt0) > tolerance or abs(d_az) * np.cos(alt0) > tolerance:
            raise ValueError(
                f"Mismatched pointing: {name} has alt={alt.to(u.deg):.3f}, az={az.to(u.deg):.3f}, "
                f"{names[0]} has alt={alt0.to(u.deg):.3f}, az={az0.to(u.deg):.3f}"
            )


def check_support(sample, energy_range, fov_offset_max):
    """Warn for every component of ``sample`` that does not cover the requested range.

    Returns
    -------
    list of str
        The warnings issued.
    """
    messages = []
    e_lo, e_hi = energy_range
    for comp in sample.components:
        t = comp.thrown
        if t.energy_min > e_lo or t.energy_max < e_hi:
            messages.append(
                f"{sample.name}: simulated energies {t.energy_min:.3g}..{t.energy_max:.3g} do not "
                f"cover the requested {e_lo:.3g}..{e_hi:.3g}"
            )
        if t.max_viewcone < fov_offset_max or t.min_viewcone > 0 * u.deg:
            messages.append(
                f"{sample.name}: viewcone {t.min_viewcone:.3g}..{t.max_viewcone:.3g} does not "
                f"cover the requested FoV offset 0..{fov_offset_max:.3g}"
            )
    for msg in messages:
        log.warning(msg)
    return messages


def combine_samples(samples, pointing_tolerance=POINTING_TOLERANCE):
    """Stack the events of several samples (column ``sample``) and collect their components.

    Parameters
    ----------
    samples : list of ProtonSample
    pointing_tolerance : astropy.units.Quantity
        Allowed pointing difference between the samples (``DL2SampleReader.pointing_tolerance``
        in the tool).

    Raises
    ------
    ValueError
        The samples' pointings differ by more than ``pointing_tolerance``.
    """
    tables = []
    for i, sample in enumerate(samples):
        events = sample.events.copy()
        events["sample"] = np.full(len(events), i, dtype=np.int16)
        tables.append(events)
    check_pointing(
        [(s.pointing_alt, s.pointing_az) for s in samples],
        [s.name for s in samples],
        u.Quantity(pointing_tolerance, u.deg),
    )
    alt, az = samples[0].pointing_alt, samples[0].pointing_az
    components = merge_components(
        SimulatedComponent(_with_pointing(c.thrown, alt, az), c.n_showers)
        for s in samples
        for c in s.components
    )
    return vstack(tables, join_type="exact", metadata_conflicts="silent"), components


def select_gh(events, gh_cuts):
    """Boolean mask of events passing pyirf-style binned G/H cuts (``gh_score >= cut``)."""
    if len(events) == 0:
        return np.zeros(0, dtype=bool)
    return evaluate_binned_cut(events["gh_score"], events["reco_energy"], gh_cuts, operator.ge)
