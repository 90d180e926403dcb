"""ctapipe DL1 HDF5 files -> :class:`~ctapipe_genshower.data.arrays.TrainingArrays`.

Reads the output of ``ctapipe-process --write-images`` (on sim_telarray files or on the
toy simulator) for ONE telescope type with ctapipe's ``TableLoader``, chunk by chunk, so
memory is bounded by the chunk size and files larger than memory work. For every
telescope image it returns the charge, the peak time and the shower conditions of
:data:`~ctapipe_genshower.data.arrays.CONDITION_COLUMNS`:

* ``log10_energy`` from ``true_energy``;
* ``impact_x``, ``impact_y``: ``true_core_{x,y}`` minus the telescope position, ground frame;
* ``source_fov_lon``, ``source_fov_lat``: the true source position (``true_alt``,
  ``true_az``) in ctapipe's ``TelescopeFrame`` of the telescope pointing.

The conditions come from :func:`~ctapipe_genshower.data.conditions.conditions_from_truth`,
the function the EventSources use. Images are selected with a ctapipe ``QualityQuery`` on
the DL1 parameter columns (default: the paper's size cut after cleaning,
``hillas_intensity >= 250``); files without parameters get them from ctapipe's
``ImageProcessor``. The files are opened and checked, and the simulation bookkeeping
(thrown distribution, number of thrown showers) is read, by the file layer
:mod:`ctapipe_genshower.data.dl1_file`.
"""

import gc
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.coordinates import AltAz, SkyCoord
from ctapipe import __version__ as ctapipe_version
from ctapipe.containers import ArrayEventContainer, DL1CameraContainer
from ctapipe.coordinates import TelescopeFrame
from ctapipe.core import Component, QualityQuery
from ctapipe.core.traits import Bool, CaselessStrEnum, Int, List, Unicode
from ctapipe.core.traits import Path as PathTrait
from ctapipe.image import ImageProcessor
from ctapipe.io import TableLoader

from ..instrument.description import subarray_to_dict
from ..instrument.grid import CameraGridMapping, pixel_fov_positions
from ..thrown import ThrownDistribution
from .arrays import CONDITION_COLUMNS, TrainingArrays
from .conditions import conditions_from_truth
from .dl1_file import (
    iter_image_files,
    parameter_columns,
    plain_value,
    telescope_event_chunks,
    thrown_showers,
)
from .training_file import TrainingFileWriter

__all__ = [
    "DEFAULT_SELECTION",
    "DL1TrainingReader",
    "TrainingSelection",
    "source_position_in_telescope_frame",
]

#: The paper's selection: image size >= 250 p.e. after cleaning.
DEFAULT_SELECTION = [("size", "hillas_intensity >= 250")]

# settings all runs must share (ThrownDistribution fields), with a tolerance
_SHARED_SETTINGS_RTOL = 1e-6
_SHARED_SETTINGS = [
    ("energy_range_min", u.TeV),
    ("energy_range_max", u.TeV),
    ("spectral_index", None),
    ("max_scatter_range", u.m),
    ("min_scatter_range", u.m),
    ("max_viewcone_radius", u.deg),
    ("min_viewcone_radius", u.deg),
    ("max_alt", u.deg),
    ("min_alt", u.deg),
    ("max_az", u.deg),
    ("min_az", u.deg),
    ("core_pos_mode", None),
]
# run a full garbage collection after reading this many bytes of images
_COLLECT_EVERY_BYTES = 256 * 1024**2
# fixed pointing: all images of the selected type must point within this (deg)
_POINTING_TOLERANCE_DEG = 1e-3


class TrainingSelection(QualityQuery):
    """Image selection for training: expressions on the DL1 parameter columns."""

    quality_criteria = List(
        default_value=DEFAULT_SELECTION,
        help=(
            "List of (name, expression) on the DL1 parameter table columns "
            "(e.g. hillas_intensity, leakage_intensity_width_2) that an image must pass. "
            + QualityQuery.quality_criteria.help
        ),
    ).tag(config=True)


def source_position_in_telescope_frame(true_alt, true_az, pointing_alt, pointing_az):
    """True source direction in ctapipe's ``TelescopeFrame`` of the pointing.

    Parameters
    ----------
    true_alt, true_az, pointing_alt, pointing_az : astropy.units.Quantity
        Arrays of the same length (or scalars for the pointing).

    Returns
    -------
    fov_lon, fov_lat : astropy.units.Quantity
        In degrees.
    """
    pointing = SkyCoord(alt=pointing_alt, az=pointing_az, frame=AltAz())
    source = SkyCoord(alt=true_alt, az=true_az, frame=AltAz())
    fov = source.transform_to(TelescopeFrame(telescope_pointing=pointing))
    return fov.fov_lon.to(u.deg), fov.fov_lat.to(u.deg)


class DL1TrainingReader(Component):
    """Read training images of one telescope type from ctapipe DL1 HDF5 files.

    The files are checked when the reader is built (existence, images, telescope type,
    shared simulation settings), so a bad input fails before any long run starts.

    Parameters
    ----------
    input_files : list of path
        DL1 files written by ``ctapipe-process --write-images``.

    Examples
    --------
    >>> reader = DL1TrainingReader(input_files=["protons.dl1.h5"])  # doctest: +SKIP
    >>> arrays = reader.read()  # all selected images in memory  # doctest: +SKIP
    >>> reader.to_training_file("train.safetensors")  # streamed  # doctest: +SKIP
    """

    input_files = List(
        # existence and type are checked by the file layer (one-line errors)
        PathTrait(),
        default_value=[],
        help="ctapipe DL1 HDF5 files with images (ctapipe-process --write-images)",
    ).tag(config=True)

    telescope_type = Unicode(
        default_value=None,
        allow_none=True,
        help=(
            "Telescope type to read, as str(TelescopeDescription) (e.g. 'LST_LST_LSTCam') "
            "or the camera name (e.g. 'LSTCam'). Default: the only type in the files."
        ),
    ).tag(config=True)

    chunk_size = Int(
        default_value=5000, help="Subarray events read from a file at once (bounds memory)"
    ).tag(config=True)

    nan_policy = CaselessStrEnum(
        ["fail", "drop"],
        default_value="fail",
        help="What to do with images containing NaN pixels: fail with an error or drop them",
    ).tag(config=True)

    recompute_parameters = Bool(
        default_value=False,
        help=(
            "Compute the image parameters used by the selection with ctapipe's "
            "ImageProcessor even if the files have them (files without parameters "
            "always get them computed)"
        ),
    ).tag(config=True)

    true_images = Bool(
        default_value=True,
        help=(
            "Keep the simulated (true) images, the Cherenkov photo-electrons of each pixel,"
            " when every input file has them: models with a learned pixel response"
            " (--model small-signal) train on them"
        ),
    ).tag(config=True)

    classes = [TrainingSelection, ImageProcessor]

    def __init__(self, config=None, parent=None, **kwargs):
        super().__init__(config=config, parent=parent, **kwargs)
        if not self.input_files:
            raise ValueError("No input files given")
        self.selection = TrainingSelection(parent=self)
        self._files = [Path(f).expanduser() for f in self.input_files]
        self._inspect_files()
        self.n_read = 0
        self.n_selected = 0
        self.n_nan_dropped = 0

    # -- checks and metadata, done once up front -------------------------------------
    def _inspect_files(self):
        self._tel_ids = {}
        self._has_parameters = {}
        self._has_true_images = {}
        sim_configs = []
        n_thrown = 0
        missing_distribution = []
        first = None

        for info in iter_image_files(self._files, self.telescope_type):
            path = info.path
            if first is None:
                first = info
            self._tel_ids[path] = info.tel_ids
            self._has_parameters[path] = info.has_parameters
            self._has_true_images[path] = info.has_true_images
            config = info.simulation_config
            if config is None:
                raise ValueError(f"{path} has no simulation configuration table")
            if len(config) == 0:
                raise ValueError(f"{path}: simulation configuration table is empty")
            sim_configs.extend((path, row) for row in config)
            thrown, from_distribution = thrown_showers(info)
            n_thrown += thrown
            if not from_distribution:
                missing_distribution.append(path.name)
        telescope, geometry = first.telescope, first.geometry

        if missing_distribution:
            warnings.warn(
                f"No shower distribution in {missing_distribution}: n_thrown taken from "
                "n_showers * shower_reuse of the simulation configuration",
                stacklevel=2,
            )

        self.telescope = telescope
        self.geometry = geometry
        self.grid = CameraGridMapping.from_geometry(geometry)
        self.pointing_alt, self.pointing_az = self._read_pointing()
        self.thrown = self._shared_thrown_distribution(sim_configs)
        self.n_thrown = n_thrown
        # the training files' instrument as it is, so that generated runs merge with them
        self.subarray = first.subarray
        self._base_meta = {
            "camera_name": geometry.name,
            "telescope_type": str(telescope),
            "n_pixels": int(geometry.n_pixels),
            "grid_shape": [int(s) for s in self.grid.shape],
            "grid_index": [int(i) for i in self.grid.flat_index],
            "pixel_fov": pixel_fov_positions(geometry),
            "subarray": subarray_to_dict(first.subarray),
            "tel_ids": [int(t) for t in first.tel_ids],
            "thrown": None if self.thrown is None else self.thrown.to_dict(),
            "simulation_config": _config_to_dict(sim_configs[0][1]),
            "n_thrown": int(n_thrown),
            "n_runs": len(sim_configs),
            "selection": [[name, expr] for name, expr in self.selection.quality_criteria],
            "input_files": [str(p) for p in self._files],
            "condition_columns": list(CONDITION_COLUMNS),
            "ctapipe_version": ctapipe_version,
        }

    def _read_pointing(self):
        """The fixed pointing (alt, az) of the selected telescopes: first image that has one."""
        for path in self._files:
            with TableLoader(path, parent=self) as loader:
                chunks = telescope_event_chunks(
                    loader, self.chunk_size, self._tel_ids[path], images=False, simulated=False
                )
                for chunk in chunks:
                    table = chunk.data
                    if len(table) and "telescope_pointing_altitude" in table.colnames:
                        return (
                            u.Quantity(table["telescope_pointing_altitude"], u.deg)[0],
                            u.Quantity(table["telescope_pointing_azimuth"], u.deg)[0],
                        )
        raise ValueError(f"No telescope pointing for {self.telescope} in {self._files}")

    def _shared_thrown_distribution(self, sim_configs):
        """The thrown distribution all runs share (None if it is not a power law range)."""
        first_path, first = sim_configs[0]
        for path, row in sim_configs[1:]:
            for key, unit in _SHARED_SETTINGS:
                a = u.Quantity(first[key], unit).value if unit else first[key]
                b = u.Quantity(row[key], unit).value if unit else row[key]
                if not np.isclose(a, b, rtol=_SHARED_SETTINGS_RTOL, atol=0, equal_nan=True):
                    raise ValueError(
                        f"Runs differ in simulation settings: {key} = {a} in {first_path} "
                        f"(run {first['obs_id']}) but {b} in {path} (run {row['obs_id']})"
                    )
        try:
            return ThrownDistribution.from_simulation_config(
                first, pointing_alt=self.pointing_alt, pointing_az=self.pointing_az
            )
        except ValueError as err:
            # e.g. sim_telarray test files thrown at one fixed energy
            warnings.warn(
                f"Simulation settings of {first_path} are not a thrown distribution "
                f"({err}); meta['thrown'] is None",
                stacklevel=3,
            )
            return None

    # -- reading ----------------------------------------------------------------------
    @property
    def meta(self):
        """JSON-able metadata (``n_selected`` and counts are final after a full read)."""
        meta = dict(self._base_meta)
        meta["n_selected"] = int(self.n_selected)
        meta["n_read"] = int(self.n_read)
        meta["n_nan_dropped"] = int(self.n_nan_dropped)
        meta["selection_counts"] = {
            str(row["criteria"]): int(row["cumulative_counts"]) for row in self.selection.to_table()
        }
        meta["parameters_recomputed"] = bool(
            self.recompute_parameters or not all(self._has_parameters.values())
        )
        meta["true_images"] = self.reads_true_images
        return meta

    @property
    def reads_true_images(self):
        """Whether the selected images come with their true images (all files have them)."""
        return bool(self.true_images and all(self._has_true_images.values()))

    def iter_chunks(self):
        """Yield the selected images chunk by chunk as :class:`TrainingArrays`.

        Counters (``n_read``, ``n_selected``, ``n_nan_dropped``) and the selection
        statistics are reset at the start; ``meta`` is complete once the iterator is
        exhausted. Chunks with no selected image are skipped.
        """
        self.n_read = self.n_selected = self.n_nan_dropped = 0
        self.selection = TrainingSelection(parent=self)
        for path in self._files:
            yield from self._iter_file(path)
        if self.n_selected == 0:
            raise ValueError(
                f"The selection {self._base_meta['selection']} leaves no events "
                f"(of {self.n_read} images of {self.telescope} read)"
            )

    def read(self):
        """All selected images in memory as one :class:`TrainingArrays`."""
        chunks = list(self.iter_chunks())
        return TrainingArrays.concatenate(chunks, meta=self.meta)

    def to_training_file(self, path, progress=None):
        """Stream all selected images into a compact training file (atomic write).

        Memory is bounded by ``chunk_size``.

        Parameters
        ----------
        path : path-like
            The training file to write.
        progress : callable, optional
            Called after every chunk written as ``progress(n_read, n_selected)`` (images
            read and selected so far), e.g. a
            :class:`~ctapipe_genshower.training.progress.ChunkProgress` bar.

        Returns
        -------
        int
            The number of images written.
        """
        with TrainingFileWriter(path) as writer:
            for chunk in self.iter_chunks():
                writer.append(chunk)
                if progress is not None:
                    progress(self.n_read, self.n_selected)
            writer.meta.update(self.meta)
        return self.n_selected

    def _iter_file(self, path):
        tel_ids = self._tel_ids[path]
        compute = self.recompute_parameters or not self._has_parameters[path]
        with TableLoader(path, parent=self) as loader:
            processor = ImageProcessor(loader.subarray, parent=self) if compute else None
            positions = {t: loader.subarray.positions[t].to_value(u.m) for t in tel_ids}
            chunks = telescope_event_chunks(
                loader,
                self.chunk_size,
                tel_ids,
                parameters=not compute,
                true_images=self.reads_true_images,
            )
            since_collect = 0
            for chunk in chunks:
                table = chunk.data
                del chunk
                if len(table) == 0:
                    continue
                since_collect += len(table) * table["image"].shape[1] * 8
                arrays = self._process_table(table, path, positions, processor)
                del table
                if since_collect > _COLLECT_EVERY_BYTES:
                    # astropy tables form reference cycles; free them now, not at some
                    # later full collection, so memory stays bounded by the chunk size
                    gc.collect()
                    since_collect = 0
                if arrays is not None:
                    yield arrays

    def _process_table(self, table, path, positions, processor):
        if "true_energy" not in table.colnames:
            raise ValueError(f"{path} has no simulated shower information (true_energy)")
        self.n_read += len(table)
        image = np.asarray(table["image"], dtype=np.float32)
        peak_time = np.asarray(table["peak_time"], dtype=np.float32)

        bad_pixels = ~np.isfinite(image) | ~np.isfinite(peak_time)
        n_bad = np.count_nonzero(bad_pixels, axis=1)
        keep = n_bad == 0
        if not np.all(keep):
            n_images = int(np.count_nonzero(~keep))
            if self.nan_policy == "fail":
                raise ValueError(
                    f"{path}: {n_images} images with {int(n_bad.sum())} NaN pixels; "
                    "set nan_policy='drop' to drop them"
                )
            self.n_nan_dropped += n_images
            self.log.warning("%s: dropping %d images with NaN pixels", path, n_images)

        if processor is not None:
            parameters = _compute_parameters(processor, table["tel_id"], image, peak_time, keep)
            for name, column in parameters.items():
                table[name] = column
        try:
            passed = self.selection.get_table_mask(table)
        except Exception as err:
            raise ValueError(
                f"Selection {self._base_meta['selection']} cannot be evaluated on {path}: "
                f"{type(err).__name__}: {err}"
            ) from None
        mask = keep & np.asarray(passed, dtype=bool)
        if not np.any(mask):
            return None
        table = table[mask]
        self._check_pointing(table, path)

        fov_lon, fov_lat = source_position_in_telescope_frame(
            u.Quantity(table["true_alt"], u.deg),
            u.Quantity(table["true_az"], u.deg),
            u.Quantity(table["telescope_pointing_altitude"], u.deg),
            u.Quantity(table["telescope_pointing_azimuth"], u.deg),
        )
        conditions = conditions_from_truth(
            u.Quantity(table["true_energy"], u.TeV),
            u.Quantity(table["true_core_x"], u.m),
            u.Quantity(table["true_core_y"], u.m),
            fov_lon,
            fov_lat,
            tel_position=u.Quantity([positions[t] for t in table["tel_id"]], u.m),
        )
        self.n_selected += len(table)
        true_image = None
        if self.reads_true_images:
            true_image = np.asarray(table["true_image"], dtype=np.float32)
            if np.any(true_image < 0):  # -1: a file that does not know them
                raise ValueError(
                    f"{path} has unknown (negative) true images; set"
                    " DL1TrainingReader.true_images=False to train without them"
                )
        return TrainingArrays(
            image=image[mask],
            peak_time=peak_time[mask],
            conditions=conditions,
            meta={},
            true_image=true_image,
        )

    def _check_pointing(self, table, path):
        alt = u.Quantity(table["telescope_pointing_altitude"], u.deg)
        az = u.Quantity(table["telescope_pointing_azimuth"], u.deg)
        d_alt = np.max(np.abs((alt - self.pointing_alt).to_value(u.deg)))
        d_az = np.max(np.abs(((az - self.pointing_az + 180 * u.deg) % (360 * u.deg)) - 180 * u.deg))
        if d_alt > _POINTING_TOLERANCE_DEG or d_az.to_value(u.deg) > _POINTING_TOLERANCE_DEG:
            raise ValueError(
                f"{path}: pointing differs from alt={self.pointing_alt:.4f}, "
                f"az={self.pointing_az:.4f} of {self._files[0]}; a training set needs a "
                "fixed pointing"
            )


def _config_to_dict(row):
    """One simulation-configuration row as JSON-able ``{name: value}`` (units as strings)."""
    out = {}
    for name in row.colnames:
        value = plain_value(row[name])
        unit = getattr(row.table[name], "unit", None)
        if isinstance(value, float) and not np.isfinite(value):
            value = None
        out[name] = {"value": value, "unit": str(unit)} if unit is not None else value
    return out


def _compute_parameters(processor, tel_ids, image, peak_time, keep):
    """DL1 parameter columns (ctapipe's names) from images, with ctapipe's ImageProcessor."""
    rows = []
    for i, tel_id in enumerate(tel_ids):
        tel_id = int(tel_id)
        event = ArrayEventContainer()
        if keep[i]:
            event.dl1.tel[tel_id] = DL1CameraContainer(image=image[i], peak_time=peak_time[i])
            processor(event)
            params = event.dl1.tel[tel_id].parameters
        else:
            params = processor.default_image_container
        rows.append(params)
    return parameter_columns(rows)
