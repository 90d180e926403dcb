"""The training loop: shower-level model, then the pixel diffusion model, with exact resume.

:func:`train` runs

1. the shower-level model fit (:mod:`.shower_fit`) on the conditions and sizes of the
   rank's shard, and
2. the pixel model: AdamW, linear warm-up and cosine decay, gradient clipping, an EMA copy,
   bf16 autocast (CUDA; the CPU on request), the masked v-prediction loss of the shared
   :class:`~ctapipe_genshower.model.denoiser.Denoiser` on the streamed batches
   (:mod:`.stream`), the validation loss of the EMA weights at fixed times and noise.

With ``distill_steps`` (and ``init_model``, the teacher) phase 1 is skipped (the teacher's
shower-level model is kept) and phase 2 minimises the distillation loss of
:mod:`ctapipe_genshower.model.distillation` instead: a student that samples in
``distill_steps`` DDIM steps, started from the teacher's weights.

Every ``checkpoint_interval`` steps rank 0 writes the training state (:mod:`.state`) and
hands the EMA pixel network, the shower model and their metadata to ``save_model`` (the
model file format is not the loop's business: ``ctapipe_genshower.fit`` passes
``checkpoint.save_generator``). The data order, the diffusion noise and the learning rate
are functions of ``(seed, rank, step)`` and the saved generator state, so a run killed
after step ``k`` and resumed ends at the same weights as an uninterrupted one.

Under ``torch.distributed`` (initialised by the caller, see :mod:`.distributed`) each rank
trains on its own contiguous shard with ``DistributedDataParallel``.
"""

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..model.config import PRESETS, ModelConfig
from ..model.denoiser import PIXEL_CONDITION_DIM, Denoiser
from ..model.diffusion import shifted_time_density, shifted_times
from ..model.distillation import distillation_loss
from ..model.networks import UNet
from ..model.pixel_response import signal_view
from ..model.shower_model import ShowerModel, ThrownSampler
from ..model.transforms import (
    fit_night_sky_times,
    fit_time_transform,
    fit_transforms,
    transforms_from_dict,
    transforms_to_dict,
)
from .config import TrainConfig
from .dataset import SignalDataset, as_dataset, check_training_meta, pixel_fov, read_checked
from .distributed import barrier, rank_and_world_size, resolve_device, wrap_ddp
from .shower_fit import fit_shower_model, shower_training_data, trained_domain
from .state import (
    StateFileError,
    check_resumable,
    read_state_metadata,
    read_state_tensors,
    restore_state,
    state_tensors,
    write_state,
)
from .stream import BatchStream, encode_batch

__all__ = ["TrainResult", "Trainer", "shower_pixel_weights", "train"]


@dataclass
class TrainResult:
    """What a finished :func:`train` reports.

    Attributes
    ----------
    step : int
        Optimizer steps done.
    train_loss : float
        The last running training loss (NaN if none was logged).
    val_loss : float or None
        The last validation loss of the EMA weights.
    output : str or None
        The model file (set by ``ctapipe_genshower.fit.train``).
    state_path : str
        The training-state file.
    history : list of dict
        Every record of this rank (see :func:`train`).
    models : dict
        The trained modules of this rank: ``net`` (raw U-Net), ``ema`` (EMA U-Net),
        ``shower``.
    """

    step: int
    train_loss: float
    val_loss: float | None
    output: str | None
    state_path: str
    history: list = field(default_factory=list)
    models: dict = field(default_factory=dict)


class Trainer:
    """One training run; use :func:`train` (see there for the parameters)."""

    def __init__(
        self,
        dataset,
        state_path,
        model_config=None,
        train_config=None,
        validation=None,
        save_model=None,
        callback=None,
        provenance=None,
        initial=None,
    ):
        self.dl1_dataset = as_dataset(dataset)
        self.validation = None if validation is None else as_dataset(validation)
        self.state_path = Path(state_path)
        self.mcfg = model_config or PRESETS["small"]
        self.dataset = self.dl1_dataset
        if self.mcfg.pixel_response:  # the network learns the signal, see model.pixel_response
            self.dataset = SignalDataset(self.dataset)
            if self.validation is not None:
                self.validation = SignalDataset(self.validation)
        self.cfg = train_config or TrainConfig()
        self.save_model = save_model
        self.callback = callback or (lambda record: None)
        self.provenance = dict(provenance or {})
        self.initial = initial
        self.rank, self.world = rank_and_world_size()
        self.device = resolve_device(self.cfg.device, self.rank)
        # 'bf16' on the CPU too: 1.1-1.4x the steps/s with AVX512-BF16 (bench_training.py)
        self.amp = self.cfg.mixed_precision == "bf16" or (
            self.cfg.mixed_precision == "auto" and self.device.type == "cuda"
        )
        check_training_meta(self.dataset)
        if self.cfg.time_log_snr_shift != 0 and self.mcfg.unet.out_channels != 2:
            # the weight of Trainer.loss is per channel: [charge, peak time]
            raise ValueError(
                "time_log_snr_shift needs a model with two channels (charge, peak time),"
                f" got {self.mcfg.unet.out_channels}"
            )
        self.teacher = None
        if self.cfg.distill_steps:
            if initial is None:
                raise ValueError("distillation needs the teacher model (initial)")
            self.teacher_is_student = self._check_teacher(initial)
            self.mcfg = self.mcfg.distilled(self.cfg.distill_steps)
        self.history = []

    def emit(self, record):
        """Keep a record; rank 0 passes it to the callback."""
        self.history.append(record)
        if self.rank == 0:
            self.callback(record)

    def progress(self, phase, step, steps):
        """Rank 0 passes a ``progress`` record to the callback (not kept in the history)."""
        if self.rank == 0:
            self.callback({"kind": "progress", "phase": phase, "step": step, "steps": steps})

    # set-up ----------------------------------------------------------------------------
    def _build_models(self):
        # the same seed on every rank: DDP needs identical initial weights
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.cfg.seed)
            self.net = UNet(self.mcfg.unet).to(self.device)
            self.shower = ShowerModel.from_config(self.mcfg).to(self.device)
            self.ema = UNet(self.mcfg.unet).to(self.device)
        self.ema.load_state_dict(self.net.state_dict())
        self.ema.requires_grad_(False)
        self.opt = torch.optim.AdamW(
            self.net.parameters(), lr=self.cfg.learning_rate, weight_decay=self.cfg.weight_decay
        )
        self.gen = torch.Generator(device=self.device).manual_seed(
            int(np.random.SeedSequence([self.cfg.seed, self.rank, 1]).generate_state(1)[0])
        )

    def _fit_batch(self):
        """The training events the transforms are fitted on."""
        n = min(len(self.dataset), int(self.cfg.fit_events))
        if n < 2:
            raise ValueError(f"need at least 2 training events, got {len(self.dataset)}")
        # the DL1 images (and true images): a pixel response is fitted on both
        return read_checked(self.dl1_dataset, 0, n)

    def _fit_transforms(self):
        meta = self.dataset.meta
        batch = self._fit_batch()
        saturation = self.cfg.saturation
        if saturation is None:
            saturation = meta.get("saturation_pe")
        return fit_transforms(
            batch,
            meta["grid_shape"],
            meta["grid_index"],
            pad_to=self.mcfg.unet.pad_to,
            saturation=saturation,
            pixel_fov=pixel_fov(meta) if self.mcfg.geometry_maps else None,
            response=self.mcfg.pixel_response,
            time_transform=self.mcfg.time_transform,
            night_sky_charge=self.mcfg.night_sky_charge,
            night_sky_target=self.mcfg.night_sky_target,
        )

    def setup(self, resume):
        """Build the models; fit the transforms, or load the state to resume from."""
        self._build_models()
        self.step = 0
        self.shower_done = False
        self.domain = None
        if resume:
            if not self.state_path.is_file():
                raise FileNotFoundError(
                    f"cannot resume: training-state file {self.state_path} does not exist"
                )
            self._load_state()
        elif self.initial is not None:
            self._warm_start(self.initial)
        else:
            self.transforms = self._fit_transforms()
        if self.cfg.distill_steps:
            self._set_teacher(self.initial, resume)
        n = len(self.dataset)
        self.lo, self.hi = n * self.rank // self.world, n * (self.rank + 1) // self.world
        self.stream = BatchStream(
            self.dataset,
            self.lo,
            self.hi,
            self.transforms,
            self.cfg.batch_size,
            self.cfg.chunk_size,
            self.cfg.seed,
            self.rank,
        )
        self.ema_denoiser = Denoiser(self.ema, self.transforms, self.device)
        self.sampler = ThrownSampler.from_dict(self.dataset.meta["thrown"])

    def _warm_start(self, initial):
        """Start from a trained generator: its weights (raw and EMA) and its normalisations,
        which its weights were learned in. Network and camera must be this run's."""
        initial_config = ModelConfig.from_dict(initial.metadata["config"]["model"])
        config = initial_config.architecture_dict()
        wanted = self.mcfg.architecture_dict()
        if config != wanted:
            differ = sorted(k for k in config if config[k] != wanted.get(k))
            raise ValueError(
                f"the initial model is another network (differs in {', '.join(differ)}); "
                "train with its preset"
            )
        grid = initial.transforms["grid"]
        meta = self.dataset.meta
        if tuple(grid.shape) != tuple(meta["grid_shape"]) or not np.array_equal(
            grid.index.numpy(), np.asarray(meta["grid_index"])
        ):
            raise ValueError("the initial model was trained on another camera than this data")
        self.net.load_state_dict(initial.pixel_net.state_dict())
        self.ema.load_state_dict(initial.pixel_net.state_dict())
        self.shower.load_state_dict(initial.shower_model.state_dict())
        self.transforms = dict(initial.transforms)
        night_sky = (initial_config.night_sky_charge, initial_config.night_sky_target)
        wanted_night_sky = (self.mcfg.night_sky_charge, self.mcfg.night_sky_target)
        if night_sky != wanted_night_sky and self.cfg.distill_steps:
            # the teacher learned a filler time in its night-sky pixels: so must the student
            raise ValueError(
                "the initial model's night-sky times differ from this run's "
                f"(night_sky_charge, night_sky_target {night_sky} against "
                f"{wanted_night_sky}); "
                "train with --night-sky-charge and --night-sky-target as it was"
            )
        if initial_config.time_transform != self.mcfg.time_transform:
            if self.cfg.distill_steps:
                raise ValueError(
                    "a student must keep its teacher's time transform "
                    f"({initial_config.time_transform!r}); distil with the teacher's preset"
                )
            # another time normalisation: the network re-learns its time output in it
            batch = self._fit_batch()
            if self.mcfg.pixel_response:  # fitted on the signal, as in fit_transforms
                batch = signal_view(batch)
            self.transforms["time"] = fit_time_transform(
                batch, self.mcfg.time_transform, self.mcfg.pixel_response
            )
        if night_sky != wanted_night_sky:
            # a fine-tune with other night-sky pixels: their table from this data, in the
            # (kept or new) time transform; the network re-learns their training target
            self.transforms.pop("night_sky", None)
            if self.mcfg.night_sky_charge is not None:
                self.transforms["night_sky"] = fit_night_sky_times(
                    self._fit_batch(),
                    self.mcfg.night_sky_charge,
                    self.mcfg.night_sky_target,
                    self.transforms["time"],
                )

    def _check_teacher(self, initial):
        """Whether the teacher is itself a distilled student; it must then be sampled on its
        own DDIM grid, which the sub-steps of the student's steps have to be."""
        n_teacher = ModelConfig.from_dict(initial.metadata["config"]["model"]).distilled_steps
        if not n_teacher:
            return False
        n, k = self.cfg.distill_steps, self.cfg.teacher_substeps
        if n * k != n_teacher:
            raise ValueError(
                f"the teacher is distilled for {n_teacher} DDIM steps: distill_steps x "
                f"teacher_substeps must equal it, got {n} x {k}"
            )
        return True

    def _set_teacher(self, initial, resume):
        """Distillation: the initial model's EMA network, frozen, is the teacher; its
        shower-level model and trained domain are the student's (no shower phase)."""
        net = initial.pixel_net.to(self.device).eval().requires_grad_(False)
        self.teacher = Denoiser(net, self.transforms, self.device)
        if not resume:
            self.shower_done = True
            self.domain = initial.metadata["domain"]

    # shower-level model ----------------------------------------------------------------
    def train_shower(self):
        """Phase 1: fit and calibrate the shower-level model, record the trained domain."""
        cfg, meta = self.cfg, self.dataset.meta
        features, z, raw = shower_training_data(
            self.dataset, self.lo, self.hi, self.transforms, cfg.chunk_size
        )
        self.domain = trained_domain(raw, self.device)
        fit_shower_model(
            self.shower,
            features,
            z,
            self.sampler,
            self.transforms["conditions"],
            selected_fraction=int(meta["n_selected"]) / int(meta["n_thrown"]),
            steps=cfg.shower_steps,
            batch_size=cfg.shower_batch_size,
            learning_rate=cfg.shower_learning_rate,
            calibration_events=cfg.calibration_events,
            seed=cfg.seed,
            rank=self.rank,
            device=self.device,
            callback=self.emit,
            progress=lambda step: self.progress("shower", step, cfg.shower_steps),
        )
        self.shower_done = True

    # pixel model -----------------------------------------------------------------------
    def lr_at(self, step):
        """Learning rate of step ``step``: linear warm-up, then cosine decay to 10 %."""
        cfg = self.cfg
        warm = min(1.0, (step + 1) / max(1, cfg.warmup_steps))
        decay = (
            0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(step, cfg.steps) / cfg.steps))
            if cfg.cosine_decay
            else 1.0
        )
        return cfg.learning_rate * warm * decay

    @torch.no_grad()
    def update_ema(self, step):
        """EMA of the weights; the decay ramps up so early weights are forgotten quickly."""
        decay = min(self.cfg.ema_decay, (1 + step) / (10 + step))
        for e, p in zip(self.ema.parameters(), self.net.parameters(), strict=True):
            e.lerp_(p.detach(), 1 - decay)
        for e, b in zip(self.ema.buffers(), self.net.buffers(), strict=True):
            e.copy_(b)

    def loss(
        self,
        denoiser,
        x,
        cond,
        generator=None,
        t=None,
        eps=None,
        weighted=True,
        size=None,
        per_channel=False,
    ):
        """The denoiser's loss with the model's channel weights, under bf16 autocast if set.

        ``weighted=False`` (the validation loss) leaves out the min-SNR and the shower-pixel
        weighting and the shifts of the noise levels, so validation losses compare across
        them. ``size`` (p.e.) of each image is needed for the shower-pixel weighting.
        ``per_channel`` returns each channel's mean loss instead of their weighted mean.
        """
        gamma = self.cfg.min_snr_gamma if weighted and self.cfg.min_snr_gamma > 0 else None
        pixel_weight = self.shower_pixel_weight(x, size) if weighted else None
        shift, time_shift = self.cfg.log_snr_shift, self.cfg.time_log_snr_shift
        if weighted and t is None and (shift != 0 or time_shift != 0):
            # drawn where v_loss would draw them, so the noise that follows is the same
            u = torch.rand(len(x), device=x.device, generator=generator)
            t = shifted_times(u, shift)
        sample_weight = None
        if weighted and time_shift != 0:
            # the time channel (1) trains as if its times were shifted by time_shift more
            ratio = shifted_time_density(t, shift + time_shift) / shifted_time_density(t, shift)
            sample_weight = torch.stack([torch.ones_like(ratio), ratio], dim=1)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            return denoiser.loss(
                x,
                cond,
                channel_weights=self.mcfg.channel_weights,
                generator=generator,
                t=t,
                eps=eps,
                min_snr_gamma=gamma,
                pixel_weight=pixel_weight,
                sample_weight=sample_weight,
                per_channel=per_channel,
            )

    def shower_pixel_weight(self, x, size):
        """The loss weights of a batch (:func:`shower_pixel_weights`); None when unweighted."""
        if self.cfg.shower_pixel_weight == 1:
            return None
        return shower_pixel_weights(
            x,
            size,
            self.transforms["image"],
            self.cfg.shower_pixel_weight,
            self.cfg.shower_pixel_threshold,
        )

    def training_loss(self, denoiser, x, cond, size=None):
        """The loss of one training batch: the diffusion loss, or, when distilling, the
        student's error against the teacher's solution (:mod:`..model.distillation`)."""
        if self.teacher is None:
            return self.loss(denoiser, x, cond, generator=self.gen, size=size)
        return self.distillation_loss(denoiser, x, cond, generator=self.gen)

    def distillation_loss(self, denoiser, x, cond, generator=None, step_index=None, eps=None):
        """The student's distillation loss, under bf16 autocast if set."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            return distillation_loss(
                denoiser,
                self.teacher,
                x,
                cond,
                denoiser.mask,
                self.cfg.distill_steps,
                self.cfg.teacher_substeps,
                generator=generator,
                channel_weights=self.mcfg.channel_weights,
                step_index=step_index,
                eps=eps,
                second_order=self.cfg.teacher_solver == "dpmpp-2m" and not self.teacher_is_student,
            )

    @torch.no_grad()
    def validate(self):
        """``(v-loss, size NLL, per-channel v-losses)`` of the EMA weights on the
        validation events, or None.

        The v-loss is the channels' mean with the model's ``channel_weights``; the
        per-channel losses (charge, peak time) are unweighted, so they compare across
        weights. When distilling, the loss is the distillation loss at fixed student steps
        and noise, and the per-channel losses are None.
        """
        if self.validation is None or len(self.validation) == 0:
            return None
        if not hasattr(self, "_val"):
            n = min(len(self.validation), self.cfg.validation_events)
            x, conditions, size = encode_batch(read_checked(self.validation, 0, n), self.transforms)
            cond = self.ema_denoiser.condition(conditions, size)
            # fixed times and noise: the validation loss changes only with the weights
            g = torch.Generator().manual_seed(self.cfg.seed + 7919)
            if self.teacher is None:
                t = torch.rand(len(x), generator=g)
            else:  # the student's grid steps
                t = torch.randint(0, self.cfg.distill_steps, (len(x),), generator=g)
            eps = torch.randn(x.shape, generator=g)
            self._val = (x, cond, t, eps)
        x, cond, t, eps = self._val
        total, bs = 0.0, self.cfg.batch_size
        self.ema.eval()
        for i in range(0, len(x), bs):
            d = [a[i : i + bs].to(self.device) for a in (x, cond, t, eps)]
            if self.teacher is None:
                loss = self.loss(
                    self.ema_denoiser,
                    d[0],
                    d[1],
                    t=d[2],
                    eps=d[3],
                    weighted=False,
                    per_channel=True,
                )
            else:
                loss = self.distillation_loss(
                    self.ema_denoiser, d[0], d[1], step_index=d[2], eps=d[3]
                )
            total = total + loss.detach().double().cpu() * len(d[0])
        total = total / len(x)
        channels = None
        if self.teacher is None:
            w = torch.as_tensor(self.mcfg.channel_weights, dtype=total.dtype)
            channels, total = total.tolist(), (total * w).sum() / w.sum()
        # the pixel condition is the shower features followed by the standardised log size
        n = PIXEL_CONDITION_DIM - 1
        nll = float(self.shower.size_nll(cond[:, :n], cond[:, n]))
        return float(total), nll, channels

    def run(self):
        """Train to ``steps`` (after the shower model, unless resumed past it)."""
        cfg = self.cfg
        if not self.shower_done:
            self.train_shower()
            self._save()
        denoiser = Denoiser(wrap_ddp(self.net, self.device), self.transforms, self.device)
        self.net.train()
        val_interval = cfg.validation_interval or self.stream.batches_per_epoch
        running, n_running, last_val, t0 = 0.0, 0, None, time.monotonic()
        # the gradient norms before clipping, to see whether grad_clip shortens the steps
        norm_sum, n_clipped = 0.0, 0
        self.progress("pixel", self.step, cfg.steps)
        for x, conditions, size in self.stream.batches(self.step):
            if self.step >= cfg.steps:
                break
            for group in self.opt.param_groups:
                group["lr"] = self.lr_at(self.step)
            x = x.to(self.device, non_blocking=True)
            cond = denoiser.condition(conditions, size)
            loss = self.training_loss(denoiser, x, cond, size=size)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.net.parameters(), cfg.grad_clip))
            norm_sum, n_clipped = norm_sum + grad_norm, n_clipped + (grad_norm > cfg.grad_clip)
            self.opt.step()
            self.update_ema(self.step)
            self.step += 1
            value = loss.item()
            if not math.isfinite(value):
                raise FloatingPointError(f"training loss became {value} at step {self.step}")
            self.progress("pixel", self.step, cfg.steps)
            running, n_running = running + value, n_running + 1
            epoch = self.stream.epoch_of(self.step - 1)
            if self.step % cfg.log_interval == 0 or self.step == cfg.steps:
                self.emit(
                    {
                        "kind": "train",
                        "step": self.step,
                        "epoch": epoch,
                        "loss": running / n_running,
                        "lr": self.lr_at(self.step - 1),
                        "grad_norm": norm_sum / n_running,
                        "clipped": n_clipped / n_running,
                        "seconds": time.monotonic() - t0,
                    }
                )
                self.last_train_loss, running, n_running = running / n_running, 0.0, 0
                norm_sum, n_clipped = 0.0, 0
            if self.step % val_interval == 0 or self.step == cfg.steps:
                val = self.validate()
                if val is not None:
                    last_val = val[0]
                    self.emit(
                        {
                            "kind": "validation",
                            "step": self.step,
                            "epoch": epoch,
                            "train_loss": getattr(self, "last_train_loss", value),
                            "val_loss": val[0],
                            "val_size_nll": val[1],
                            "val_loss_channels": val[2],
                        }
                    )
            if self.step % cfg.checkpoint_interval == 0 or self.step == cfg.steps:
                self._save()
        barrier()
        return TrainResult(
            step=self.step,
            train_loss=getattr(self, "last_train_loss", float("nan")),
            val_loss=last_val,
            output=None,
            state_path=str(self.state_path),
            history=self.history,
            models=self._modules(),
        )

    # files ---------------------------------------------------------------------------
    def _config_dict(self):
        return {"model": self.mcfg.to_dict(), "train": self.cfg.to_dict(), "world_size": self.world}

    def _save(self):
        if self.rank == 0:
            self._write_state()
            path = None
            if self.shower_done and self.save_model is not None:
                path = self._write_model()
            path = None if path is None else str(path)
            self.emit({"kind": "checkpoint", "step": self.step, "path": path})
        barrier()

    def _modules(self):
        return {"net": self.net, "ema": self.ema, "shower": self.shower}

    def _write_state(self):
        tensors, opt_info = state_tensors(self._modules(), self.opt, self.gen)
        write_state(
            self.state_path,
            tensors,
            self.step,
            shower_done=self.shower_done,
            config=self._config_dict(),
            transforms=transforms_to_dict(self.transforms),
            domain=self.domain,
            optimizer=opt_info,
        )

    def _load_state(self):
        try:
            meta = read_state_metadata(self.state_path)
        except StateFileError as err:
            raise StateFileError(f"cannot resume: {err}") from None
        check_resumable(self.state_path, meta["config"], self._config_dict())
        tensors = read_state_tensors(self.state_path)
        restore_state(tensors, meta["optimizer"], self._modules(), self.opt, self.gen)
        self.step = meta["step"]
        self.shower_done = bool(meta["shower_done"])
        self.domain = meta["domain"]
        self.transforms = transforms_from_dict(meta["transforms"])

    def _write_model(self):
        meta = self.dataset.meta
        provenance = {
            **self.provenance,
            "steps": self.step,
            "target_steps": self.cfg.steps,
            "seed": self.cfg.seed,
            "world_size": self.world,
            "n_train_events": len(self.dataset),
            "n_validation_events": 0 if self.validation is None else len(self.validation),
            "input_files": meta.get("input_files", []),
        }
        return self.save_model(
            pixel_net=self.ema,
            shower_model=self.shower,
            transforms=self.transforms,
            config=self._config_dict(),
            training_meta=meta,
            domain=self.domain,
            provenance=provenance,
        )


def shower_pixel_weights(x, size, image_transform, weight, threshold):
    """``(N, 1, H, W)`` loss weights: ``weight`` on the shower pixels, 1 elsewhere.

    Parameters
    ----------
    x : torch.Tensor
        ``(N, C, H, W)`` training images in network space (channel 0: the charge).
    size : torch.Tensor
        ``(N,)`` their sizes (p.e.), with which the charge is decoded.
    image_transform : ctapipe_genshower.model.transforms.ImageTransform
    weight : float
        Weight of a shower pixel.
    threshold : float
        Pixels whose decoded charge exceeds this (p.e.) are shower pixels.
    """
    if size is None:
        raise ValueError("the shower-pixel weighting needs the image sizes")
    charge = x[:, 0]
    pe = image_transform.inverse(charge.flatten(1), size.to(charge.device), clip=False)
    shower = pe.view_as(charge)[:, None] > threshold
    return torch.where(shower, weight, 1.0).to(x.dtype)


def train(
    dataset,
    state_path,
    model_config=None,
    train_config=None,
    validation=None,
    save_model=None,
    resume=False,
    callback=None,
    provenance=None,
    initial=None,
):
    """Train the shower-level and pixel models; write the training state periodically.

    Parameters
    ----------
    dataset : dataset or TrainingArrays
        Training events (``len``, ``meta``, ``read(start, stop)``, see :mod:`.dataset`).
    state_path : path-like
        Training-state file (written periodically, atomically; read with ``resume``).
    model_config : ModelConfig, optional
        Default ``PRESETS["small"]``.
    train_config : TrainConfig, optional
    validation : dataset or TrainingArrays, optional
        Events for the validation loss (see :func:`.dataset.split_dataset`).
    save_model : callable, optional
        Called on rank 0 at every checkpoint with keyword arguments ``pixel_net`` (EMA
        U-Net), ``shower_model``, ``transforms``, ``config``, ``training_meta``, ``domain``,
        ``provenance``; returns the path written. Without it no model file is written.
    resume : bool
        Continue from ``state_path``; model and training settings must be unchanged.
    callback : callable, optional
        ``callback(record)`` with dict records of kind ``"shower"``, ``"train"``,
        ``"validation"`` (``step``, ``epoch``, ``train_loss``, ``val_loss``,
        ``val_size_nll``, ``val_loss_channels``: charge and peak time, or None),
        ``"checkpoint"`` (``step``, ``path``) and ``"progress"``
        (``phase`` ``"shower"`` or ``"pixel"``, ``step``, ``steps``: after every optimizer
        step of either model, for progress bars; not kept in ``TrainResult.history``)
        (rank 0 only).
    provenance : dict, optional
        Extra provenance passed on to ``save_model`` (e.g. the tool's command line).
    initial : object, optional
        A trained generator to start from (not used with ``resume``): ``pixel_net``,
        ``shower_model``, ``transforms`` and ``metadata["config"]["model"]``, as
        ``checkpoint.load_generator_modules`` returns them. Its network settings and camera
        grid must be this run's; its weights start both the raw and the EMA network, its
        normalisations replace the fit.

    Returns
    -------
    TrainResult
    """
    trainer = Trainer(
        dataset,
        state_path,
        model_config,
        train_config,
        validation,
        save_model,
        callback,
        provenance,
        initial,
    )
    trainer.setup(resume)
    return trainer.run()
