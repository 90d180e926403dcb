"""``ctapipe-genshower-train``: train the generator on ctapipe DL1 files or a training file.

A thin ctapipe Tool around :func:`ctapipe_genshower.fit.train`:

1. inputs: ctapipe DL1 HDF5 files with images (several, globs) are converted chunk by chunk
   into a compact training file (:mod:`ctapipe_genshower.data`), or an already prepared
   training file is used as it is;
2. training streams that file in chunks (shower-level model, then the pixel diffusion
   model), with a progress bar, periodic checkpoints and ``--resume``;
3. the losses go to ``<output>.loss.csv`` and a PNG loss curve ``<output>.loss.png``.

Under ``torchrun --nproc_per_node=N`` the tool joins the process group (NCCL on GPUs, gloo
on CPU); rank 0 prepares the data and writes the files.
"""

import glob
import os
import sys
from contextlib import nullcontext
from dataclasses import fields
from pathlib import Path

from ctapipe.core import Tool, ToolConfigurationError
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

from ..data import DL1TrainingReader, TrainingFile, is_training_file
from ..data.dl1 import TrainingSelection
from ..fit import sibling_path, state_path_for
from ..model.config import PRESETS
from ..training.config import MIXED_PRECISION, TrainConfig
from ..training.history import LossLog, plot_loss_curve

__all__ = ["TrainTool", "main"]

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
    > ctapipe-process -i examples/proton.toymc.yaml -o protons.dl1.h5 --write-images
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
        help="DL1 HDF5 files with images (globs allowed) or one prepared training file",
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
    resume = Bool(False, help="Continue from <output>.state.safetensors").tag(config=True)
    stop_after = Int(
        default_value=None,
        allow_none=True,
        help=(
            "Stop (cleanly, state saved) at the first checkpoint at or after this step; "
            "continue later with --resume (for time-limited jobs; single process only)"
        ),
    ).tag(config=True)
    progress_bar = Bool(False, help="Show a progress bar with the running loss").tag(config=True)
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
        "validation-fraction": "TrainTool.validation_fraction",
        "steps": "TrainTool.steps",
        "epochs": "TrainTool.epochs",
        "batch-size": "TrainTool.batch_size",
        ("lr", "learning-rate"): "TrainTool.learning_rate",
        "ema-decay": "TrainTool.ema_decay",
        "grad-clip": "TrainTool.grad_clip",
        "seed": "TrainTool.seed",
        "device": "TrainTool.device",
        "mixed-precision": "TrainTool.mixed_precision",
        "checkpoint-interval": "TrainTool.checkpoint_interval",
        "validation-interval": "TrainTool.validation_interval",
        "shower-steps": "TrainTool.shower_steps",
        "stop-after": "TrainTool.stop_after",
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
            "show a progress bar with the running loss",
            "no progress bar",
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
        self._pbar = None
        self._loss_log = None
        self.rank, self.world_size = self._init_distributed()
        self.inputs = self._expand_inputs()
        self.from_dl1 = not (len(self.inputs) == 1 and is_training_file(self.inputs[0]))
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
        if self.stop_after is not None and self.world_size > 1:
            raise ToolConfigurationError("--stop-after works in a single process only")
        if not 0 <= self.validation_fraction < 1:
            raise ToolConfigurationError(
                f"validation_fraction must be in [0, 1), got {self.validation_fraction}"
            )

        if self.output_path is not None:
            self.output_path = Path(self.output_path).expanduser()
            self.state_path = state_path_for(self.output_path)
            self.csv_path = sibling_path(self.output_path, ".loss.csv")
            self.png_path = sibling_path(self.output_path, ".loss.png")

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
        if not self.input_files:
            raise ToolConfigurationError("No input files given (--input FILE or glob)")
        paths = []
        for pattern in self.input_files:
            pattern = os.path.expanduser(pattern)
            if glob.has_magic(pattern):
                matches = sorted(glob.glob(pattern))
                if not matches:
                    raise ToolConfigurationError(f"No input file matches {pattern!r}")
                paths.extend(Path(m) for m in matches)
            else:
                path = Path(pattern)
                if not path.is_file():
                    raise ToolConfigurationError(f"Input file not found: {path}")
                paths.append(path)
        n_prepared = sum(is_training_file(p) for p in paths)
        if n_prepared and len(paths) > 1:
            raise ToolConfigurationError(
                "Give either DL1 files or exactly one prepared training file, not a mix "
                f"or several training files ({len(paths)} inputs)"
            )
        return paths

    def _check_outputs(self):
        if self.from_dl1 and not self.resume:
            self.check_output(Path(self.prepared_file))
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

    # -- start --------------------------------------------------------------------------
    def start(self):
        self._prepare_data()
        if self.prepare_only:
            return
        from ..fit import train
        from ..training.dataset import split_dataset
        from ..training.state import read_state_metadata

        dataset = TrainingFile(self.prepared_file)
        if dataset.meta.get("thrown") is None:
            raise ToolConfigurationError(
                f"{self.prepared_file}: the simulation settings are not a thrown distribution "
                "(power law between two energies, disc, cone), so the shower-level model "
                "cannot be trained; see meta['simulation_config']"
            )
        train_set, validation = split_dataset(dataset, self.validation_fraction)
        config = TrainConfig.from_settings(
            {name: getattr(self, name) for name in _TRAIN_FIELDS if self.has_trait(name)},
            epochs=self.epochs,
            n_events=len(train_set),
            world_size=self.world_size,
        )
        self.log.info(
            "training %s model on %d events (%d validation), %d steps, %d process(es)",
            self.model,
            len(train_set),
            0 if validation is None else len(validation),
            config.steps,
            self.world_size,
        )
        start_step = read_state_metadata(self.state_path)["step"] if self.resume else 0
        if self.rank == 0:
            self._loss_log = LossLog(self.csv_path, start_step if self.resume else None)
            self._open_progress(config.steps, start_step)
        provenance = {
            "tool": self.name,
            "command_line": " ".join(sys.argv),
            "training_file": str(self.prepared_file),
            "model_preset": self.model,
        }
        try:
            self.result = train(
                train_set,
                self.output_path,
                model_config=PRESETS[self.model],
                train_config=config,
                validation=validation,
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
            # bad data (NaN or inf values, too few events, missing metadata)
            raise ToolConfigurationError(f"{self.prepared_file}: {err}") from None
        finally:
            self._close_progress()
            if self._loss_log is not None:
                self._loss_log.close()

    def _prepare_data(self):
        if not self.from_dl1:
            return
        with self._all_ranks_agree():
            if self.rank == 0 and not (self.resume and Path(self.prepared_file).is_file()):
                self._convert()

    def _convert(self):
        self.log.info("converting %d DL1 file(s) to %s", len(self.inputs), self.prepared_file)
        try:
            n = self.reader.to_training_file(self.prepared_file)
        except ValueError as err:
            raise ToolConfigurationError(str(err)) from None
        meta = self.reader.meta
        self.log.info(
            "%d images of %s selected (%d read, %d thrown showers)",
            n,
            meta["telescope_type"],
            meta["n_read"],
            meta["n_thrown"],
        )

    # -- records: loss log and progress bar -----------------------------------------------
    def _on_record(self, record):
        if self._loss_log is not None:
            self._loss_log.write(record)
        kind = record["kind"]
        if kind == "train" and self._pbar is not None:
            self._pbar.n = record["step"]
            self._pbar.set_postfix(loss=f"{record['loss']:.4f}", refresh=False)
            self._pbar.refresh()
        elif kind == "validation":
            self.log.info("step %d: validation loss %.5f", record["step"], record["val_loss"])
        elif kind == "checkpoint":
            self.log.debug("checkpoint at step %d", record["step"])
            if self.stop_after is not None and record["step"] >= self.stop_after:
                raise _StopRequested(record["step"])

    def _open_progress(self, steps, start_step):
        if not self.progress_bar:
            return
        from tqdm.auto import tqdm

        self._pbar = tqdm(total=steps, initial=start_step, desc="training", unit="step")

    def _close_progress(self):
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None

    # -- finish -------------------------------------------------------------------------
    def finish(self):
        if self.prepare_only or self.rank != 0:
            return
        if self.csv_path.is_file():
            plot_loss_curve(self.csv_path, self.png_path)
        if getattr(self, "result", None) is not None:
            self.log.info(
                "wrote %s (step %d, train loss %.5f, validation loss %s)",
                self.output_path,
                self.result.step,
                self.result.train_loss,
                "n/a" if self.result.val_loss is None else f"{self.result.val_loss:.5f}",
            )


def main():
    """Run the tool."""
    TrainTool().run()


if __name__ == "__main__":
    main()
