"""``DiffusionEventSource``: generated proton events from a trained model, as a ctapipe EventSource.

``ctapipe-process -i model.safetensors -o out.dl1.h5`` picks this source because
:meth:`DiffusionEventSource.is_compatible` recognises the project's checkpoint format from
the file header (standard library only). ``ctapipe-process -i DiffusionEventSource`` (the
class name, where no file of that name exists) picks it too and generates with
``DiffusionEventSource.model_path``, by default the bundled model: ctapipe selects sources
only through ``is_compatible(input_url)``, so the name is how a user asks for this source.
The run then works like a sim_telarray run:

1. ``n_showers`` showers are thrown from the :class:`~ctapipe_genshower.thrown.ThrownDistribution`
   (the training simulation's settings unless overridden, and only inside the trained domain
   unless ``allow_extrapolation``), in fixed chunks with their own seeded streams;
2. each thrown shower is kept with the learned probability P(selected | shower);
3. the networks run only for the kept showers, ``events_per_batch`` events together in
   network calls of ``batch_size`` images, each event with its own seed derived from
   ``(seed, obs_id, event_id)``, so an event does not depend on the batch sizes or on the
   other events;
4. the model was trained on selected images only, so each generated image is checked with the
   training selection applied again as in training
   (:class:`~ctapipe_genshower.io.reselection.ImageReselection`); an event that fails it is
   drawn again for the same shower (new size, new image noise, the next stream of its seed),
   up to ``max_redraws`` times, and kept as its last draw (counted as exhausted) when every
   draw failed (with a refiner: one of its draws chosen in proportion to their acceptance
   probabilities, so one that passes the selection whenever one did). The numbers of
   redrawn events, redraws and exhausted events are logged at the end of the run and are
   part of
   :attr:`DiffusionEventSource.generation_metadata`;
5. a refined model (``ctapipe-genshower-refine``) also keeps a selected image only with its
   refiner's acceptance probability (a density ratio between the training simulation and
   the model, :mod:`ctapipe_genshower.model.density_ratio`) and redraws the others the same
   way (``refine``; off with ``--no-refine`` or when the sampling differs from the one the
   refiner was fitted for).

Steps 1 and 2 are cheap and run in ``__init__`` (the :class:`GenerationPlan`), so the number
of thrown showers, the shower histogram and the number of events are known before the first
event: ``simulation_config`` (read by the DataWriter at start) and
``simulated_shower_distributions`` (read at the end) always agree. When ``max_events`` is
set, the run is cut right after the ``max_events``-th selected shower: the thrown count is
the number of showers thrown up to and including that one, so the bookkeeping of a shortened
run is that of a smaller, complete run.

torch is imported only when a source is constructed (``generator`` module), never when this
module is imported: every ctapipe tool imports the ``ctapipe_io`` entry points.
"""

import json
from dataclasses import dataclass, replace
from importlib.resources import files
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.table import QTable
from ctapipe.containers import SimulatedShowerContainer
from ctapipe.core import Provenance, ToolConfigurationError
from ctapipe.core.traits import Bool, CaselessStrEnum, Float, Int
from ctapipe.core.traits import Path as PathTrait

from .. import __version__
from ..checkpoint import (
    FORMAT,
    CheckpointError,
    claims_file,
    file_sha256,
    read_header,
    read_metadata,
)
from ..data.conditions import conditions_from_truth
from ..model.config import SOLVER_NAMES, jsonable_eta
from .simulated_run import THROWN_TRAITS, RunPlan, SimulatedRunEventSource, quantity_trait

__all__ = [
    "DEFAULT_MAX_REDRAWS",
    "DEFAULT_OBS_ID",
    "DETECTOR_PROG_ID",
    "PROTON_PRIMARY_ID",
    "SOURCE_NAME",
    "THROW_CHUNK_SIZE",
    "UNKNOWN_TRUE_IMAGE",
    "DiffusionEventSource",
    "GenerationPlan",
    "default_model_path",
    "event_seed",
]

#: ``SimulationConfigContainer.detector_prog_id`` of generated runs (sim_telarray is 1).
DETECTOR_PROG_ID = 100
#: File name suffix of model files.
MODEL_SUFFIX = ".safetensors"
#: Default ``obs_id`` of generated runs, apart from the toy's and sim_telarray's first runs
#: so that a default generated run merges with them.
DEFAULT_OBS_ID = 1001
#: ``input_url`` that selects this source with ``model_path`` (no file of that name exists).
SOURCE_NAME = "DiffusionEventSource"
#: Value of every pixel of ``true_image`` (and of ``true_image_sum``) for models that
#: generate DL1 images, not photo-electron counts. ctapipe and ctapipe-merge need the
#: column; a negative count cannot be mistaken for simulation truth. Models with a learned
#: pixel response generate the signal and write it here.
UNKNOWN_TRUE_IMAGE = -1
#: Showers are thrown in chunks of this size, chunk ``c`` from its own seeded stream.
#: Part of the reproducibility contract: changing it changes the thrown showers.
THROW_CHUNK_SIZE = 100_000
#: ``SimulatedShowerContainer.shower_primary_id`` of protons (sim_telarray convention).
PROTON_PRIMARY_ID = 101
#: Default images per network call on each device (``batch_size`` None).
CPU_BATCH_SIZE, CUDA_BATCH_SIZE = 32, 256
#: Spawn key of the per-event noise seeds (the throw uses ``THROW_STREAM``).
_EVENT_STREAM = 1
#: ``DiffusionEventSource.max_redraws`` of a run without a refiner (the default None).
DEFAULT_MAX_REDRAWS = 10


def event_seed(seed, obs_id, event_id):
    """Integer seed of one event's noise, from ``SeedSequence([seed, obs_id, event_id])``."""
    sequence = np.random.SeedSequence([seed, obs_id, event_id], spawn_key=(_EVENT_STREAM,))
    return int(sequence.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def default_model_path():
    """Path of the bundled default model (package data; the file may be absent in a checkout)."""
    return Path(str(files("ctapipe_genshower") / "resources" / "default_model.safetensors"))


def _readable_header(path):
    """Whether ``path`` has a readable safetensors header (of any format; never raises)."""
    try:
        read_header(path)
    except (CheckpointError, OSError):
        return False
    return True


def _names_this_source(path):
    """True when ``path`` is the source name (a model file of that name is still a model)."""
    return path.name == SOURCE_NAME and not claims_file(path)


@dataclass
class GenerationPlan(RunPlan):
    """The plan of a generated run: bookkeeping plus the selected showers to generate.

    Attributes
    ----------
    event_id : numpy.ndarray
        Shower number (1-based) of each selected shower, its ``event_id``.
    showers : astropy.table.QTable
        Truth of the selected showers (the columns of ``ThrownDistribution.sample``).
    conditions : numpy.ndarray
        ``(N, 5)`` float32 condition vectors of the selected showers.
    seeds : numpy.ndarray
        ``(N,)`` uint64 noise seeds of the events, :func:`event_seed`.
    """

    event_id: np.ndarray
    showers: QTable
    conditions: np.ndarray
    seeds: np.ndarray


class DiffusionEventSource(SimulatedRunEventSource):
    """Generated single-telescope proton events from a ctapipe-genshower model file.

    The input is a generator checkpoint (``*.safetensors`` written by
    ``ctapipe-genshower-train``). Events are DL1 images (charge and peak time, float32) with
    full shower truth, trigger, pointing and simulation bookkeeping, so ctapipe's
    ``ctapipe-process``, ``TableLoader`` and ``ctapipe-merge`` and pyirf work unchanged.

    The thrown distribution defaults to the training simulation's settings. Requests outside
    the trained domain (a wider energy range, larger scatter radius, a viewcone outside the
    trained one, another pointing) are refused unless ``allow_extrapolation`` is set; an
    extrapolated run is marked in the logs, the provenance and :attr:`generation_metadata`.

    Output is reproducible: the same model, ``seed``, ``obs_id`` and settings give the same
    events whatever the ``batch_size`` and ``events_per_batch``. Runs with different
    ``obs_id`` are independent and can be produced in parallel and merged with
    ``ctapipe-merge``.
    """

    model_path = PathTrait(
        None,
        allow_none=True,
        exists=True,
        directory_ok=False,
        help=(
            f"Model file to generate with when the input is the name {SOURCE_NAME!r}"
            " (None: the bundled default model)"
        ),
    ).tag(config=True)
    obs_id = Int(
        DEFAULT_OBS_ID,
        min=1,
        help="Observation (run) id of the events; unique per run for merging",
    ).tag(config=True)
    tel_id = Int(
        None,
        allow_none=True,
        help="Telescope that gets the events (None: the first the model was trained on)",
    ).tag(config=True)
    n_steps = Int(
        None, allow_none=True, min=1, help="Sampler steps per image (None: the model's default)"
    ).tag(config=True)
    solver = CaselessStrEnum(
        SOLVER_NAMES,
        default_value="ddim",
        help=(
            "Sampler: 'ddim' (first order, n_steps network calls), 'dpmpp-2m' (DPM-Solver++ "
            "2M, n_steps calls) or 'heun' (EDM, 2 n_steps - 1 calls)"
        ),
    ).tag(config=True)
    eta = Float(
        None,
        allow_none=True,
        min=0.0,
        max=1.0,
        help=(
            "DDIM's stochasticity: 0 the deterministic (probability-flow) sampler, 1 the "
            "ancestral (DDPM-like) one, fresh noise at each step from the event's own stream "
            "(ddim only); None: the model's own (deterministic, or the per-step eta it "
            "records, docs/sampling.md)"
        ),
    ).tag(config=True)
    batch_size = Int(
        None,
        allow_none=True,
        min=1,
        help=(
            f"Images generated per network call (None: {CPU_BATCH_SIZE} on the CPU, where"
            f" larger batches gain little and the progress bar moves per batch;"
            f" {CUDA_BATCH_SIZE} on CUDA)"
        ),
    ).tag(config=True)
    events_per_batch = Int(
        None,
        allow_none=True,
        min=1,
        help=(
            "Events generated together (None: the images per network call, batch_size). A"
            " refined run redraws most events many times; each redraw round holds the"
            " events of the batch not yet kept, and more events per batch keep those rounds"
            " in fuller network calls. The events do not depend on it; the progress bar"
            " moves per batch"
        ),
    ).tag(config=True)
    device = CaselessStrEnum(
        ["auto", "cpu", "cuda"], default_value="auto", help="Device of the networks"
    ).tag(config=True)
    bf16 = Bool(
        None,
        allow_none=True,
        help="bf16 autocast of the pixel network (None: on CUDA, not on the CPU)",
    ).tag(config=True)
    device_noise = Bool(
        None,
        allow_none=True,
        help=(
            "Draw the image noise on the device from counter-based per-event streams instead"
            " of one CPU generator per event (None: on CUDA, not on the CPU; other images"
            " for the same seed)"
        ),
    ).tag(config=True)
    compile = Bool(
        False,
        help=(
            "Run the pixel network through torch.compile (2.6x faster on a GPU in bf16;"
            " the first batch waits for the compilation; slower on the CPU)"
        ),
    ).tag(config=True)
    pixel_response_file = PathTrait(
        None,
        allow_none=True,
        exists=True,
        directory_ok=False,
        help=(
            "A DL1 file of simulated events with images and true images (e.g. a short"
            " simulation at another night-sky background level): the pixel response is"
            " learned from its (true image, DL1 image) pairs and replaces the model's."
            " Needs a model with a learned pixel response (--model small-signal)"
        ),
    ).tag(config=True)
    channels_last = Bool(
        True,
        help=(
            "Run the pixel network in the channels-last memory format: the same arithmetic"
            " in another order (images agree to float32 rounding), ~1.5x faster on the CPU"
        ),
    ).tag(config=True)

    energy_min = quantity_trait(u.TeV, help="Minimum thrown energy (None: training simulation)")
    energy_max = quantity_trait(u.TeV, help="Maximum thrown energy (None: training simulation)")
    spectral_index = Float(
        None, allow_none=True, help="Thrown spectral index, e.g. -2 (None: training simulation)"
    ).tag(config=True)
    max_scatter_radius = quantity_trait(
        u.m, help="Maximum core distance (None: training simulation)"
    )
    min_viewcone = quantity_trait(u.deg, help="Inner viewcone radius (None: training simulation)")
    max_viewcone = quantity_trait(u.deg, help="Outer viewcone radius (None: training simulation)")
    pointing_alt = quantity_trait(u.deg, help="Pointing altitude (None: the model's pointing)")
    pointing_az = quantity_trait(u.deg, help="Pointing azimuth (None: the model's pointing)")
    allow_extrapolation = Bool(
        False,
        help="Generate even where the request lies outside the trained domain (recorded)",
    ).tag(config=True)
    refine = Bool(
        True,
        help=(
            "Apply the model's refiner when it has one (a refined model from"
            " ctapipe-genshower-refine): each selected image is kept with the refiner's"
            " acceptance probability and redrawn otherwise. Needs max_redraws > 0 and the"
            " solver and steps the refiner was fitted for"
        ),
    ).tag(config=True)
    refiner_cap_quantile = Float(
        None,
        allow_none=True,
        help=(
            "Cap of the refiner's density ratio as a quantile over generated images, one of"
            " those the refiner recorded (e.g. 0.9 or 0.98): higher follows the simulation"
            " more closely at more draws per event. None: the cap the model was refined with"
        ),
    ).tag(config=True)
    max_redraws = Int(
        None,
        allow_none=True,
        min=0,
        help=(
            "Most redraws of an event whose image fails the model's training selection"
            " (ctapipe's default ImageProcessor + the selection expressions, as in training)"
            " or its refiner: the model generates selected images, so a failing image is"
            " drawn again for the same shower (new size and image noise); an event failing"
            " every draw is kept as its last draw (refined: one of its draws, chosen in"
            " proportion to their acceptance probabilities) and"
            " counted. 0: no check, no redraws."
            f" None: {DEFAULT_MAX_REDRAWS}, or for a refined run enough redraws that 99.9 %"
            " of the events of average acceptance are kept by the refiner. Models without a"
            " recorded selection are never redrawn"
        ),
    ).tag(config=True)

    producer_id = "ctapipe-genshower"
    detector_prog_id = DETECTOR_PROG_ID
    chunk_size = THROW_CHUNK_SIZE

    def __init__(self, input_url=None, config=None, parent=None, **kwargs):
        super().__init__(input_url=input_url, config=config, parent=parent, **kwargs)
        path = self._resolve_model_path()

        self.model_metadata = self._read_model_metadata(path)
        self.model_sha256 = file_sha256(path)
        self.model_file = path.resolve()

        import torch

        from ..generator import ShowerGenerator

        if self.device == "cuda" and not torch.cuda.is_available():
            raise ToolConfigurationError(
                "DiffusionEventSource.device='cuda' but CUDA is not available"
            )
        try:
            self._model = ShowerGenerator.from_file(
                path,
                device=self.device,
                bf16=self.bf16,
                channels_last=self.channels_last,
                device_noise=self.device_noise,
                compile=self.compile,
            )
            subarray = self._model.subarray
        except (OSError, ValueError, KeyError, RuntimeError) as err:
            raise ToolConfigurationError(f"Cannot load generator model {path}: {err}") from err

        if self.pixel_response_file is not None:
            self._replace_pixel_response(path)
        try:  # a distilled student samples with the one setting it was trained for
            self._model.model_config.check_sampling(
                self.solver, self.resolved_n_steps, *self.resolved_eta
            )
        except ValueError as err:
            raise ToolConfigurationError(f"{path}: {err}") from None
        if self.eta and self.solver != "ddim":
            raise ToolConfigurationError(
                f"DiffusionEventSource.eta applies to the ddim solver only, not {self.solver!r}"
            )
        tel_id = self._choose_telescope(subarray, self._model.n_pixels, path)
        thrown = self._requested_thrown(self._model.thrown)
        self.extrapolation = self._check_domain(self._model.thrown, thrown)
        self._reselection = self._make_reselection(subarray, tel_id, path)
        #: Redraws this run allows (0 without a reselection).
        self.resolved_max_redraws = (
            0 if self._reselection is None else self._max_redraws_for(self._reselection.refiner)
        )
        #: Events drawn more than once, redraws in all, events failing every draw.
        self.n_redrawn_events = self.n_redraws = self.n_exhausted = 0

        Provenance().add_input_file(
            str(self.model_file),
            role="DiffusionEventSource model",
            add_meta=False,
            reference_meta={
                "format": FORMAT,
                "format_version": str(self.model_metadata.get("format_version")),
                "sha256": self.model_sha256,
            },
        )

        self._start_run(subarray, tel_id, thrown)
        self._set_plan(self._plan_run())
        self.log.info(
            "obs_id %d: %d showers thrown, %d selected (to generate)",
            self.obs_id,
            self.n_thrown,
            len(self),
        )

    # -- input checks -----------------------------------------------------------------
    def _resolve_model_path(self):
        """The model file: ``input_url``, or ``model_path`` when the input is the source name."""
        path = Path(self.input_url).expanduser()
        if not _names_this_source(path):
            if self.model_path is not None:
                raise ToolConfigurationError(
                    f"DiffusionEventSource.model_path is set but the input {path} is a model"
                    f" file too; give the model once (-i {SOURCE_NAME} with model_path, or"
                    " -i <model file>)"
                )
            return path
        if path.exists():
            raise ToolConfigurationError(
                f"The input {SOURCE_NAME!r} names the file {path}, which is not a"
                " ctapipe-genshower model; rename it or give the model path as input"
            )
        return Path(self.model_path) if self.model_path is not None else default_model_path()

    @staticmethod
    def _read_model_metadata(path):
        if not path.is_file():
            raise ToolConfigurationError(f"Generator model file not found: {path}")
        try:
            # checks the format and format_version too
            return read_metadata(path)
        except (OSError, ValueError, KeyError) as err:
            raise ToolConfigurationError(f"Cannot read generator model {path}: {err}") from err

    def _choose_telescope(self, subarray, n_pixels, path):
        """The telescope that gets the events: ``tel_id``, else the model's first one.

        The subarray is the training files' own (all their telescopes, so that generated
        runs merge with them); the model was trained on the telescopes ``tel_ids`` of one
        type, and a run generates the images of one of them.
        """
        trained = self._model.training_meta.get("tel_ids") or [int(subarray.tel_ids[0])]
        tel_id = trained[0] if self.tel_id is None else self.tel_id
        if tel_id not in trained:
            raise ToolConfigurationError(
                f"DiffusionEventSource.tel_id={tel_id}: model {path} was trained on the"
                f" telescopes {trained}"
            )
        if tel_id not in subarray.tel:
            raise ToolConfigurationError(f"Model {path} is inconsistent: no telescope {tel_id}")
        camera = subarray.tel[tel_id].camera
        if camera.geometry.n_pixels != n_pixels:
            raise ToolConfigurationError(
                f"Model {path} is inconsistent: its networks make {n_pixels}-pixel images"
                f" but its camera {camera.name} has {camera.geometry.n_pixels} pixels"
            )
        return tel_id

    def _make_reselection(self, subarray, tel_id, path):
        """The training selection as ``accept`` of the generator; None: no redraws."""
        from .reselection import ImageReselection

        if self.max_redraws == 0:
            if self._model.refiner is not None and self.refine:
                self.log.warning("Model %s: refiner off, it needs max_redraws > 0", path)
            return None
        if not self._model.selection:
            self.log.info("Model %s records no training selection: images are not redrawn", path)
            return None
        try:
            return ImageReselection.for_model(
                self._model, subarray, tel_id, refine=self._use_refiner(path)
            )
        except ValueError as err:
            raise ToolConfigurationError(
                f"Cannot re-apply the training selection of model {path}: {err}"
            ) from err

    def _max_redraws_for(self, refiner):
        """``max_redraws``, or its default for a plain or refined run."""
        if self.max_redraws is not None:
            return self.max_redraws
        if refiner is None:
            return DEFAULT_MAX_REDRAWS
        samples = refiner.info.get("samples", {})
        passing = samples.get("n_generated_selected", 1) / max(
            samples.get("draws_per_event", 1.0) * samples.get("n_read", 1), 1
        )
        per_draw = min(max(refiner.acceptance_rate * passing, 1e-3), 1.0)
        if per_draw >= 1.0:
            return DEFAULT_MAX_REDRAWS
        return max(DEFAULT_MAX_REDRAWS, int(np.ceil(np.log(1e-3) / np.log1p(-per_draw))))

    def _use_refiner(self, path):
        """Whether the run applies the model's refiner (logged when it has one but does not);
        sets the configured cap."""
        refiner = self._model.refiner
        if refiner is None or not self.refine:
            return False
        if self.refiner_cap_quantile is not None:
            try:
                self._model.refiner = refiner = refiner.with_cap_quantile(self.refiner_cap_quantile)
            except ValueError as err:
                raise ToolConfigurationError(f"{path}: {err}") from None
        fitted = refiner.info.get("sampling", {})
        eta, channels = self.resolved_eta
        here = {
            "solver": self.solver,
            "n_steps": self.resolved_n_steps,
            "eta": jsonable_eta(eta),
            "eta_channels": None if channels is None else list(channels),
        }
        differs = {k: (fitted[k], v) for k, v in here.items() if k in fitted and fitted[k] != v}
        if differs:
            self.log.warning(
                "Model %s: refiner off, it was fitted for %s",
                path,
                ", ".join(f"{k}={a} (this run: {b})" for k, (a, b) in differs.items()),
            )
            return False
        fitted_bf16, run_bf16 = bool(fitted.get("bf16", False)), bool(self._model.bf16)
        if fitted_bf16 != run_bf16:
            # measured: bf16 and float32 images of one student validate alike
            # (docs/model_card.md), so the refiner stays on
            precision = {True: "bf16", False: "float32"}
            self.log.warning(
                "Model %s: refiner fitted on %s images, this run generates %s ones",
                path,
                precision[fitted_bf16],
                precision[run_bf16],
            )
        return True

    @property
    def refining(self):
        """Whether generated images pass through the model's refiner in this run."""
        return self._reselection is not None and self._reselection.refiner is not None

    def _requested_thrown(self, trained):
        """The trained thrown distribution with the configured (non-None) traits replaced."""
        overrides = {name: getattr(self, name) for name in THROWN_TRAITS}
        overrides = {k: v for k, v in overrides.items() if v is not None}
        try:
            return replace(trained, **overrides)
        except ValueError as err:
            raise ToolConfigurationError(f"Invalid thrown distribution: {err}") from err

    def _check_domain(self, trained, requested):
        """List the ways ``requested`` leaves the trained phase space; refuse unless allowed."""

        def close(a, b):
            return u.isclose(a, b, rtol=1e-6, atol=1e-9 * b.unit)

        problems = []
        if requested.energy_min < trained.energy_min and not close(
            requested.energy_min, trained.energy_min
        ):
            problems.append(f"energy_min {requested.energy_min} < trained {trained.energy_min}")
        if requested.energy_max > trained.energy_max and not close(
            requested.energy_max, trained.energy_max
        ):
            problems.append(f"energy_max {requested.energy_max} > trained {trained.energy_max}")
        if requested.max_scatter_radius > trained.max_scatter_radius and not close(
            requested.max_scatter_radius, trained.max_scatter_radius
        ):
            problems.append(
                f"max_scatter_radius {requested.max_scatter_radius}"
                f" > trained {trained.max_scatter_radius}"
            )
        if requested.max_viewcone > trained.max_viewcone and not close(
            requested.max_viewcone, trained.max_viewcone
        ):
            problems.append(
                f"max_viewcone {requested.max_viewcone} > trained {trained.max_viewcone}"
            )
        if requested.min_viewcone < trained.min_viewcone and not close(
            requested.min_viewcone, trained.min_viewcone
        ):
            problems.append(
                f"min_viewcone {requested.min_viewcone} < trained {trained.min_viewcone}"
            )
        for key in ("pointing_alt", "pointing_az"):
            a, b = getattr(requested, key), getattr(trained, key)
            # azimuths 360 deg and 0 deg (or -10 deg and 350 deg) are one direction
            difference = (a - b).to(u.deg)
            if key == "pointing_az":
                difference = (difference + 180 * u.deg) % (360 * u.deg) - 180 * u.deg
            if not close(b.to(u.deg) + difference, b.to(u.deg)):
                problems.append(f"{key} {a} differs from trained {b}")

        if problems and not self.allow_extrapolation:
            raise ToolConfigurationError(
                "Request outside the trained domain of the model: "
                + "; ".join(problems)
                + " (set DiffusionEventSource.allow_extrapolation=True to generate anyway)"
            )
        for problem in problems:
            self.log.warning("Extrapolating beyond the trained domain: %s", problem)
        return problems

    # -- the run plan: thrown showers and selection, no image generation ---------------
    def _plan_run(self):
        """Throw the showers chunk by chunk and draw which of them are selected."""
        tel_position = self._subarray.positions[self._tel_id]
        max_selected = self.max_events if self.max_events else None

        selected = []
        distribution = None
        n_thrown = 0
        n_selected = 0
        for chunk in range(self.n_chunks):
            showers, rng = self._throw(chunk)
            conditions = conditions_from_truth(
                true_energy=showers["true_energy"],
                true_core_x=showers["true_core_x"],
                true_core_y=showers["true_core_y"],
                true_source_fov_lon=showers["true_source_fov_lon"],
                true_source_fov_lat=showers["true_source_fov_lat"],
                tel_position=tel_position,
            )
            # the selection continues the throw stream
            is_selected = np.asarray(self._model.sample_selection(conditions, rng), dtype=bool)

            if max_selected is not None and n_selected + is_selected.sum() >= max_selected:
                # cut the run right after the max_events-th selected shower
                last = np.flatnonzero(is_selected)[max_selected - n_selected - 1]
                showers = showers[: last + 1]
                conditions = conditions[: last + 1]
                is_selected = is_selected[: last + 1]

            n_thrown += len(showers)
            distribution = self._add_to_distribution(
                distribution, showers["true_energy"], showers["true_core_x"], showers["true_core_y"]
            )
            index = np.flatnonzero(is_selected)
            n_selected += len(index)
            selected.append((chunk * self.chunk_size + index, showers[index], conditions[index]))
            if max_selected is not None and n_selected >= max_selected:
                break

        event_id = np.concatenate([s[0] for s in selected]) + 1  # shower number 1..n_showers
        showers = QTable(
            {
                key: u.Quantity(np.concatenate([s[1][key] for s in selected]))
                for key in selected[0][1].colnames
            }
        )
        seeds = np.array(
            [event_seed(self.seed, self.obs_id, int(e)) for e in event_id], dtype=np.uint64
        )
        return GenerationPlan(
            n_thrown=n_thrown,
            distribution=distribution,
            event_id=event_id,
            showers=showers,
            conditions=np.concatenate([s[2] for s in selected]).astype(np.float32),
            seeds=seeds,
        )

    # -- EventSource interface -----------------------------------------------------------
    @staticmethod
    def is_compatible(file_path):
        """True for a ctapipe-genshower model file (reads only the safetensors header).

        A damaged model whose header still names the format is claimed too, and so is a
        ``*.safetensors`` file whose header cannot be read at all (empty, truncated,
        random bytes; no reader of any format can use it), so that the user gets the
        reader's clear error from ``__init__`` instead of "no compatible EventSource".
        Readable safetensors files of other formats are left alone.
        """
        path = Path(file_path)
        if path.name == SOURCE_NAME or claims_file(path):
            return True
        return path.suffix == MODEL_SUFFIX and path.is_file() and not _readable_header(path)

    def __len__(self):
        """Number of events the run yields (selected showers); used by progress bars."""
        return len(self._plan.event_id)

    def __bool__(self):
        return True

    @property
    def resolved_batch_size(self):
        """Images per network call actually used (``batch_size`` or the device's default)."""
        if self.batch_size is not None:
            return self.batch_size
        return CUDA_BATCH_SIZE if self._model.device.type == "cuda" else CPU_BATCH_SIZE

    @property
    def resolved_events_per_batch(self):
        """Events generated together (``events_per_batch`` or the images per network call)."""
        if self.events_per_batch is not None:
            return self.events_per_batch
        return self.resolved_batch_size

    @property
    def resolved_eta(self):
        """``(eta, eta_channels)`` actually used (``eta`` or the model's recorded sampler)."""
        return self._model.resolve_eta(self.eta, self.solver)

    @property
    def resolved_n_steps(self):
        """Sampler steps actually used (``n_steps`` or the model's default)."""
        return self._model.resolve_n_steps(self.n_steps)

    @property
    def generation_metadata(self):
        """Flat description of the model and settings that made this run.

        Keys are ctapipe ``CONTEXT`` metadata keys (hierarchy separated by spaces); the
        ``ctapipe-genshower-generate`` tool writes them into the output file's attributes.
        """
        eta, channels = self.resolved_eta
        eta = jsonable_eta(eta)
        return {
            "GENSHOWER VERSION": __version__,
            "GENSHOWER MODEL PATH": str(self.model_file),
            "GENSHOWER MODEL SHA256": self.model_sha256,
            "GENSHOWER MODEL FORMAT_VERSION": str(self.model_metadata.get("format_version")),
            "GENSHOWER SEED": self.seed,
            "GENSHOWER OBS_ID": self.obs_id,
            "GENSHOWER N_SHOWERS": self.n_showers,
            "GENSHOWER N_THROWN": self.n_thrown,
            "GENSHOWER N_STEPS": self.resolved_n_steps,
            "GENSHOWER SOLVER": self.solver,
            # a number, or the per-step list as text
            "GENSHOWER ETA": eta if isinstance(eta, float) else str(eta),
            "GENSHOWER ETA_CHANNELS": str(channels or "all"),
            "GENSHOWER BF16": self._model.bf16,
            "GENSHOWER CHANNELS_LAST": self._model.channels_last,
            # the images per network call and the events drawn together: bit-identical
            # files need the same ones (the batch changes the float rounding, not the events)
            "GENSHOWER BATCH_SIZE": self.resolved_batch_size,
            "GENSHOWER EVENTS_PER_BATCH": self.resolved_events_per_batch,
            "GENSHOWER DEVICE_NOISE": self._model.device_noise,
            "GENSHOWER COMPILE": self._model.compiled,
            "GENSHOWER PIXEL_RESPONSE": "none"
            if "response" not in self._model.transforms
            else str(self.pixel_response_file or "model"),
            "GENSHOWER THROWN": json.dumps(self.thrown.to_dict()),
            "GENSHOWER EXTRAPOLATION": "; ".join(self.extrapolation) or "none",
            "GENSHOWER SELECTION": json.dumps(self._reselection.selection)
            if self._reselection is not None
            else "none",
            "GENSHOWER REFINER": self._refiner_record(),
            "GENSHOWER MAX_REDRAWS": self.resolved_max_redraws,
            "GENSHOWER N_REDRAWN_EVENTS": self.n_redrawn_events,
            "GENSHOWER N_REDRAWS": self.n_redraws,
            "GENSHOWER N_EXHAUSTED": self.n_exhausted,
        }

    def _refiner_record(self):
        """``none`` (the model has none), ``off`` or ``on (...)`` for the output's metadata."""
        refiner = self._model.refiner
        if refiner is None:
            return "none"
        if not self.refining:
            return "off"
        return (
            f"on (cap quantile {refiner.cap_quantile:g},"
            f" expected acceptance {refiner.acceptance_rate:.3f})"
        )

    def _log_redraws(self):
        """INFO line of the redraw counts (complete once the last batch is generated)."""
        if self._reselection is None:
            return
        self.log.info(
            "obs_id %d: %d of %d events redrawn (%d redraws in all, %.3f draws per event),"
            " %d not kept after %d redraws (kept as the last draw, or one chosen by acceptance"
            " with a refiner)",
            self.obs_id,
            self.n_redrawn_events,
            len(self),
            self.n_redraws,
            1 + self.n_redraws / max(len(self), 1),
            self.n_exhausted,
            self.resolved_max_redraws,
        )

    def close(self):
        self._model = None
        super().close()

    def _generator(self):
        plan = self._plan
        n_events = len(plan.event_id)
        unknown_true_image = np.full(self._model.n_pixels, UNKNOWN_TRUE_IMAGE, dtype=np.int32)
        batch_size = self.resolved_batch_size
        events_per_batch = self.resolved_events_per_batch
        self.n_redrawn_events = self.n_redraws = self.n_exhausted = 0
        for start in range(0, n_events, events_per_batch):
            stop = min(start + events_per_batch, n_events)
            out = self._model.generate(
                plan.conditions[start:stop],
                plan.seeds[start:stop].astype(np.int64),
                n_steps=self.n_steps,
                solver=self.solver,
                eta=self.eta,
                batch_size=batch_size,
                accept=None if self._reselection is None else self._accept,
                max_redraws=self.resolved_max_redraws,
            )
            images = np.asarray(out["image"], dtype=np.float32)
            peak_times = np.asarray(out["peak_time"], dtype=np.float32)
            self._check_finite(images, peak_times, start)
            self._count_redraws(out)
            if stop == n_events:
                self._log_redraws()
            true_images = out.get("true_image")  # the generated signal, where there is one
            for i in range(start, stop):
                yield self._make_event(
                    count=i,
                    event_id=int(plan.event_id[i]),
                    shower=self._shower(i),
                    image=images[i - start],
                    peak_time=peak_times[i - start],
                    true_image=unknown_true_image
                    if true_images is None
                    else true_images[i - start],
                    true_image_sum=UNKNOWN_TRUE_IMAGE if true_images is None else None,
                )

    def _replace_pixel_response(self, model_path):
        """Learn the pixel response of ``pixel_response_file`` and use it instead of the
        model's (the network's signal is unchanged: another NSB level, another camera
        calibration)."""
        from ..data.dl1_file import read_pixel_pairs
        from ..model.pixel_response import PixelResponse

        if "response" not in self._model.transforms:
            raise ToolConfigurationError(
                f"{model_path} makes DL1 images directly (no learned pixel response): "
                "DiffusionEventSource.pixel_response_file needs a model such as --model "
                "small-signal"
            )
        source = self.pixel_response_file
        try:
            pairs = read_pixel_pairs(source, self._model.n_pixels)
            response = PixelResponse.fit(**pairs)
        except (OSError, ValueError) as err:
            raise ToolConfigurationError(f"Cannot learn a pixel response: {err}") from None
        self._model.transforms["response"] = response
        Provenance().add_input_file(str(source), role="DiffusionEventSource pixel response")
        self.log.info("pixel response learned from %s (%d events)", source, len(pairs["image"]))

    def _accept(self, images, peak_times, conditions):
        """The generator's ``accept``: non-finite images pass here, ``_check_finite`` stops them."""
        finite = np.all(np.isfinite(images), axis=1) & np.all(np.isfinite(peak_times), axis=1)
        answer = self._reselection(images, peak_times, conditions)
        if answer.dtype == bool:
            return answer | ~finite
        return np.where(finite, answer, 1.0)

    def _count_redraws(self, out):
        if out["accepted"] is None:
            return
        self.n_redrawn_events += int(np.count_nonzero(out["n_draws"] > 1))
        self.n_redraws += int(np.sum(out["n_draws"] - 1))
        self.n_exhausted += int(np.count_nonzero(~out["accepted"]))

    def _check_finite(self, images, peak_times, start):
        """Refuse a batch with non-finite pixels (a broken model): nothing of it is yielded."""
        bad = ~(np.all(np.isfinite(images), axis=1) & np.all(np.isfinite(peak_times), axis=1))
        n_bad = int(np.count_nonzero(bad))
        if n_bad:
            raise ToolConfigurationError(
                f"Model {self.model_file} generated {n_bad} of {len(bad)} images with"
                f" non-finite (NaN or inf) pixels (events {start + 1}-{start + len(bad)} of"
                " the run); the model is broken, e.g. NaN weights from a diverged training"
            )

    def _shower(self, i):
        """Truth of selected shower ``i``."""
        showers = self._plan.showers
        return SimulatedShowerContainer(
            energy=showers["true_energy"][i],
            alt=showers["true_alt"][i],
            az=showers["true_az"][i],
            core_x=showers["true_core_x"][i],
            core_y=showers["true_core_y"][i],
            shower_primary_id=PROTON_PRIMARY_ID,
        )
