"""The training selection applied again to generated images, exactly as training applied it.

A model's image network is trained only on images that passed the training selection: the
training reader (:class:`~ctapipe_genshower.data.dl1.DL1TrainingReader`) cleans and
parameterises each image with ctapipe's ``ImageProcessor`` and evaluates the expressions of
``training_meta["selection"]`` (``ShowerGenerator.selection``) on the parameter columns with
:class:`~ctapipe_genshower.data.dl1.TrainingSelection`, a ctapipe ``QualityQuery``.
:class:`ImageReselection` does the same to generated images, with ctapipe's *default*
``ImageProcessor`` configuration (the one the training files were processed with), never the
configuration of the tool it runs in: a user's ``--ImageProcessor.*`` settings change the
processing of the output, not which images the model counts as its own errors.

:class:`~ctapipe_genshower.io.diffusion.DiffusionEventSource` passes an instance as
``accept`` to :meth:`~ctapipe_genshower.generator.ShowerGenerator.generate`, which redraws the
events it rejects. With a refiner (a refined model, :mod:`ctapipe_genshower.model.density_ratio`)
the answer is a probability: 0 for an image failing the selection, else the refiner's
acceptance of its parameters and conditions, computed from the same ctapipe parameters.
"""

import ast

import astropy.units as u
import numpy as np
from astropy.table import QTable
from ctapipe.containers import ArrayEventContainer, DL1CameraContainer
from ctapipe.fitting import FIT_RNG
from ctapipe.image import ImageProcessor, camera_to_shower_coordinates
from traitlets.config import Config

from ..data.dl1 import TrainingSelection
from ..data.dl1_file import parameter_columns

__all__ = ["TIME_RESIDUAL_COLUMN", "ImageReselection", "largest_time_residual"]

#: State ctapipe's robust timing fit generator is reset to before each image, so that an
#: image's parameters do not depend on the images processed before it.
_FIT_STATE = np.random.default_rng(0).bit_generator.state

#: Parameter columns that follow from the cleaning mask alone, computed exactly as ctapipe's
#: ``ImageProcessor`` computes them. A selection that reads only these (the usual size cut)
#: skips the rest of the parameterisation: Hillas, the timing fit, concentration and the
#: statistics are ~90 % of its time, and a redrawn event is parameterised once per draw.
MASK_COLUMNS = ("hillas_intensity", "morphology_n_pixels", "intensity_max")


#: The column :meth:`ImageReselection.parameters` adds to ctapipe's: the largest peak-time
#: residual of a cleaned pixel from the image's timing fit. Not a ctapipe parameter (never
#: written to an output); a refiner feature, since ``timing_deviation`` (an rms over all
#: cleaned pixels) blurs one pixel far off the shower's time profile into the image's spread.
TIME_RESIDUAL_COLUMN = "timing_max_residual"


def largest_time_residual(pix_x, pix_y, mask, peak_time, parameters):
    """The largest ``|t - (slope * longitudinal + intercept)|`` of the cleaned pixels, ns.

    Parameters
    ----------
    pix_x, pix_y : numpy.ndarray
        Pixel coordinates in deg of the telescope frame, the frame of ctapipe's default
        ``ImageProcessor`` parameters.
    mask : numpy.ndarray of bool
        The cleaning mask.
    peak_time : numpy.ndarray
        The image's peak times.
    parameters : ctapipe.containers.ImageParametersContainer
        ctapipe's parameters of the image: the Hillas centroid and axis the timing fit used
        (``ctapipe.image.timing_parameters``), and its slope and intercept.

    Returns
    -------
    float
        NaN where ctapipe has no timing fit (an image failing its checks).
    """
    hillas, timing = parameters.hillas, parameters.timing
    slope = timing.slope.to_value(1 / u.deg)
    if not np.any(mask) or not np.isfinite(slope):
        return np.nan
    longitudinal, _ = camera_to_shower_coordinates(
        pix_x[mask],
        pix_y[mask],
        hillas.fov_lon.to_value(u.deg),
        hillas.fov_lat.to_value(u.deg),
        hillas.psi.to_value(u.rad),
    )
    return float(np.max(np.abs(peak_time[mask] - (slope * longitudinal + timing.intercept))))


def _names(expression):
    """The variable names an expression of a ``QualityQuery`` reads."""
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError:
        return {expression}  # not a column expression: let ctapipe's query report it
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}


class ImageReselection:
    """``accept(images, peak_times)``: which generated images pass the training selection.

    Parameters
    ----------
    subarray : ctapipe.instrument.SubarrayDescription
        The model's instrument.
    tel_id : int
        The telescope the images belong to.
    selection : list of [name, expression]
        The training selection (``ShowerGenerator.selection``), at least one criterion.
    refiner : DensityRatio, optional
        The model's refiner: the answer becomes the acceptance probability of each image.

    Raises
    ------
    ValueError
        When ``selection`` is empty or cannot be evaluated on ctapipe's parameter columns.
    """

    def __init__(self, subarray, tel_id, selection, refiner=None):
        if not selection:
            raise ValueError("no selection to apply")
        self.refiner = refiner
        self.tel_id = int(tel_id)
        self.selection = [(str(name), str(expression)) for name, expression in selection]
        empty = Config()  # ctapipe's defaults, not the configuration of a running tool
        self.processor = ImageProcessor(subarray, config=empty)
        self.query = TrainingSelection(config=empty, quality_criteria=self.selection)
        names = set().union(*(_names(expression) for _, expression in self.selection))
        #: True when the selection reads only :data:`MASK_COLUMNS`.
        self.mask_only = names <= set(MASK_COLUMNS) and not any(
            self.processor.apply_image_modifier.tel[t] for t in subarray.tel
        )
        defaults = parameter_columns([self.processor.default_image_container])
        self._mask_defaults = {name: defaults[name][0] for name in MASK_COLUMNS}
        self._monitoring = ArrayEventContainer().monitoring.tel[self.tel_id].camera
        # ctapipe's default ImageProcessor parameterises in the telescope frame
        geometry = self.processor.telescope_frame_geometries[self.tel_id]
        self._pix_deg = (geometry.pix_x.to_value(u.deg), geometry.pix_y.to_value(u.deg))
        n_pixels = subarray.tel[self.tel_id].camera.geometry.n_pixels
        self(
            np.zeros((1, n_pixels), np.float32),
            np.zeros((1, n_pixels), np.float32),
            np.zeros((1, 5)),
        )

    @classmethod
    def for_model(cls, generator, subarray, tel_id, refine=True):
        """The reselection of ``generator``'s training selection, None when it has none.

        ``refine``: include the model's refiner when it has one.
        """
        if not generator.selection:
            return None
        refiner = generator.refiner if refine else None
        return cls(subarray, tel_id, generator.selection, refiner=refiner)

    def parameters(self, images, peak_times):
        """ctapipe's DL1 parameter columns of the images (``QTable``, one row per image), and
        :data:`TIME_RESIDUAL_COLUMN`.

        Images with non-finite pixels get ctapipe's default (invalid) parameters, as in
        training.
        """
        images = np.asarray(images, dtype=np.float32)
        peak_times = np.asarray(peak_times, dtype=np.float32)
        finite = np.all(np.isfinite(images), axis=1) & np.all(np.isfinite(peak_times), axis=1)
        containers, residuals = [], np.full(len(images), np.nan)
        saved = FIT_RNG.bit_generator.state
        try:
            for i, (image, peak_time, ok) in enumerate(
                zip(images, peak_times, finite, strict=True)
            ):
                if not ok:
                    containers.append(self.processor.default_image_container)
                    continue
                FIT_RNG.bit_generator.state = _FIT_STATE
                event = ArrayEventContainer()
                event.dl1.tel[self.tel_id] = DL1CameraContainer(image=image, peak_time=peak_time)
                self.processor(event)
                dl1 = event.dl1.tel[self.tel_id]
                containers.append(dl1.parameters)
                residuals[i] = largest_time_residual(
                    *self._pix_deg, dl1.image_mask, peak_time, dl1.parameters
                )
        finally:
            # the processing of the run's output continues its own sequence
            FIT_RNG.bit_generator.state = saved
        table = QTable(parameter_columns(containers))
        table[TIME_RESIDUAL_COLUMN] = residuals
        return table, finite

    def mask_parameters(self, images, peak_times):
        """:data:`MASK_COLUMNS` of the images, as :meth:`parameters` gives them (``QTable``,
        finite mask), from ctapipe's cleaning and image checks only.
        """
        images = np.asarray(images, dtype=np.float32)
        peak_times = np.asarray(peak_times, dtype=np.float32)
        finite = np.all(np.isfinite(images), axis=1) & np.all(np.isfinite(peak_times), axis=1)
        columns = {
            name: np.full(len(images), value.value) for name, value in self._mask_defaults.items()
        }
        for i in np.flatnonzero(finite):
            mask = self.processor.clean(
                tel_id=self.tel_id,
                image=images[i],
                arrival_times=peak_times[i],
                monitoring=self._monitoring,
            )
            selected = images[i][mask]
            if all(self.processor.check_image(image=selected)):
                # as hillas_parameters (float64 sum), morphology and descriptive_statistics
                columns["hillas_intensity"][i] = np.sum(selected.astype(np.float64))
                columns["morphology_n_pixels"][i] = np.count_nonzero(mask)
                columns["intensity_max"][i] = selected.max()
        table = QTable(
            {
                name: u.Quantity(values, self._mask_defaults[name].unit)
                for name, values in columns.items()
            }
        )
        return table, finite

    def __call__(self, images, peak_times, conditions=None):
        """``(N,)`` bool: True for the images that pass the selection.

        With a refiner, ``(N,)`` float: the acceptance probability (0 where the selection
        fails); ``conditions`` ``(N, 5)`` are then required.
        """
        if self.mask_only:
            table, finite = self.mask_parameters(images, peak_times)
        else:
            table, finite = self.parameters(images, peak_times)
        try:
            passed = self.query.get_table_mask(table)
        except Exception as err:
            raise ValueError(
                f"Selection {self.selection} cannot be evaluated on ctapipe's image parameters:"
                f" {type(err).__name__}: {err}"
            ) from None
        passed = np.asarray(passed, dtype=bool) & finite
        if self.refiner is None:
            return passed
        if conditions is None:
            raise ValueError("a refined selection needs the conditions of the images")
        probability = np.zeros(len(passed))
        if passed.any():
            if self.mask_only:  # the refiner reads more: all parameters of the passing draws
                images, peak_times = np.asarray(images)[passed], np.asarray(peak_times)[passed]
                table, _ = self.parameters(images, peak_times)
            else:
                table = table[passed]
            columns = {name: table[name] for name, _ in self.refiner.features}
            probability[passed] = self.refiner.acceptance(columns, np.asarray(conditions)[passed])
        return probability
