"""``ctapipe-genshower-train``: train the generator on ctapipe DL1 files or a training file.

A thin ctapipe Tool around :func:`ctapipe_genshower.fit.train`:

1. inputs: ctapipe DL1 HDF5 files with images (several, globs) are converted chunk by chunk
   into a compact training file (:mod:`ctapipe_genshower.data`), or an already prepared
   training file is used as it is;
2. training streams that file in chunks (shower-level model, then the pixel diffusion
   model), with periodic checkpoints and ``--resume``;
3. the losses go to ``<output>.loss.csv`` and a PNG loss curve ``<output>.loss.png``.

Each phase (DL1 conversion, shower model, pixel model) has a progress bar, shown when
stderr is a terminal (``--progress`` / ``--no-progress`` decide). Bad settings and unusable
inputs are refused in ``setup`` (one line, exit code 2) before anything is written. A run
that fails or is interrupted (Ctrl-C, SIGTERM) before its first checkpoint removes what it
wrote (the converted training file, the loss log), so the same command can simply be run
again; after a checkpoint everything ``--resume`` needs is kept. The outputs are registered
with ctapipe's provenance.

Under ``torchrun --nproc_per_node=N`` the tool joins the process group (NCCL on GPUs, gloo
on CPU); rank 0 prepares the data and writes the files.
"""

import os
import sys
from contextlib import nullcontext
from dataclasses import fields, replace
from pathlib import Path

from ctapipe.core import Provenance, Tool, ToolConfigurationError
from ctapipe.core.traits import (
    Bool,
    CaselessStrEnum,
    Float,
    Int,
    List,
    Unicode,
    classes_with_traits,
    flag,
)
from ctapipe.core.traits import Path as PathTrait
from ctapipe.image import ImageCleaner, ImageProcessor
from traitlets.config import Config

from ..atomic import SIGTERM_EXIT_CODE, exit_on_sigterm
from ..checkpoint import FORMAT, FORMAT_VERSION, CheckpointError, file_sha256, read_metadata
from ..data import DL1TrainingReader, TrainingFile
from ..data.dl1 import TrainingSelection
from ..data.inputs import training_inputs
from ..fit import sibling_path, state_path_for
from ..model.config import NIGHT_SKY_TARGETS, PRESETS, ModelConfig
from ..training.config import MIXED_PRECISION, TEACHER_SOLVERS, TrainConfig
from ..training.history import LossLog, plot_loss_curve
from ..training.plan import check_settings, plan_training
from ..training.progress import ChunkProgress, PhaseProgress

__all__ = ["SIGTERM_EXIT_CODE", "TrainTool", "main"]


#: Provenance roles of the outputs (the model's is the role the EventSource reads it in).
ROLES = {
    "model": "DiffusionEventSource model",
    "state": "training state",
    "training_file": "training file",
    "csv": "loss log",
    "png": "loss curve",
}

#: the TrainConfig fields, whose defaults and help texts the tool's options take over
_TRAIN_FIELDS = {f.name: f for f in fields(TrainConfig)}


def _train_option(trait_type, name, *args, **kwargs):
    """A configurable trait for ``TrainConfig.<name>`` (same name, default and help)."""
    setting = _TRAIN_FIELDS[name]
    return trait_type(
        *args, default_value=setting.default, help=setting.metadata["help"], **kwargs
    ).tag(config=True)


class _StopRequested(Exception):
    """Raised from the training callback to stop after ``stop_after`` steps."""


class TrainTool(Tool):
    """Train a ctapipe-genshower generator (shower-level model + pixel diffusion model)."""

    name = "ctapipe-genshower-train"
    description = __doc__
    examples = """
    Toy protons -> DL1 -> model, on the CPU:
    > ctapipe-process -i examples/protons.toymc.yaml -o protons.dl1.h5 --write-images
    > ctapipe-genshower-train -i protons.dl1.h5 -o model.safetensors --steps 2000 --progress

    Prepare a training file once (no ctapipe needed to read it), then train on a GPU:
    > ctapipe-genshower-train -i 'dl1/*.h5' --telescope-type LSTCam \\
        --prepared-file lst.train.safetensors --prepare-only
    > ctapipe-genshower-train -i lst.train.safetensors -o lst.safetensors --device cuda

    Two processes with DistributedDataParallel (gloo on CPU, NCCL on GPUs):
    > torchrun --nproc_per_node=2 $(which ctapipe-genshower-train) -i train.safetensors \\
        -o model.safetensors
    """

    input_files = List(
        Unicode(),
        default_value=[],
        help=(
            "DL1 HDF5 files with images (globs allowed; files given after the options are "
            "inputs too) or one prepared training file"
        ),
    ).tag(config=True)
    output_path = PathTrait(
        default_value=None,
        allow_none=True,
        directory_ok=False,
        help="Generator checkpoint to write (.safetensors)",
    ).tag(config=True)
    prepared_file = PathTrait(
        default_value=None,
        allow_none=True,
        directory_ok=False,
        help=(
            "Where DL1 inputs are converted to a training file "
            "(default: <output>.training.safetensors)"
        ),
    ).tag(config=True)
    prepare_only = Bool(False, help="Only convert the DL1 inputs to a training file").tag(
        config=True
    )
    model = CaselessStrEnum(tuple(PRESETS), default_value="small", help="Network size preset").tag(
        config=True
    )
    channel_weights = List(
        Float(),
        default_value=None,
        allow_none=True,
        help=(
            "Weights of the charge and peak-time channels in the diffusion loss, e.g. "
            "--channel-weights 1 --channel-weights 2 (default: the preset's, 1 and 1)"
        ),
    ).tag(config=True)
    night_sky_charge = Float(
        default_value=None,
        allow_none=True,
        help=(
            "Pixels with DL1 charge at or below this (p.e.) get their peak times from a table "
            "learned from the training images instead of from the network, e.g. "
            "--night-sky-charge 1 (default: the network learns every pixel's time; "
            "docs/model.md, Night-sky times)"
        ),
    ).tag(config=True)
    night_sky_target = CaselessStrEnum(
        NIGHT_SKY_TARGETS,
        default_value="centre",
        help=(
            "What the network learns in the night-sky pixels (--night-sky-charge): one fixed "
            "time (centre) or each image's own time plane (plane)"
        ),
    ).tag(config=True)
    validation_fraction = Float(
        0.1, help="Fraction of the events (the last ones) kept for the validation loss"
    ).tag(config=True)
    steps = _train_option(Int, "steps")
    epochs = Float(
        default_value=None,
        allow_none=True,
        help="If given, train this many epochs (overrides steps)",
    ).tag(config=True)
    batch_size = _train_option(Int, "batch_size")
    learning_rate = _train_option(Float, "learning_rate")
    warmup_steps = _train_option(Int, "warmup_steps")
    min_snr_gamma = _train_option(Float, "min_snr_gamma")
    log_snr_shift = _train_option(Float, "log_snr_shift")
    time_log_snr_shift = _train_option(Float, "time_log_snr_shift")
    shower_pixel_weight = _train_option(Float, "shower_pixel_weight")
    shower_pixel_threshold = _train_option(Float, "shower_pixel_threshold")
    ema_decay = _train_option(Float, "ema_decay")
    grad_clip = _train_option(Float, "grad_clip")
    seed = _train_option(Int, "seed")
    device = _train_option(Unicode, "device")
    mixed_precision = _train_option(CaselessStrEnum, "mixed_precision", list(MIXED_PRECISION))
    chunk_size = _train_option(Int, "chunk_size")
    checkpoint_interval = _train_option(Int, "checkpoint_interval")
    validation_interval = _train_option(Int, "validation_interval")
    validation_events = _train_option(Int, "validation_events")
    log_interval = _train_option(Int, "log_interval")
    shower_steps = _train_option(Int, "shower_steps")
    fit_events = _train_option(Int, "fit_events")
    calibration_events = _train_option(Int, "calibration_events")
    init_model = _train_option(Unicode, "init_model", allow_none=True)
    distill_steps = _train_option(Int, "distill_steps")
    teacher_substeps = _train_option(Int, "teacher_substeps")
    teacher_solver = _train_option(CaselessStrEnum, "teacher_solver", list(TEACHER_SOLVERS))
    resume = Bool(False, help="Continue from <output>.state.safetensors").tag(config=True)
    stop_after = Int(
        default_value=None,
        allow_none=True,
        help=(
            "Stop (cleanly, state saved) at the first checkpoint at or after this step; "
            "continue later with --resume (for time-limited jobs; single process only)"
        ),
    ).tag(config=True)
    progress_bar = Bool(
        default_value=None,
        allow_none=True,
        help=(
            "Show progress bars (DL1 conversion, shower model, pixel model with the running "
            "loss); default: when stderr is a terminal"
        ),
    ).tag(config=True)
    overwrite = Bool(False, help="Overwrite existing output files").tag(config=True)
    selection = List(
        Unicode(),
        default_value=None,
        allow_none=True,
        help=(
            "Selection expressions on the DL1 parameter columns, all must pass, e.g. "
            "--selection 'hillas_intensity >= 250' --selection 'leakage_intensity_width_2 < 0.2'. "
            "Replaces TrainingSelection.quality_criteria (default: hillas_intensity >= 250)."
        ),
    ).tag(config=True)

    aliases = {
        ("i", "input"): "TrainTool.input_files",
        ("o", "output"): "TrainTool.output_path",
        ("t", "telescope-type"): "DL1TrainingReader.telescope_type",
        "selection": "TrainTool.selection",
        "nan-policy": "DL1TrainingReader.nan_policy",
        "prepared-file": "TrainTool.prepared_file",
        "model": "TrainTool.model",
        "channel-weights": "TrainTool.channel_weights",
        "night-sky-charge": "TrainTool.night_sky_charge",
        "night-sky-target": "TrainTool.night_sky_target",
        "validation-fraction": "TrainTool.validation_fraction",
        "steps": "TrainTool.steps",
        "epochs": "TrainTool.epochs",
        "batch-size": "TrainTool.batch_size",
        ("lr", "learning-rate"): "TrainTool.learning_rate",
        "ema-decay": "TrainTool.ema_decay",
        "min-snr-gamma": "TrainTool.min_snr_gamma",
        "log-snr-shift": "TrainTool.log_snr_shift",
        "time-log-snr-shift": "TrainTool.time_log_snr_shift",
        "shower-pixel-weight": "TrainTool.shower_pixel_weight",
        "grad-clip": "TrainTool.grad_clip",
        "seed": "TrainTool.seed",
        "device": "TrainTool.device",
        "mixed-precision": "TrainTool.mixed_precision",
        "checkpoint-interval": "TrainTool.checkpoint_interval",
        "validation-interval": "TrainTool.validation_interval",
        "shower-steps": "TrainTool.shower_steps",
        "stop-after": "TrainTool.stop_after",
        "init-model": "TrainTool.init_model",
        "distill-steps": "TrainTool.distill_steps",
        "teacher-substeps": "TrainTool.teacher_substeps",
        "teacher-solver": "TrainTool.teacher_solver",
        "log-interval": "TrainTool.log_interval",
    }

    flags = {
        **flag(
            "resume",
            "TrainTool.resume",
            "continue from the training-state file next to the output",
            "start a new training",
        ),
        **flag(
            "progress",
            "TrainTool.progress_bar",
            "show progress bars (default: when stderr is a terminal)",
            "no progress bars",
        ),
        **flag(
            "overwrite",
            "TrainTool.overwrite",
            "overwrite existing output files",
            "refuse to overwrite existing output files",
        ),
        **flag(
            "prepare-only",
            "TrainTool.prepare_only",
            "only convert the DL1 inputs to a training file",
            "convert and train",
        ),
        **flag(
            "recompute-parameters",
            "DL1TrainingReader.recompute_parameters",
            "compute the selection parameters with ctapipe's ImageProcessor",
            "use the parameters stored in the DL1 files",
        ),
    }

    classes = [
        *classes_with_traits(DL1TrainingReader),
        TrainingSelection,
        *classes_with_traits(ImageProcessor),
        *classes_with_traits(ImageCleaner),
    ]

    # -- setup --------------------------------------------------------------------------
    def setup(self):
        self._loss_log = None
        self._written = []  # files this run wrote; removed if it fails before a checkpoint
        self._checkpoint_step = None  # the step of this run's last checkpoint
        self._state_before = None  # (inode, mtime, size) of a state file there before
        self._converted = False
        self.plan = None  # the checked run (training.plan.TrainingPlan)
        exit_on_sigterm(self._exit_stack, self.log)
        self.rank, self.world_size = self._init_distributed()
        self.show_progress = self.rank == 0 and (
            sys.stderr.isatty() if self.progress_bar is None else bool(self.progress_bar)
        )
        self._progress = PhaseProgress(enabled=self.show_progress)
        self.inputs, prepared = self._expand_inputs()
        self.from_dl1 = not prepared
        if not self.from_dl1:
            self.prepared_file = self.inputs[0]

        if self.output_path is None and not self.prepare_only:
            raise ToolConfigurationError("No output given (--output model.safetensors)")
        if self.prepare_only and not self.from_dl1:
            raise ToolConfigurationError("--prepare-only needs DL1 input files")
        if self.prepare_only and self.prepared_file is None:
            raise ToolConfigurationError("--prepare-only needs --prepared-file")
        if self.prepared_file is None:
            self.prepared_file = sibling_path(self.output_path, ".training.safetensors")
        self.prepared_file = Path(self.prepared_file).expanduser()
        if self.stop_after is not None and self.world_size > 1:
            raise ToolConfigurationError("--stop-after works in a single process only")
        if not 0 <= self.validation_fraction < 1:
            raise ToolConfigurationError(
                f"validation_fraction must be in [0, 1), got {self.validation_fraction}"
            )
        if not self.prepare_only:
            try:
                check_settings(self._train_settings(), self.epochs)
                self.model_config = self._model_config()
            except ValueError as err:
                raise ToolConfigurationError(str(err)) from None

        if self.init_model is not None and not self.prepare_only:
            self._check_init_model()

        if self.output_path is not None:
            self.output_path = Path(self.output_path).expanduser()
            self.state_path = state_path_for(self.output_path)
            self.csv_path = sibling_path(self.output_path, ".loss.csv")
            self.png_path = sibling_path(self.output_path, ".loss.png")
            self._state_before = _file_signature(self.state_path)

        if self.selection is not None:
            if not self.selection:
                raise ToolConfigurationError("--selection needs at least one expression")
            criteria = Config()
            criteria.TrainingSelection.quality_criteria = [(e, e) for e in self.selection]
            self.update_config(criteria)

        self.reader = None
        with self._all_ranks_agree():
            if self.rank == 0:
                self._check_outputs()
                if self.from_dl1:
                    try:
                        self.reader = DL1TrainingReader(
                            input_files=[str(p) for p in self.inputs], parent=self
                        )
                    except (OSError, ValueError) as err:
                        raise ToolConfigurationError(str(err)) from None
        # the training data are here already (a prepared file, or kept for --resume):
        # check them and the run's settings now, not after minutes of work
        if not self.prepare_only and (not self._needs_conversion()):
            with self._all_ranks_agree():
                self._plan_training()

    def _model_config(self):
        """The preset's network settings with this run's loss weights and night-sky times
        (ValueError if bad)."""
        config = PRESETS[self.model]
        if self.channel_weights is not None:
            config = replace(config, channel_weights=tuple(self.channel_weights))
        if self.night_sky_charge is not None or self.night_sky_target != "centre":
            config = replace(
                config,
                night_sky_charge=self.night_sky_charge,
                night_sky_target=self.night_sky_target,
            )
        return config

    def _check_init_model(self):
        """Refuse, before any work, an initial model that is not a generator of this preset."""
        try:
            config = read_metadata(self.init_model)["config"]["model"]
            config = ModelConfig.from_dict(config)
        except (CheckpointError, KeyError, TypeError, ValueError) as err:
            raise ToolConfigurationError(f"Unusable --init-model: {err}") from None
        # a distilled student is a network of its preset too (the teacher of a further round)
        if config.architecture_dict() != PRESETS[self.model].architecture_dict():
            raise ToolConfigurationError(
                f"--init-model {self.init_model} is not a '{self.model}' network; "
                "train with its preset (ctapipe-genshower-info shows it)"
            )
        # a student distils its teacher's night-sky pixels: it must keep them (a fine-tune
        # re-learns those pixels' times, as it re-learns a new time transform)
        was = (config.night_sky_charge, config.night_sky_target)
        wanted = (self.model_config.night_sky_charge, self.model_config.night_sky_target)
        if self.distill_steps and was != wanted:
            raise ToolConfigurationError(
                f"--init-model {self.init_model} was trained without night-sky times; "
                "train without --night-sky-charge"
                if was[0] is None
                else f"--init-model {self.init_model} was trained with --night-sky-charge "
                f"{was[0]:g} --night-sky-target {was[1]}; train with the same"
            )

    def _init_distributed(self):
        """Join the process group started by torchrun (env WORLD_SIZE > 1)."""
        # checked here so that a single process converting DL1 files never imports torch
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return 0, 1
        from ..training.distributed import process_group_from_env

        rank, world_size = self.enter_context(process_group_from_env(self.device))
        if rank != 0:
            self.progress_bar = False
        self.log.info("distributed: rank %d of %d", rank, world_size)
        return rank, world_size

    def _all_ranks_agree(self):
        """If rank-specific work fails on one rank, every rank stops with a clear error."""
        if self.world_size == 1:
            return nullcontext()
        from ..training.distributed import all_ranks_agree

        return all_ranks_agree(ToolConfigurationError)

    def _expand_inputs(self):
        """``(paths, prepared)`` of the inputs (``data.inputs.training_inputs``)."""
        # files after the options are inputs too (as for ctapipe-merge): a shell glob after
        # -i expands into one -i value and further arguments, none of which may be lost
        patterns = [*self.input_files, *self.extra_args]
        if not patterns:
            raise ToolConfigurationError("No input files given (--input FILE or glob)")
        try:
            return training_inputs(patterns)
        except (OSError, ValueError) as err:
            raise ToolConfigurationError(str(err)) from None

    def _train_settings(self):
        return {name: getattr(self, name) for name in _TRAIN_FIELDS if self.has_trait(name)}

    def _check_outputs(self):
        if self.from_dl1 and not self.resume:
            self.check_output(self.prepared_file)
        if self.from_dl1:
            self.prepared_file.parent.mkdir(parents=True, exist_ok=True)
        if self.prepare_only:
            return
        if self.resume:
            if not self.state_path.is_file():
                raise ToolConfigurationError(
                    f"Cannot resume: training-state file {self.state_path} does not exist"
                )
        else:
            self.check_output(self.output_path, self.state_path, self.csv_path, self.png_path)
        self.output_path.parent.mkdir(parents=True, exist_ok=True)

    def _needs_conversion(self):
        """Whether the DL1 inputs are converted in :meth:`start` (not for --resume with the
        training file of the interrupted run still there)."""
        return self.from_dl1 and not (self.resume and self.prepared_file.is_file())

    def _plan_training(self):
        """Open the training file, check it with the settings (``training.plan``)."""
        path = self.prepared_file
        try:
            dataset = TrainingFile(path)
        except (OSError, ValueError) as err:
            raise ToolConfigurationError(str(err)) from None
        if not self._converted:
            Provenance().add_input_file(str(path), role=ROLES["training_file"], add_meta=False)
        try:
            self.plan = plan_training(
                dataset,
                self._train_settings(),
                epochs=self.epochs,
                validation_fraction=self.validation_fraction,
                world_size=self.world_size,
                model_config=self.model_config,
                state_path=self.state_path,
                resume=self.resume,
            )
        except ValueError as err:
            raise ToolConfigurationError(str(err)) from None

    # -- start --------------------------------------------------------------------------
    def start(self):
        try:
            if self._needs_conversion():
                self._prepare_data()
            if self.prepare_only:
                return
            if self.plan is None:
                with self._all_ranks_agree():
                    self._plan_training()
            self._train()
        except BaseException:
            if self.rank == 0:
                self._after_failure()
            raise

    def _train(self):
        from ..fit import train

        plan = self.plan
        self.log.info(
            "training %s model on %d events (%d validation), %d steps, %d process(es)",
            self.model,
            len(plan.train_set),
            0 if plan.validation is None else len(plan.validation),
            plan.train_config.steps,
            self.world_size,
        )
        if self.rank == 0:
            self._loss_log = LossLog(self.csv_path, plan.start_step if self.resume else None)
            self._written.append(self.csv_path)
        provenance = {
            "tool": self.name,
            "command_line": " ".join(sys.argv),
            "training_file": str(self.prepared_file),
            "model_preset": self.model,
        }
        try:
            self.result = train(
                plan.train_set,
                self.output_path,
                model_config=self.model_config,
                train_config=plan.train_config,
                validation=plan.validation,
                state_path=self.state_path,
                resume=self.resume,
                callback=self._on_record,
                provenance=provenance,
            )
        except _StopRequested as stop:
            self.result = None
            self.log.warning(
                "stopped after step %s as requested; continue with --resume", stop.args[0]
            )
        except ValueError as err:
            # bad data found while training (NaN or inf values in a later chunk)
            raise ToolConfigurationError(f"{self.prepared_file}: {err}") from None
        finally:
            self._progress.close()
            if self._loss_log is not None:
                self._loss_log.close()

    def _prepare_data(self):
        with self._all_ranks_agree():
            if self.rank == 0:
                self._convert()

    def _convert(self):
        """Stream the selected DL1 images into the training file, with a progress bar."""
        self.log.info("converting %d DL1 file(s) to %s", len(self.inputs), self.prepared_file)
        try:
            with ChunkProgress("DL1 images", unit="img", enabled=self.show_progress) as bar:
                self.reader.to_training_file(self.prepared_file, progress=bar)
        except ValueError as err:
            raise ToolConfigurationError(str(err)) from None
        self._converted = True
        self._written.append(self.prepared_file)
        meta = self.reader.meta
        self.log.info(
            "%d images of %s selected (%d read, %d thrown showers)",
            meta["n_selected"],
            meta["telescope_type"],
            meta["n_read"],
            meta["n_thrown"],
        )

    # -- a failed or interrupted run ------------------------------------------------------
    def _after_failure(self):
        """Keep what ``--resume`` needs, remove what a run that never trained left behind.

        After a checkpoint of this run (or in a ``--resume`` run, whose state file was
        there before) the model, state, loss log and training file stay for ``--resume``.
        Before that nothing can be resumed, so the files this run wrote are removed and
        the same command can be run again without ``--overwrite``.
        """
        if self.prepare_only:
            return  # the training file is written atomically: there or not
        # the state file is written (atomically) just before the checkpoint record
        wrote_state = _file_signature(self.state_path) != self._state_before
        if self.resume or wrote_state:
            step = self._checkpoint_step
            self.log.warning(
                "the outputs of the stopped run are kept: continue%s with the same command "
                "and --resume, or start again with --overwrite",
                "" if step is None else f" from step {step}",
            )
            self._register_outputs()
            return
        for path in self._written:
            if path.is_file():
                path.unlink()
                self.log.warning("removed %s: the run stopped before training started", path)

    # -- records: loss log and progress bars ----------------------------------------------
    def _on_record(self, record):
        kind = record["kind"]
        if kind == "progress":
            self._move_bar(record)
            return
        if self._loss_log is not None:
            self._loss_log.write(record)
        if kind == "train":
            self._progress(record)  # the running loss beside the bar
        elif kind == "validation":
            self.log.info("step %d: validation loss %.5f", record["step"], record["val_loss"])
        elif kind == "checkpoint":
            self._checkpoint_step = record["step"]
            self.log.debug("checkpoint at step %d", record["step"])
            if self.stop_after is not None and record["step"] >= self.stop_after:
                raise _StopRequested(record["step"])

    def _move_bar(self, record):
        """Move the bar of the record's training phase (opened at its first record)."""
        self._progress(record)

    # -- finish -------------------------------------------------------------------------
    def finish(self):
        if self.rank != 0:
            return
        if self.prepare_only:
            self._register_outputs()
            return
        if self.csv_path.is_file():
            plot_loss_curve(self.csv_path, self.png_path)
        self._register_outputs()
        if getattr(self, "result", None) is not None:
            self.log.info(
                "wrote %s (step %d, train loss %.5f, validation loss %s)",
                self.output_path,
                self.result.step,
                self.result.train_loss,
                "n/a" if self.result.val_loss is None else f"{self.result.val_loss:.5f}",
            )

    def _register_outputs(self):
        """Register the written outputs with ctapipe's provenance (rank 0)."""
        outputs = []
        if self._converted:
            outputs.append((self.prepared_file, ROLES["training_file"]))
        if not self.prepare_only:
            outputs += [
                (self.output_path, ROLES["model"]),
                (self.state_path, ROLES["state"]),
                (self.csv_path, ROLES["csv"]),
                (self.png_path, ROLES["png"]),
            ]
        provenance = Provenance()
        for path, role in outputs:
            if not path.is_file():
                continue
            if path == self.output_path:
                # as the DiffusionEventSource registers it when reading it
                reference = {
                    "format": FORMAT,
                    "format_version": FORMAT_VERSION,
                    "sha256": file_sha256(path),
                }
                provenance.current_activity.register_output(
                    os.path.abspath(path), role=role, add_meta=False, reference_meta=reference
                )
            else:
                provenance.add_output_file(str(path), role=role, add_meta=False)


def _file_signature(path):
    """``(inode, mtime, size)`` of a file, None if there is none (a rewrite changes it)."""
    try:
        stat = Path(path).stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


def main():
    """Run the tool."""
    TrainTool().run()


if __name__ == "__main__":
    main()
