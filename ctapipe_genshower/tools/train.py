"""``ctapipe-genshower-train``: train the generator on ctapipe DL1 files or a training file.

A thin ctapipe Tool around :func:`ctapipe_genshower.model.training.train`:

1. inputs: ctapipe DL1 HDF5 files with images (several, globs) are converted chunk by chunk
   into a compact training file (:mod:`ctapipe_genshower.data`), or an already prepared
   training file is used as it is;
2. training streams that file in chunks (shower-level model, then the pixel diffusion
   model), with a progress bar, periodic checkpoints and ``--resume``;
3. the losses go to ``<output>.loss.csv`` and a PNG loss curve ``<output>.loss.png``.

Under ``torchrun --nproc_per_node=N`` the tool joins the process group (NCCL on GPUs, gloo
on CPU); rank 0 prepares the data and writes the files.
"""

import csv
import glob
import math
import os
import sys
from contextlib import contextmanager
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

__all__ = ["TrainTool", "main"]

MODEL_PRESETS = ("tiny", "small", "base")
CSV_COLUMNS = ("kind", "step", "epoch", "loss", "val_loss", "val_size_nll", "lr")


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
    model = CaselessStrEnum(MODEL_PRESETS, default_value="small", help="Network size preset").tag(
        config=True
    )
    validation_fraction = Float(
        0.1, help="Fraction of the events (the last ones) kept for the validation loss"
    ).tag(config=True)
    steps = Int(10_000, help="Optimizer steps of the pixel model").tag(config=True)
    epochs = Float(
        default_value=None,
        allow_none=True,
        help="If given, train this many epochs (overrides steps)",
    ).tag(config=True)
    batch_size = Int(32, help="Images per optimizer step and process").tag(config=True)
    learning_rate = Float(3e-4, help="Peak learning rate (AdamW, warm-up + cosine)").tag(
        config=True
    )
    warmup_steps = Int(200, help="Linear learning-rate warm-up steps").tag(config=True)
    ema_decay = Float(0.999, help="Decay of the exponential moving average of the weights").tag(
        config=True
    )
    grad_clip = Float(1.0, help="Clip the gradient norm to this value").tag(config=True)
    seed = Int(0, help="Seed of weights, data order and diffusion noise").tag(config=True)
    device = Unicode("auto", help="'auto', 'cpu', 'cuda' or 'cuda:N'").tag(config=True)
    mixed_precision = CaselessStrEnum(
        ["auto", "bf16", "no"],
        default_value="auto",
        help="bf16 autocast on GPUs ('auto' = bf16 on CUDA, off on CPU)",
    ).tag(config=True)
    chunk_size = Int(4096, help="Events read from the training file at once").tag(config=True)
    checkpoint_interval = Int(1000, help="Write checkpoint and state every N steps").tag(
        config=True
    )
    validation_interval = Int(0, help="Validation loss every N steps (0: once per epoch)").tag(
        config=True
    )
    validation_events = Int(2048, help="Events used for the validation loss").tag(config=True)
    log_interval = Int(10, help="Running-loss record every N steps").tag(config=True)
    shower_steps = Int(3000, help="Optimizer steps of the shower-level model").tag(config=True)
    fit_events = Int(20_000, help="Events used to fit the normalisations").tag(config=True)
    calibration_events = Int(
        500_000, help="Thrown showers sampled to calibrate the selection probability"
    ).tag(config=True)
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
        self._csv_file = None
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
            self.prepared_file = _with_suffix(self.output_path, ".training.safetensors")
        if self.stop_after is not None and self.world_size > 1:
            raise ToolConfigurationError("--stop-after works in a single process only")
        if not 0 <= self.validation_fraction < 1:
            raise ToolConfigurationError(
                f"validation_fraction must be in [0, 1), got {self.validation_fraction}"
            )

        if self.output_path is not None:
            self.output_path = Path(self.output_path).expanduser()
            self.state_path = _with_suffix(self.output_path, ".state.safetensors")
            self.csv_path = _with_suffix(self.output_path, ".loss.csv")
            self.png_path = _with_suffix(self.output_path, ".loss.png")

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

    @contextmanager
    def _all_ranks_agree(self):
        """Run rank-specific work; if it fails on one rank, every rank stops (no hang)."""
        if self.world_size == 1:
            yield
            return
        import torch
        import torch.distributed as dist

        failed = None
        try:
            yield
        except Exception as err:
            failed = err
        flag = torch.tensor([0 if failed is None else 1])
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if failed is not None:
            raise failed
        if int(flag) != 0:
            raise ToolConfigurationError("stopping: another process failed (see its log)")

    def _init_distributed(self):
        """Join the process group started by torchrun (env WORLD_SIZE > 1)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return 0, 1
        import torch
        import torch.distributed as dist

        if not dist.is_initialized():
            cuda = self.device != "cpu" and torch.cuda.is_available()
            if cuda:
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group(backend="nccl" if cuda else "gloo")
            self._exit_stack.callback(dist.destroy_process_group)
        rank = dist.get_rank()
        if rank != 0:
            self.progress_bar = False
        self.log.info("distributed: rank %d of %d", rank, dist.get_world_size())
        return rank, dist.get_world_size()

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
        from ..model.training import PRESETS, TrainConfig, split_source, train

        source = TrainingFile(self.prepared_file)
        if source.meta.get("thrown") is None:
            raise ToolConfigurationError(
                f"{self.prepared_file}: the simulation settings are not a thrown distribution "
                "(power law between two energies, disc, cone), so the shower-level model "
                "cannot be trained; see meta['simulation_config']"
            )
        train_source, validation_source = split_source(source, self.validation_fraction)
        steps = self._n_steps(len(train_source))
        config = TrainConfig(
            steps=steps,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            warmup_steps=min(self.warmup_steps, steps),
            ema_decay=self.ema_decay,
            grad_clip=self.grad_clip,
            seed=self.seed,
            chunk_size=self.chunk_size,
            fit_events=self.fit_events,
            validation_interval=self.validation_interval,
            validation_events=self.validation_events,
            checkpoint_interval=self.checkpoint_interval,
            log_interval=self.log_interval,
            mixed_precision=self.mixed_precision,
            shower_steps=self.shower_steps,
            calibration_events=self.calibration_events,
            device=self.device,
        )
        self.log.info(
            "training %s model on %d events (%d validation), %d steps, %d process(es)",
            self.model,
            len(train_source),
            0 if validation_source is None else len(validation_source),
            steps,
            self.world_size,
        )
        start_step = self._start_step() if self.resume else 0
        if self.rank == 0:
            self._open_csv(start_step)
            self._open_progress(steps, start_step)
        provenance = {
            "tool": self.name,
            "command_line": " ".join(sys.argv),
            "training_file": str(self.prepared_file),
            "model_preset": self.model,
        }
        try:
            self.result = train(
                train_source,
                self.output_path,
                model_config=PRESETS[self.model],
                train_config=config,
                validation_source=validation_source,
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
            self._close_csv()

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

    def _n_steps(self, n_train):
        if self.epochs is None:
            return self.steps
        per_step = self.batch_size * self.world_size
        return max(1, math.ceil(self.epochs * n_train / per_step))

    def _start_step(self):
        from ..checkpoint import read_metadata
        from ..model.training import STATE_FORMAT, STATE_FORMAT_VERSION

        return int(read_metadata(self.state_path, STATE_FORMAT, STATE_FORMAT_VERSION)["step"])

    # -- records: progress bar and CSV ---------------------------------------------------
    def _on_record(self, record):
        kind = record["kind"]
        if kind == "train":
            self._write_row(
                kind, record["step"], record["epoch"], loss=record["loss"], lr=record["lr"]
            )
            if self._pbar is not None:
                self._pbar.n = record["step"]
                self._pbar.set_postfix(loss=f"{record['loss']:.4f}", refresh=False)
                self._pbar.refresh()
        elif kind == "validation":
            self._write_row(
                kind,
                record["step"],
                record["epoch"],
                loss=record["train_loss"],
                val_loss=record["val_loss"],
                val_size_nll=record["val_size_nll"],
            )
            self.log.info("step %d: validation loss %.5f", record["step"], record["val_loss"])
        elif kind == "shower":
            self._write_row(kind, record["step"], None, loss=record["loss"])
        elif kind == "checkpoint":
            self.log.debug("checkpoint at step %d", record["step"])
            if self.stop_after is not None and record["step"] >= self.stop_after:
                raise _StopRequested(record["step"])

    def _open_csv(self, start_step):
        rows = []
        if self.resume and self.csv_path.is_file():
            with self.csv_path.open(newline="") as f:
                rows = [
                    r
                    for r in csv.DictReader(f)
                    if r["kind"] == "shower" or int(r["step"]) <= start_step
                ]
        self._csv_file = self.csv_path.open("w", newline="")
        self._csv = csv.DictWriter(self._csv_file, fieldnames=CSV_COLUMNS)
        self._csv.writeheader()
        self._csv.writerows(rows)
        self._csv_file.flush()

    def _write_row(self, kind, step, epoch, **values):
        if self._csv_file is None:
            return
        row = {"kind": kind, "step": step, "epoch": "" if epoch is None else epoch}
        row.update({k: f"{v:.6g}" for k, v in values.items() if v is not None})
        self._csv.writerow(row)
        self._csv_file.flush()

    def _close_csv(self):
        if self._csv_file is not None:
            self._csv_file.close()
            self._csv_file = None

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


def plot_loss_curve(csv_path, png_path):
    """PNG of the running training loss and the validation loss versus step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, val = ([], []), ([], [])
    with Path(csv_path).open(newline="") as f:
        for row in csv.DictReader(f):
            if row["kind"] == "train":
                train[0].append(int(row["step"]))
                train[1].append(float(row["loss"]))
            elif row["kind"] == "validation" and row["val_loss"]:
                val[0].append(int(row["step"]))
                val[1].append(float(row["val_loss"]))
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    ax.plot(*train, label="training (running mean)", lw=1)
    ax.plot(*val, "o-", label="validation (EMA weights)", ms=3)
    ax.set_xlabel("step")
    ax.set_ylabel("v-prediction loss")
    ax.set_yscale("log")
    ax.legend()
    tmp = Path(png_path).with_name(Path(png_path).name + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, png_path)
    return png_path


def _with_suffix(path, suffix):
    """``model.safetensors`` -> ``model<suffix>`` (any other name gets the suffix appended)."""
    path = Path(path)
    name = path.name
    if name.endswith(".safetensors"):
        name = name[: -len(".safetensors")]
    return path.with_name(name + suffix)


def main():
    TrainTool().run()


if __name__ == "__main__":
    main()
