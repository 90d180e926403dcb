"""Read DL1 files with images and re-parameterise them for validation.

Both the generated and the reference sample go through the same code: the stored images of
ONE telescope type are read with ctapipe's ``TableLoader`` in chunks (memory bounded by
``chunk_size``), optionally subsampled to ``max_events`` images with a seeded random choice,
cleaned and parameterised again with ctapipe's ``ImageProcessor`` (one configuration for
both samples), and selected with a ``QualityQuery`` on the new parameters. Any difference
between the samples is therefore the generator's, not the processing configuration's.

Per selected image a :class:`ValidationSample` keeps the image parameters and the shower
truth (plain float arrays, units stripped here), the cleaned pixel values, and a seeded
random pool of whole images for the image gallery. The thrown showers (for the selection
efficiency) come from the files' ``/simulation/service/shower_distribution`` tables.
"""

from dataclasses import dataclass, field

import astropy.units as u
import numpy as np
from ctapipe.containers import ArrayEventContainer, DL1CameraContainer
from ctapipe.core import Component, QualityQuery
from ctapipe.core.traits import Bool, Int, List, Unicode
from ctapipe.fitting import FIT_RNG
from ctapipe.image import ImageProcessor
from ctapipe.io import TableLoader
from tqdm.auto import tqdm

from ..data import dl1_file
from ..data.dl1 import DEFAULT_SELECTION

__all__ = [
    "PARAMETERS",
    "DL1ValidationReader",
    "ValidationSample",
    "ValidationSelection",
    "check_same_telescope",
]

#: Event-level image parameters compared (ctapipe column name -> (label, log scale)).
PARAMETERS = {
    "hillas_intensity": ("image size [p.e.]", True),
    "morphology_n_pixels": ("pixels after cleaning", True),
    "hillas_fov_lon": ("Hillas x (fov_lon) [deg]", False),
    "hillas_fov_lat": ("Hillas y (fov_lat) [deg]", False),
    "hillas_r": ("Hillas r [deg]", False),
    "hillas_phi": ("Hillas phi [deg]", False),
    "hillas_psi": ("Hillas psi [deg]", False),
    "hillas_length": ("Hillas length [deg]", False),
    "hillas_width": ("Hillas width [deg]", False),
    "hillas_skewness": ("Hillas skewness", False),
    "hillas_kurtosis": ("Hillas kurtosis", False),
    "leakage_intensity_width_1": ("leakage (intensity, 1 px)", False),
    "leakage_intensity_width_2": ("leakage (intensity, 2 px)", False),
    "concentration_cog": ("concentration (cog)", False),
    "concentration_core": ("concentration (core)", False),
    "concentration_pixel": ("concentration (pixel)", False),
    "timing_slope": ("timing slope [ns/deg]", False),
    "timing_deviation": ("timing deviation [ns]", False),
    "peak_time_std": ("peak-time spread [ns]", False),
    "morphology_n_islands": ("islands", False),
    "intensity_max": ("max pixel [p.e.]", True),
}
#: Truth columns kept per image (units stripped: TeV, m).
TRUTH = ("true_energy", "true_core_x", "true_core_y", "true_impact_distance")


class ValidationSelection(QualityQuery):
    """Image selection applied to BOTH samples after re-parameterisation."""

    quality_criteria = List(
        default_value=DEFAULT_SELECTION,
        help=(
            "List of (name, expression) on the recomputed DL1 parameter columns "
            "(default: the training selection). " + QualityQuery.quality_criteria.help
        ),
    ).tag(config=True)


@dataclass
class ValidationSample:
    """Re-parameterised selected images of one sample (generated or reference).

    Attributes
    ----------
    parameters : dict of str -> numpy.ndarray
        Every column of :data:`PARAMETERS` (float64, ctapipe units: deg, p.e., ns/deg).
    truth : dict of str -> numpy.ndarray
        ``true_energy`` [TeV], ``true_core_x``, ``true_core_y``, ``true_impact_distance`` [m]
        (the last NaN where the file has no impact table), ``true_core_distance`` [m, ground,
        from the array reference point, the binning of the shower-distribution histogram].
    pixel_values : numpy.ndarray
        Values [p.e.] of the pixels that survive cleaning (all selected images).
    pixel_image : numpy.ndarray
        Index of the selected image each pixel value belongs to.
    gallery_images : numpy.ndarray
        ``(n_pool, n_pixels)`` seeded random pool of selected images.
    gallery_parameters : dict
        ``hillas_intensity`` and ``true_energy`` of the pool images.
    thrown : dict
        ``energy_bins`` [TeV], ``core_bins`` [m], ``histogram`` (summed over runs, per
        telescope image: multiplied by the number of telescopes of the type) or None.
    n_read, n_processed, n_selected : int
        Images in the files, images re-parameterised (after ``max_events``), images selected.
    n_nonfinite : int
        Processed images with non-finite (NaN or inf) pixel values or peak times: they are
        not parameterised and never selected.
    subsample_fraction : float
        ``n_processed / n_read``; efficiencies are divided by it.
    classifier_images, classifier_peak_times : numpy.ndarray or None
        ``(n, n_pixels)`` float32: a seeded random subset of at most
        ``max_classifier_images`` selected images, each divided by its sum, and their peak
        times [ns], for the low-level classifier (None: not kept).
    """

    name: str
    parameters: dict
    truth: dict
    pixel_values: np.ndarray
    pixel_image: np.ndarray
    gallery_images: np.ndarray
    gallery_parameters: dict
    thrown: dict
    n_read: int
    n_processed: int
    n_selected: int
    subsample_fraction: float
    telescope_type: str
    camera_name: str
    geometry: object = field(repr=False)
    files: list = field(default_factory=list)
    simulation_config: dict = field(default_factory=dict)
    n_nonfinite: int = 0
    classifier_images: np.ndarray = None
    classifier_peak_times: np.ndarray = None

    @property
    def n_events(self):
        return len(self.parameters["hillas_intensity"])


def check_same_telescope(generated, reference):
    """Raise ``ValueError`` unless both samples have the same telescope type and camera.

    Parameters
    ----------
    generated, reference : ValidationSample
        Or anything with ``telescope_type`` (str) and ``geometry``.
    """
    dl1_file.check_same_telescope(
        (generated.telescope_type, reference.telescope_type),
        (generated.geometry, reference.geometry),
    )


class DL1ValidationReader(Component):
    """Read and re-parameterise the images of one telescope type from DL1 files.

    Examples
    --------
    >>> reader = DL1ValidationReader(max_events=10000, seed=1)  # doctest: +SKIP
    >>> sample = reader.read(["ref.dl1.h5"], name="reference")  # doctest: +SKIP
    """

    telescope_type = Unicode(
        default_value=None,
        allow_none=True,
        help=(
            "Telescope type, as str(TelescopeDescription) or camera name. "
            "Default: the only type in the files."
        ),
    ).tag(config=True)
    chunk_size = Int(2000, help="Subarray events read at once (bounds memory)").tag(config=True)
    max_events = Int(
        default_value=100_000,
        allow_none=True,
        help="At most this many images per sample are re-parameterised (seeded random subsample)",
    ).tag(config=True)
    seed = Int(0, help="Seed of the subsample and of the gallery pool").tag(config=True)
    gallery_pool_size = Int(1000, help="Selected images kept per sample for the image gallery").tag(
        config=True
    )
    max_classifier_images = Int(
        5000,
        help=(
            "Selected images (normalised by their sum, float32) and peak times kept per sample "
            "for the low-level (CNN) classifier, a seeded random subset; 0 keeps none"
        ),
    ).tag(config=True)
    progress_bar = Bool(True, help="Show progress bars").tag(config=True)

    classes = [ValidationSelection, ImageProcessor]

    def __init__(self, config=None, parent=None, **kwargs):
        super().__init__(config=config, parent=parent, **kwargs)
        self.selection = ValidationSelection(parent=self)

    # -- checks -------------------------------------------------------------------------
    def inspect(self, files, telescope_type=None):
        """Check the files of one sample (same telescope type and camera in all).

        Parameters
        ----------
        files : list of path-like
        telescope_type : str, optional
            Overrides the ``telescope_type`` option.

        Returns
        -------
        list of ctapipe_genshower.data.dl1_file.DL1ImageFile
        """
        telescope_type = telescope_type or self.telescope_type
        return list(dl1_file.iter_image_files(files, telescope_type, same_type=True))

    def check_inputs(self, generated_files, reference_files):
        """Check both samples' files before anything long starts.

        Returns
        -------
        str
            The telescope type both are read with: the ``telescope_type`` option, or the
            type of the generated files.

        Raises
        ------
        ValueError, OSError
            A file fails a check, or the samples differ in telescope type or camera.
        """
        generated = self.inspect(generated_files)[0]
        telescope_type = self.telescope_type or str(generated.telescope)
        reference = self.inspect(reference_files, telescope_type)[0]
        dl1_file.check_same_telescope(
            (str(generated.telescope), str(reference.telescope)),
            (generated.geometry, reference.geometry),
        )
        return telescope_type

    # -- reading ------------------------------------------------------------------------
    def read(self, files, name="sample", telescope_type=None):
        """Re-parameterise and select the images of ``files``; returns a ValidationSample."""
        infos = self.inspect(files, telescope_type)
        telescope = infos[0].telescope
        n_read = sum(info.n_images for info in infos)
        rng = np.random.default_rng(self.seed)
        limit = self.max_events if self.max_events is not None else n_read
        keep_index = None
        if n_read > limit:
            keep_index = np.sort(rng.choice(n_read, size=limit, replace=False))
        n_processed = min(n_read, limit)

        acc = _Accumulator(self.gallery_pool_size, rng, self.max_classifier_images)
        offset = 0
        with tqdm(
            total=n_processed, desc=f"{name}", unit="img", disable=not self.progress_bar
        ) as bar:
            for info in infos:
                offset = self._read_file(info.path, info.tel_ids, offset, keep_index, acc, bar)

        thrown, configs = _thrown_and_settings(infos)
        if acc.n_selected == 0 and n_processed > 0 and acc.n_nonfinite == n_processed:
            raise ValueError(
                f"{name}: all {n_processed} images have non-finite (NaN or inf) pixels;"
                f" nothing to compare ({', '.join(str(info.path) for info in infos)})"
            )
        if acc.n_selected == 0:
            nonfinite = f", {acc.n_nonfinite} of them non-finite" if acc.n_nonfinite else ""
            raise ValueError(
                f"{name}: selection {self.selection.quality_criteria} leaves no images "
                f"(of {n_processed} re-parameterised{nonfinite})"
            )
        return ValidationSample(
            name=name,
            parameters=acc.columns(PARAMETERS),
            truth=acc.columns([*TRUTH, "true_core_distance"]),
            pixel_values=np.concatenate(acc.pixel_values),
            pixel_image=np.concatenate(acc.pixel_image),
            gallery_images=acc.pool_images(),
            gallery_parameters=acc.pool_parameters(),
            classifier_images=acc.classifier_pool[1],
            classifier_peak_times=acc.classifier_pool[2],
            thrown=thrown,
            n_read=n_read,
            n_processed=n_processed,
            n_selected=acc.n_selected,
            subsample_fraction=n_processed / n_read,
            telescope_type=str(telescope),
            camera_name=telescope.camera.name,
            geometry=telescope.camera.geometry,
            files=[str(info.path) for info in infos],
            simulation_config=configs,
            n_nonfinite=acc.n_nonfinite,
        )

    def _read_file(self, path, tel_ids, offset, keep_index, acc, bar):
        with TableLoader(path, parent=self) as loader:
            processor = ImageProcessor(loader.subarray, parent=self)
            positions = {t: loader.subarray.positions[t].to_value(u.m) for t in tel_ids}
            chunks = dl1_file.telescope_event_chunks(
                loader, self.chunk_size, tel_ids, pointing=False
            )
            for chunk in chunks:
                table = chunk.data
                n = len(table)
                if n == 0:
                    continue
                if keep_index is not None:
                    lo, hi = np.searchsorted(keep_index, [offset, offset + n])
                    rows = keep_index[lo:hi] - offset
                    table = table[rows]
                offset += n
                if len(table) == 0:
                    continue
                if "true_energy" not in table.colnames:
                    raise ValueError(f"{path} has no simulated shower information (true_energy)")
                self._process(table, processor, positions, acc, path)
                bar.update(len(table))
        return offset

    def _process(self, table, processor, positions, acc, path):
        image = np.asarray(table["image"], dtype=np.float32)
        peak_time = np.asarray(table["peak_time"], dtype=np.float32)
        finite = np.all(np.isfinite(image), axis=1) & np.all(np.isfinite(peak_time), axis=1)
        acc.n_nonfinite += int(np.count_nonzero(~finite))
        rows, masks = [], []
        event = ArrayEventContainer()
        # ctapipe's robust timing fit draws from one module-level generator, so an image's
        # timing_slope would depend on the images processed before it: reset it per image
        fit_state = np.random.default_rng(self.seed).bit_generator.state
        for i, tel_id in enumerate(np.asarray(table["tel_id"], dtype=int)):
            if not finite[i]:
                rows.append(processor.default_image_container)
                masks.append(np.zeros(image.shape[1], dtype=bool))
                continue
            event.dl1.tel.clear()
            FIT_RNG.bit_generator.state = fit_state
            event.dl1.tel[tel_id] = DL1CameraContainer(image=image[i], peak_time=peak_time[i])
            processor(event)
            rows.append(event.dl1.tel[tel_id].parameters)
            masks.append(event.dl1.tel[tel_id].image_mask)
        columns = _parameter_columns(rows)
        for name, values in columns.items():
            table[name] = values
        try:
            passed = np.asarray(self.selection.get_table_mask(table), dtype=bool) & finite
        except Exception as err:
            raise ValueError(
                f"Selection {self.selection.quality_criteria} cannot be evaluated on {path}: "
                f"{type(err).__name__}: {err}"
            ) from None
        if not np.any(passed):
            return
        sel = table[passed]
        tel_xy = np.array([positions[int(t)][:2] for t in sel["tel_id"]])
        truth = {
            "true_energy": u.Quantity(sel["true_energy"], u.TeV).to_value(u.TeV),
            "true_core_x": u.Quantity(sel["true_core_x"], u.m).to_value(u.m),
            "true_core_y": u.Quantity(sel["true_core_y"], u.m).to_value(u.m),
        }
        truth["true_core_distance"] = np.hypot(truth["true_core_x"], truth["true_core_y"])
        if "true_impact_distance" in sel.colnames:
            truth["true_impact_distance"] = u.Quantity(sel["true_impact_distance"], u.m).value
        else:  # ground distance to the telescope
            truth["true_impact_distance"] = np.hypot(
                truth["true_core_x"] - tel_xy[:, 0], truth["true_core_y"] - tel_xy[:, 1]
            )
        params = {name: np.asarray(columns[name])[passed] for name in PARAMETERS}
        masks = np.asarray(masks)[passed]
        acc.add(params, truth, image[passed], masks, peak_time[passed])


class _Accumulator:
    """Collects per-image columns, cleaned pixel values and a seeded random image pool."""

    def __init__(self, pool_size, rng, classifier_size=0):
        self.pool_size = pool_size
        self.classifier_size = classifier_size
        self.classifier_pool = (None, None, None)  # (keys, normalised images, peak times)
        self.rng = rng
        self.data = {}
        self.pixel_values = [np.empty(0, np.float32)]
        self.pixel_image = [np.empty(0, np.int32)]
        self.pool = None  # (keys, images, size, energy)
        self.n_selected = 0
        self.n_nonfinite = 0

    def add(self, params, truth, images, masks, peak_times=None):
        for name, values in {**params, **truth}.items():
            self.data.setdefault(name, []).append(np.asarray(values, dtype=np.float64))
        self.pixel_values.append(images[masks].astype(np.float32))
        index = np.arange(self.n_selected, self.n_selected + len(images), dtype=np.int32)
        self.pixel_image.append(np.repeat(index, np.count_nonzero(masks, axis=1)))
        self.n_selected += len(images)
        keys = self.rng.uniform(size=len(images))
        new = (keys, images, params["hillas_intensity"], truth["true_energy"])
        if self.pool is not None:
            new = tuple(np.concatenate([a, b]) for a, b in zip(self.pool, new, strict=True))
        order = np.argsort(new[0])[: self.pool_size]
        self.pool = tuple(a[order] for a in new)
        if self.classifier_size > 0:
            self._add_classifier(images, peak_times)

    def _add_classifier(self, images, peak_times):
        """Keep the ``classifier_size`` images of smallest random key (a uniform subset)."""
        keys = self.rng.uniform(size=len(images))
        keep = np.argsort(keys)[: self.classifier_size]
        total = np.sum(images[keep], axis=1, dtype=np.float64)
        total = np.where(total > 0, total, 1.0)
        normalised = (images[keep] / total[:, np.newaxis]).astype(np.float32)
        new = (keys[keep], normalised, np.asarray(peak_times[keep], dtype=np.float32))
        if self.classifier_pool[0] is not None:
            new = tuple(
                np.concatenate([a, b]) for a, b in zip(self.classifier_pool, new, strict=True)
            )
        order = np.argsort(new[0])[: self.classifier_size]
        self.classifier_pool = tuple(a[order] for a in new)

    def columns(self, names):
        return {name: np.concatenate(self.data[name]) for name in names}

    def pool_images(self):
        return self.pool[1]

    def pool_parameters(self):
        return {"hillas_intensity": self.pool[2], "true_energy": self.pool[3]}


def _parameter_columns(containers):
    """ImageParametersContainers -> {ctapipe column name: values}, PARAMETERS as floats."""
    columns = dl1_file.parameter_columns(containers)
    missing = [name for name in PARAMETERS if name not in columns]
    if missing:
        raise ValueError(f"ImageProcessor did not produce parameters {missing}")
    return {
        name: (q.to_value(u.deg) if q.unit.physical_type == "angle" else q.value)
        if name in PARAMETERS
        else q
        for name, q in columns.items()
    }


def _thrown_and_settings(files):
    """The thrown-shower histogram of all runs and the simulation settings they share.

    The histogram counts one image chance per telescope of the type read, so each file's
    counts are multiplied by its number of those telescopes; it is None when a file has
    no shower distribution or another binning. The settings are those of the files up to
    that one.
    """
    histogram = dl1_file.ThrownHistogram()
    configs = []
    for info in files:
        if info.simulation_config is not None:
            config = info.simulation_config
            configs.extend(
                {k: dl1_file.plain_value(row[k]) for k in config.colnames if k != "obs_id"}
                for row in config
            )
        if not histogram.add(info.shower_distribution, len(info.tel_ids)):
            break
    return histogram.result(), _unique(configs)


def _unique(configs):
    """The simulation settings that all runs share (dropping per-run values)."""
    if not configs:
        return {}
    keys = [k for k in configs[0] if all(c.get(k) == configs[0][k] for c in configs)]
    skip = {"run_number", "n_showers", "shower_prog_start", "detector_prog_start"}
    return {
        k: configs[0][k]
        for k in keys
        if k not in skip and isinstance(configs[0][k], (int, float, str, bool))
    }
