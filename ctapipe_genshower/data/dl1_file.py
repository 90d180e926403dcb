"""ctapipe DL1 HDF5 files with images: table paths, checks, telescope types, bookkeeping.

The one file layer under both readers of DL1 images, the training reader
(:mod:`ctapipe_genshower.data.dl1`) and the validation reader
(:mod:`ctapipe_genshower.validation.samples`):

* the HDF5 paths ctapipe writes (:data:`IMAGES_GROUP`, ...);
* :func:`iter_image_files`: open and check every input up front (exists, is HDF5, has
  images of the chosen telescope type, same camera as the first file, a generated or toy
  run is complete: :func:`check_complete_runs`), one :class:`DL1ImageFile` per file with
  the small tables the readers need;
* :func:`find_telescope_type`, :func:`same_camera`, :func:`check_same_telescope`;
* the simulation bookkeeping: :func:`thrown_showers` (number thrown) and
  :class:`ThrownHistogram` (thrown showers per energy and core-distance bin);
* :func:`telescope_event_chunks`: the readers' columns, chunk by chunk, from ctapipe's
  ``TableLoader``;
* :func:`parameter_columns`: ctapipe's DL1 parameter columns from image-parameter containers.
"""

import struct
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import astropy.units as u
import numpy as np
import tables
from astropy.table import Table
from ctapipe.instrument import SubarrayDescription, TelescopeDescription
from ctapipe.io import read_table

from .training_file import TRAINING_FILE_FORMAT

__all__ = [
    "IMAGES_GROUP",
    "OWN_RUNS",
    "PARAMETERS_GROUP",
    "SHOWER_DISTRIBUTION_TABLE",
    "SIMULATION_CONFIG_TABLE",
    "DL1ImageFile",
    "ThrownHistogram",
    "check_complete_runs",
    "check_same_telescope",
    "find_telescope_type",
    "image_telescopes",
    "iter_image_files",
    "open_dl1",
    "parameter_columns",
    "plain_value",
    "same_camera",
    "telescope_event_chunks",
    "thrown_showers",
]

IMAGES_GROUP = "/dl1/event/telescope/images"
PARAMETERS_GROUP = "/dl1/event/telescope/parameters"
TRUE_IMAGES_GROUP = "/simulation/event/telescope/images"
SIMULATION_CONFIG_TABLE = "/configuration/simulation/run"
SHOWER_DISTRIBUTION_TABLE = "/simulation/service/shower_distribution"

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_DL1_HINT = " (ctapipe-process --write-images or ctapipe-genshower-generate output)"
#: safetensors formats of the package, recognised in a file given where DL1 is expected.
#: The model format is ``checkpoint.FORMAT``, spelled out: data/ sits below checkpoint.
_SAFETENSORS_FORMATS = {
    "ctapipe-genshower-model": "a ctapipe-genshower model file",
    TRAINING_FILE_FORMAT: "a ctapipe-genshower training file",
}
_MAX_SCANNED_HEADER = 1 << 20
#: ``detector_prog_id`` of the runs of the package's sources (``io.diffusion`` and
#: ``io.toymc`` ``DETECTOR_PROG_ID``), spelled out: data/ sits below io/.
OWN_RUNS = {100: "a generated run (DiffusionEventSource)", 101: "a toy run (ToyShowerEventSource)"}


@dataclass
class DL1ImageFile:
    """One checked DL1 file: the images of one telescope type and its simulation tables.

    Attributes
    ----------
    path : pathlib.Path
    subarray : ctapipe.instrument.SubarrayDescription
        The file's subarray.
    telescope : ctapipe.instrument.TelescopeDescription
        The selected telescope type.
    tel_ids : list of int
        Telescopes of that type that have an image table.
    n_images : int
        Rows of those image tables.
    has_parameters : bool
        Whether every one of them also has a DL1 parameter table.
    has_true_images : bool
        Whether every one of them also has a simulated (true) image table.
    simulation_config : astropy.table.Table or None
        ``/configuration/simulation/run`` (one row per run), None if the file has none.
    shower_distribution : astropy.table.Table or None
        ``/simulation/service/shower_distribution``, None if the file has none.
    """

    path: Path
    subarray: SubarrayDescription = field(repr=False)
    telescope: TelescopeDescription
    tel_ids: list
    n_images: int
    has_parameters: bool
    has_true_images: bool = False
    simulation_config: Table | None = field(default=None, repr=False)
    shower_distribution: Table | None = field(default=None, repr=False)

    @property
    def geometry(self):
        """The camera geometry of the selected telescope type."""
        return self.telescope.camera.geometry


@contextmanager
def open_dl1(path):
    """Open a DL1 file for reading, with one-line errors for anything that is not one.

    A missing file, a directory, an empty file, a ctapipe-genshower model or training
    file, any other non-HDF5 file and a damaged (truncated) HDF5 file each get a one-line
    message naming the problem, never HDF5's C backtrace.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    OSError
        ``path`` is not a readable HDF5 file.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Input file not found: {path}")
    if path.is_dir():
        raise OSError(f"{path} is a directory, expected a DL1 HDF5 file")
    if not _has_hdf5_signature(path):
        raise OSError(f"{path} {_describe_non_hdf5(path)}, expected a DL1 HDF5 file{_DL1_HINT}")
    try:
        h5 = tables.open_file(path, mode="r")
    except Exception as err:
        raise OSError(
            f"Cannot open {path} as HDF5 (damaged or truncated file, e.g. from a killed run):"
            f" {_hdf5_reason(err)}"
        ) from None
    with h5:
        yield h5


def _has_hdf5_signature(path):
    """Whether ``path`` starts with the HDF5 signature (at 0 or after a user block)."""
    size = path.stat().st_size
    with path.open("rb") as f:
        offset = 0
        while offset + len(_HDF5_SIGNATURE) <= size:
            f.seek(offset)
            if f.read(len(_HDF5_SIGNATURE)) == _HDF5_SIGNATURE:
                return True
            offset = 512 if offset == 0 else 2 * offset
    return False


def _describe_non_hdf5(path):
    """What a file that is not HDF5 is, as far as the first bytes tell (never raises)."""
    try:
        size = path.stat().st_size
        if size == 0:
            return "is empty (0 bytes)"
        with path.open("rb") as f:
            raw = f.read(8)
            if len(raw) == 8:
                (length,) = struct.unpack("<Q", raw)
                header = f.read(min(length, _MAX_SCANNED_HEADER))
                for fmt, what in _SAFETENSORS_FORMATS.items():
                    if f'"{fmt}"'.encode() in header:
                        return f"is {what}"
    except OSError:
        pass
    return "is not an HDF5 file"


def _hdf5_reason(err):
    """The innermost description of an HDF5 error: one line out of its C backtrace."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    details = [
        line
        for line in lines
        if not line.startswith(("File ", "HDF5-DIAG", "#", "End of HDF5", "HDF5 error"))
    ]
    return details[-2] if len(details) >= 2 else (details[-1] if details else type(err).__name__)


def iter_image_files(paths, telescope_type=None, same_type=False):
    """Open and check DL1 files with images of one telescope type, one after the other.

    Every file must hold images of ``telescope_type`` (:func:`find_telescope_type`) with
    the camera of the first file. A generator, so a caller's own per-file checks run in
    file order between these.

    Parameters
    ----------
    paths : list of path-like
    telescope_type : str or None
        ``str(TelescopeDescription)`` or camera name; None: the only type of each file.
    same_type : bool
        Also require the telescope type of the first file (not only its camera).

    Yields
    ------
    DL1ImageFile

    Raises
    ------
    FileNotFoundError, OSError, ValueError
        On the first file that fails a check; ``ValueError`` if ``paths`` is empty.
    """
    first = None
    for path in map(Path, paths):
        with open_dl1(path) as h5:
            try:
                simulation_config = _optional_table(h5, SIMULATION_CONFIG_TABLE)
                shower_distribution = _optional_table(h5, SHOWER_DISTRIBUTION_TABLE)
                # before the images: an interrupted run may have none yet
                check_complete_runs(path, simulation_config, shower_distribution)
                subarray, telescope, tel_ids = image_telescopes(h5, path, telescope_type)
                images = h5.root[IMAGES_GROUP]
                info = DL1ImageFile(
                    path=path,
                    subarray=subarray,
                    telescope=telescope,
                    tel_ids=tel_ids,
                    n_images=sum(images[f"tel_{t:03d}"].nrows for t in tel_ids),
                    has_parameters=PARAMETERS_GROUP in h5.root
                    and all(f"tel_{t:03d}" in h5.root[PARAMETERS_GROUP] for t in tel_ids),
                    has_true_images=_has_true_images(h5, tel_ids),
                    simulation_config=simulation_config,
                    shower_distribution=shower_distribution,
                )
            except tables.HDF5ExtError as err:
                raise OSError(f"{path}: damaged HDF5 file: {_hdf5_reason(err)}") from None
        if first is None:
            first = info
        elif same_type and str(info.telescope) != str(first.telescope):
            raise ValueError(
                f"{path}: telescope type {info.telescope} differs from {first.telescope}"
            )
        elif not same_camera(first.geometry, info.geometry):
            raise ValueError(
                f"{path}: camera {info.geometry.name} differs from the camera "
                f"{first.geometry.name} of {first.path}"
            )
        yield info
    if first is None:
        raise ValueError("No input files given")


def check_complete_runs(path, simulation_config, shower_distribution):
    """Refuse a run of the package's sources that lacks its shower distribution.

    ctapipe's DataWriter writes ``/simulation/service/shower_distribution`` only when a run
    ends, while ``/configuration/simulation/run`` (with the full ``n_showers`` requested) is
    written at its start: a generated or toy run without its distribution was interrupted
    (Ctrl-C, a crash, a time limit), and its thrown-shower count would mis-normalise any
    efficiency or IRF built from it. Other simulations (sim_telarray files without a
    histogram) are left to the readers' fallbacks.

    Parameters
    ----------
    path : path-like
        The file, for the message.
    simulation_config, shower_distribution : astropy.table.Table or None
        The file's ``/configuration/simulation/run`` and shower-distribution tables.

    Raises
    ------
    ValueError
        Naming the file and the run.
    """
    config, dist = simulation_config, shower_distribution
    if config is None or "detector_prog_id" not in config.colnames:
        return
    complete = set()
    if dist is not None and len(dist):
        complete = {int(o) for o, n in zip(dist["obs_id"], dist["n_entries"], strict=True) if n > 0}
    for row in config:
        what = OWN_RUNS.get(int(row["detector_prog_id"]))
        if what is not None and int(row["obs_id"]) not in complete:
            raise ValueError(
                f"{path} holds an incomplete (interrupted) run: obs_id {row['obs_id']} is"
                f" {what} without its shower distribution ({SHOWER_DISTRIBUTION_TABLE}, written"
                " only when a run ends), so its thrown-shower count is not known; produce the"
                " run again"
            )


def _optional_table(h5, table_path):
    return read_table(h5, table_path) if table_path in h5.root else None


def image_telescopes(h5, path, telescope_type):
    """Check an open DL1 file for images of one telescope type.

    Returns
    -------
    subarray : ctapipe.instrument.SubarrayDescription
    telescope : ctapipe.instrument.TelescopeDescription
    tel_ids : list of int
        Telescopes of that type that have an image table.
    """
    if IMAGES_GROUP not in h5.root:
        raise ValueError(
            f"{path} has no DL1 images ({IMAGES_GROUP}); run ctapipe-process with --write-images"
        )
    subarray = SubarrayDescription.from_hdf(h5)
    telescope = find_telescope_type(subarray, telescope_type, path)
    tel_ids = [
        t
        for t in sorted(subarray.get_tel_ids_for_type(telescope))
        if f"tel_{t:03d}" in h5.root[IMAGES_GROUP]
    ]
    if not tel_ids:
        raise ValueError(f"{path} has no images of telescope type {telescope}")
    return subarray, telescope, tel_ids


def find_telescope_type(subarray, telescope_type, path):
    """The telescope type of ``subarray`` named ``telescope_type`` (type string or camera name).

    ``None`` picks the only type; several types or an unknown name raise a ``ValueError``
    listing the available types.
    """
    types = {str(t): t for t in subarray.telescope_types}
    if telescope_type is None:
        if len(types) != 1:
            raise ValueError(
                f"{path} holds several telescope types {sorted(types)}; "
                "choose one with the telescope_type option (--telescope-type)"
            )
        return next(iter(types.values()))
    if telescope_type in types:
        return types[telescope_type]
    by_camera = [t for t in types.values() if t.camera.name == telescope_type]
    if len(by_camera) == 1:
        return by_camera[0]
    raise ValueError(f"Telescope type {telescope_type!r} not in {path}; available: {sorted(types)}")


def same_camera(a, b):
    """Whether two ``CameraGeometry`` have the same pixels at the same positions."""
    return (
        a.n_pixels == b.n_pixels
        and np.allclose(a.pix_x.to_value(u.m), b.pix_x.to_value(u.m))
        and np.allclose(a.pix_y.to_value(u.m), b.pix_y.to_value(u.m))
    )


def check_same_telescope(telescope_types, geometries, labels=("generated", "reference")):
    """Raise ``ValueError`` unless two image sets share telescope type and camera.

    Parameters
    ----------
    telescope_types : tuple of str
        ``str(TelescopeDescription)`` of both.
    geometries : tuple of ctapipe.instrument.CameraGeometry
    labels : tuple of str
        Names of both in the error message.
    """
    (type_a, type_b), (a, b) = telescope_types, geometries
    if type_a != type_b:
        raise ValueError(f"Telescope types differ: {labels[0]} {type_a!r}, {labels[1]} {type_b!r}")
    if not same_camera(a, b):
        raise ValueError(
            f"Cameras differ: {labels[0]} {a.name} ({a.n_pixels} pixels), "
            f"{labels[1]} {b.name} ({b.n_pixels} pixels)"
        )


def _has_true_images(h5, tel_ids):
    """Whether every telescope has a true-image table that knows the images: files
    written without them (e.g. generated ones) store -1 in every pixel."""
    if TRUE_IMAGES_GROUP not in h5.root:
        return False
    group = h5.root[TRUE_IMAGES_GROUP]
    for tel_id in tel_ids:
        name = f"tel_{tel_id:03d}"
        if name not in group:
            return False
        table = group[name]
        # sim_telarray files processed without true images keep only true_image_sum
        if "true_image" not in table.colnames:
            return False
        if table.nrows and np.any(table.read(0, 1, field="true_image") < 0):
            return False
    return True


def read_pixel_pairs(path, n_pixels, max_events=2000):
    """True images and DL1 images of the same events: what a pixel response is learned from.

    Parameters
    ----------
    path : path-like
        A DL1 file of simulated events with images and true images (``ctapipe-process
        --write-images`` on sim_telarray or toy events).
    n_pixels : int
        The camera's pixel count: the first telescope with images of that many pixels is read.
    max_events : int
        Events read at most (the first ones; 2000 events of a 1765-pixel camera are 3.5
        million pixel pairs).

    Returns
    -------
    dict
        ``true_image``, ``image``, ``peak_time``: ``(N, n_pixels)`` float32.

    Raises
    ------
    FileNotFoundError, OSError, ValueError
        One line naming the problem (not a DL1 file, no such camera, no true images).
    """
    with open_dl1(path) as h5:
        if IMAGES_GROUP not in h5.root:
            raise ValueError(f"{path} has no DL1 images ({IMAGES_GROUP})")
        for table in h5.root[IMAGES_GROUP]:
            if table.nrows and table.coldescrs["image"].shape == (n_pixels,):
                break
        else:
            raise ValueError(f"{path} has no DL1 images of a {n_pixels}-pixel camera")
        name = table._v_name
        if not _has_true_images(h5, [int(name.removeprefix("tel_"))]):
            raise ValueError(f"{path} has no true images for {name} ({TRUE_IMAGES_GROUP})")
        dl1 = table.read(0, max_events)
        true = h5.root[TRUE_IMAGES_GROUP][name].read(0, max_events)
    same = len(dl1) == len(true) and all(
        np.array_equal(dl1[key], true[key]) for key in ("obs_id", "event_id")
    )
    if not same:
        raise ValueError(f"{path}: the DL1 and true images of {name} are not the same events")
    if np.any(true["true_image"] < 0):
        raise ValueError(f"{path} has unknown (negative) true images")
    return {
        "true_image": true["true_image"].astype(np.float32),
        "image": dl1["image"].astype(np.float32),
        "peak_time": dl1["peak_time"].astype(np.float32),
    }


def telescope_event_chunks(
    loader,
    chunk_size,
    tel_ids,
    images=True,
    parameters=False,
    simulated=True,
    pointing=True,
    true_images=False,
):
    """Telescope events of ``tel_ids`` from an open ``TableLoader``, chunk by chunk.

    Only the column groups asked for are read, whatever the loader's configuration says:
    memory is bounded by ``chunk_size`` times what one event needs.

    Parameters
    ----------
    loader : ctapipe.io.TableLoader
    chunk_size : int
        Subarray events per chunk.
    tel_ids : list of int
    images, parameters, simulated, pointing, true_images : bool
        Read the DL1 images, the DL1 parameters, the shower truth, the telescope pointing,
        the simulated (true) images.

    Returns
    -------
    generator of ctapipe.io.tableloader.Chunk
        ``chunk.data`` is an astropy table, one row per telescope event.
    """
    return loader.read_telescope_events_chunked(
        chunk_size,
        telescopes=tel_ids,
        dl1_images=images,
        dl1_parameters=parameters,
        simulated=simulated,
        true_parameters=False,
        true_images=true_images,
        dl2=False,
        instrument=False,
        observation_info=False,
        pointing=pointing,
    )


def thrown_showers(info):
    """Showers thrown for the runs of one file.

    Returns
    -------
    n_thrown : int
        The entries of the shower-distribution table; where it is missing or empty,
        ``n_showers * shower_reuse`` of the simulation configuration.
    from_distribution : bool
        Whether the number came from the shower-distribution table.
    """
    dist = info.shower_distribution
    entries = int(np.sum(dist["n_entries"])) if dist is not None and len(dist) else 0
    if entries > 0:
        return entries, True
    config = info.simulation_config
    return int(np.sum(config["n_showers"] * config["shower_reuse"])), False


class ThrownHistogram:
    """Thrown showers per (true energy, ground core distance) bin, summed over runs.

    Each run's shower-distribution histogram counts showers; a shower thrown at several
    telescopes of the selected type gives one image chance per telescope, so it is
    multiplied by their number.

    Examples
    --------
    >>> hist = ThrownHistogram()  # doctest: +SKIP
    >>> all(hist.add(f.shower_distribution, len(f.tel_ids)) for f in files)  # doctest: +SKIP
    >>> hist.result()  # doctest: +SKIP
    """

    def __init__(self):
        self.energy_bins = self.core_bins = self.histogram = None
        self.valid = True

    def add(self, distribution, n_telescopes=1):
        """Add one file's shower-distribution table.

        Returns False (and the histogram becomes invalid) when the table is missing or
        its binning differs from what was added before.
        """
        if distribution is None:
            self.valid = False
        if not self.valid:
            return False
        for row in distribution:
            energy = u.Quantity(row["bins_energy"], u.TeV).to_value(u.TeV)
            core = u.Quantity(row["bins_core_dist"], u.m).to_value(u.m)
            hist = np.asarray(row["histogram"], dtype=np.float64) * n_telescopes
            if self.histogram is None:
                self.energy_bins, self.core_bins, self.histogram = energy, core, hist
            elif energy.shape != self.energy_bins.shape or not (
                np.allclose(energy, self.energy_bins) and np.allclose(core, self.core_bins)
            ):
                self.valid = False
                break
            else:
                self.histogram = self.histogram + hist
        return self.valid

    def result(self):
        """``{"energy_bins" [TeV], "core_bins" [m], "histogram"}``, or None if invalid or empty."""
        if not self.valid or self.histogram is None:
            return None
        return {
            "energy_bins": self.energy_bins,
            "core_bins": self.core_bins,
            "histogram": self.histogram,
        }


def plain_value(value):
    """A table cell as a plain Python value (bytes decoded, numpy scalars unwrapped)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def parameter_columns(containers):
    """ctapipe's DL1 parameter columns from ``ImageParametersContainer`` objects.

    Parameters
    ----------
    containers : sequence of ctapipe.containers.ImageParametersContainer
        One per image.

    Returns
    -------
    dict of str -> astropy.units.Quantity
        Column name as in ctapipe's parameter tables (``hillas_intensity``, ...) to values;
        fields that are not numbers are left out.
    """
    rows = [c.as_dict(recursive=True, flatten=True, add_prefix=True) for c in containers]
    columns = {}
    for name in rows[0]:
        try:
            columns[name] = u.Quantity([row[name] for row in rows])
        except (TypeError, ValueError):
            continue
    return columns
