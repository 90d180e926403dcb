"""Optimisation settings of a training run (no torch).

:class:`TrainConfig` is the one place of every training default and its description:
``ctapipe-genshower-train`` takes the defaults and help texts of its options from the
fields' ``metadata`` and maps its options back by field name. The whole config is stored
in the checkpoint and in the training-state file; ``--resume`` refuses a changed one.
"""

import math
from dataclasses import asdict, dataclass, field, replace

__all__ = ["MIXED_PRECISION", "TEACHER_SOLVERS", "TrainConfig"]

#: Values of ``TrainConfig.teacher_solver``: the teacher's sub-steps when distilling.
TEACHER_SOLVERS = ("dpmpp-2m", "ddim")
#: Values of ``TrainConfig.mixed_precision``.
MIXED_PRECISION = ("auto", "bf16", "no")

#: Settings that must be positive integers.
_AT_LEAST_ONE = (
    "steps",
    "batch_size",
    "chunk_size",
    "fit_events",
    "validation_events",
    "checkpoint_interval",
    "log_interval",
    "shower_steps",
    "shower_batch_size",
    "calibration_events",
    "teacher_substeps",
)
#: Settings that must not be negative.
_NOT_NEGATIVE = (
    "warmup_steps",
    "validation_interval",
    "weight_decay",
    "min_snr_gamma",
    "distill_steps",
    "shower_pixel_threshold",
)
#: Settings that must be positive numbers.
_POSITIVE = ("learning_rate", "shower_learning_rate", "grad_clip")


def _setting(default, help):
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """Optimisation settings of both models (each field's ``metadata["help"]`` says what)."""

    steps: int = _setting(10_000, "Optimizer steps of the pixel model")
    batch_size: int = _setting(32, "Images per optimizer step and process")
    learning_rate: float = _setting(3e-4, "Peak learning rate (AdamW, warm-up + cosine)")
    weight_decay: float = _setting(0.01, "AdamW weight decay of the pixel model")
    warmup_steps: int = _setting(200, "Linear learning-rate warm-up steps")
    cosine_decay: bool = _setting(True, "Decay the learning rate to 10 % on a cosine")
    min_snr_gamma: float = _setting(
        0.0, "Min-SNR-gamma loss weighting with this gamma, e.g. 5 (0: unweighted v-MSE)"
    )
    log_snr_shift: float = _setting(
        0.0,
        "Shift of the training noise levels: each batch's times have the log-SNR of uniform "
        "times plus this (positive: more steps at low noise; 0: uniform times, as the paper; "
        "the sampler and the validation loss are unchanged)",
    )
    time_log_snr_shift: float = _setting(
        0.0,
        "Train the peak-time channel as if its times were shifted by this much more than "
        "log_snr_shift (importance weights of the times' density; the charge channel keeps "
        "its times, the optimal denoiser is unchanged; 0: both channels alike)",
    )
    shower_pixel_weight: float = _setting(
        1.0,
        "Weight of the shower pixels' squared error against 1 for the others (1: unweighted; "
        "the validation loss stays unweighted). For ablations: a weight that depends on the "
        "clean image tilts what the network learns towards the weighted pixels "
        "(docs/ablation.md)",
    )
    shower_pixel_threshold: float = _setting(
        5.0, "A training image's pixels with more charge than this (p.e.) are shower pixels"
    )
    ema_decay: float = _setting(0.999, "Decay of the exponential moving average of the weights")
    grad_clip: float = _setting(1.0, "Clip the gradient norm to this value")
    seed: int = _setting(0, "Seed of weights, data order and diffusion noise")
    chunk_size: int = _setting(4096, "Events read from the training file at once")
    fit_events: int = _setting(20_000, "Events used to fit the normalisations")
    validation_interval: int = _setting(0, "Validation loss every N steps (0: once per epoch)")
    validation_events: int = _setting(2048, "Events used for the validation loss")
    checkpoint_interval: int = _setting(1000, "Write checkpoint and state every N steps")
    log_interval: int = _setting(10, "Running-loss record every N steps")
    mixed_precision: str = _setting(
        "auto",
        "bf16 autocast: 'auto' on CUDA only, 'bf16' on any device (on a CPU fast only with "
        "bf16 instructions, e.g. AVX512-BF16), 'no' never",
    )
    shower_steps: int = _setting(3000, "Optimizer steps of the shower-level model")
    shower_batch_size: int = _setting(1024, "Showers per optimizer step of the shower model")
    shower_learning_rate: float = _setting(2e-3, "Peak learning rate of the shower model")
    calibration_events: int = _setting(
        500_000, "Thrown showers sampled to calibrate the selection probability"
    )
    saturation: float | None = _setting(
        None, "Largest generated charge, p.e. (default: the data's saturation_pe, else its maximum)"
    )
    device: str = _setting("auto", "'auto', 'cpu', 'cuda' or 'cuda:N'")
    init_model: str | None = _setting(
        None,
        "Start from the weights and normalisations of this generator file (same network "
        "preset and camera): continue a finished run or fine-tune on new data",
    )
    distill_steps: int = _setting(
        0,
        "Distil the init_model (the teacher) into a student that samples with this many DDIM "
        "steps (0: ordinary training)",
    )
    teacher_substeps: int = _setting(4, "Teacher solver steps per student step when distilling")
    teacher_solver: str = _setting(
        "dpmpp-2m",
        "The teacher's solver when distilling: 'dpmpp-2m' (DPM-Solver++(2M)) or 'ddim' (with "
        "distill_steps x teacher_substeps = the teacher's own steps, the student learns the "
        "teacher's validated DDIM sampling); a distilled teacher is always stepped with DDIM",
    )

    def __post_init__(self):
        # the messages name the setting as the tool's option does (TrainTool.<name>)
        for name in _AT_LEAST_ONE:
            if not getattr(self, name) >= 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in _NOT_NEGATIVE:
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in _POSITIVE:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.saturation is not None and not self.saturation > 0:
            raise ValueError(f"saturation must be > 0, got {self.saturation}")
        if not self.shower_pixel_weight >= 1:
            raise ValueError(f"shower_pixel_weight must be >= 1, got {self.shower_pixel_weight}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.distill_steps and not self.init_model:
            raise ValueError("distill_steps needs the teacher model (init_model)")
        for name in ("log_snr_shift", "time_log_snr_shift"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be finite, got {getattr(self, name)}")
            if self.distill_steps and getattr(self, name) != 0:
                # distillation trains at the student's grid times, which a shift cannot move
                raise ValueError(f"{name} applies to diffusion training, not to distill_steps")
        if self.teacher_solver not in TEACHER_SOLVERS:
            raise ValueError(
                f"teacher_solver must be one of {', '.join(TEACHER_SOLVERS)}, "
                f"got {self.teacher_solver!r}"
            )
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(
                f"mixed_precision must be 'auto', 'bf16' or 'no', got {self.mixed_precision!r}"
            )

    @classmethod
    def from_settings(cls, settings, epochs=None, n_events=None, world_size=1):
        """A config from settings named like the fields, with the run length resolved.

        Parameters
        ----------
        settings : dict
            Field values (e.g. a Tool's options); missing fields keep their defaults.
        epochs : float, optional
            Train this many passes over ``n_events`` instead of ``settings["steps"]``.
        n_events : int, optional
            Training events (needed with ``epochs``).
        world_size : int
            Processes, each taking ``batch_size`` events per step.

        Returns
        -------
        TrainConfig
            With ``warmup_steps`` at most ``steps``, so a short run reaches the peak rate.
        """
        config = cls(**settings)
        steps = config.steps
        if epochs is not None:
            if not epochs > 0:
                raise ValueError(f"epochs must be > 0, got {epochs}")
            steps = max(1, math.ceil(epochs * n_events / (config.batch_size * world_size)))
        return replace(config, steps=steps, warmup_steps=min(config.warmup_steps, steps))

    def to_dict(self):
        """JSON-able dict (stored in the checkpoint and the training state)."""
        return asdict(self)
