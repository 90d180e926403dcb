"""Training core: both models, EMA, checkpoints, exact resume, DDP (no CLI, no file discovery).

``train(source, output, ...)`` trains

1. the shower-level model (selection classifier + size MDN) on the conditions and sizes of
   the training events (a short phase with large batches, then calibrated), and
2. the pixel diffusion model (U-Net, v-prediction loss) on the streamed images,

and writes the generator checkpoint (``checkpoint.save_checkpoint``) plus a training-state
file (safetensors + JSON, no pickle: raw weights, EMA, optimizer, step, RNG state) from
which ``resume=True`` continues bit-for-bit: the data order, the diffusion noise and the
learning-rate schedule are functions of ``(seed, rank, step)`` and the saved generator
state, so a run killed after step ``k`` and resumed ends at the same weights as an
uninterrupted one.

Data sources are duck-typed: ``len(source)``, ``source.meta`` and
``source.read(start, stop) -> {"image", "peak_time", "conditions"}`` (numpy). Each epoch
visits the rank's shard in shuffled chunk order, shuffled within each chunk.

Under ``torch.distributed`` (initialised by the caller, e.g. ``torchrun``: gloo on CPU,
NCCL on GPU) each rank reads its own contiguous shard, and both models are wrapped in
``DistributedDataParallel``; rank 0 writes the files.
"""

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import CheckpointError, read_metadata, save_checkpoint, write_safetensors_atomic
from .diffusion import v_loss
from .networks import UNet, UNetConfig
from .shower_model import ShowerModel, ThrownSampler
from .transforms import FEATURE_NAMES, ConditionTransform, ImageTransform, PixelGrid, TimeTransform

__all__ = [
    "PRESETS",
    "STATE_FORMAT",
    "ArraySource",
    "ModelConfig",
    "SubsetSource",
    "TrainConfig",
    "TrainResult",
    "as_source",
    "build_transforms",
    "fit_shower_model",
    "split_source",
    "state_path_for",
    "train",
]

STATE_FORMAT = "ctapipe-genshower-training-state"
STATE_FORMAT_VERSION = "1"
REQUIRED_META = ("grid_shape", "grid_index", "thrown", "n_thrown", "n_selected")


# -- configuration -----------------------------------------------------------------------
@dataclass
class ModelConfig:
    """Networks and sampler defaults (stored in the checkpoint)."""

    unet: UNetConfig = field(default_factory=UNetConfig)
    shower_hidden: int = 64
    shower_depth: int = 3
    size_components: int = 4
    proposal_index: float = -1.0
    channel_weights: tuple = (1.0, 1.0)
    default_n_steps: int = 20

    def to_dict(self):
        d = asdict(self)
        d["unet"] = self.unet.to_dict()
        d["channel_weights"] = list(self.channel_weights)
        return d

    @classmethod
    def from_dict(cls, data):
        data = dict(data)
        data["unet"] = UNetConfig.from_dict(data["unet"])
        data["channel_weights"] = tuple(data["channel_weights"])
        return cls(**data)

    def shower_model(self):
        return ShowerModel(
            in_dim=len(FEATURE_NAMES),
            hidden=self.shower_hidden,
            depth=self.shower_depth,
            n_components=self.size_components,
            proposal_index=self.proposal_index,
        )


#: Named model sizes: ``tiny`` for tests (seconds), ``small`` for the bundled CPU model.
PRESETS = {
    "tiny": ModelConfig(
        unet=UNetConfig(
            base_channels=4,
            channel_mult=(1, 1, 2),
            num_res_blocks=1,
            attention_levels=(2,),
            attention_heads=1,
            emb_dim=8,
            groups=2,
        ),
        shower_hidden=16,
        shower_depth=1,
        default_n_steps=4,
    ),
    "small": ModelConfig(
        unet=UNetConfig(
            base_channels=16,
            channel_mult=(1, 2, 4, 4),
            num_res_blocks=1,
            attention_levels=(2, 3),
            attention_heads=4,
            emb_dim=64,
        ),
        default_n_steps=20,
    ),
    "base": ModelConfig(
        unet=UNetConfig(
            base_channels=64,
            channel_mult=(1, 2, 2, 4),
            num_res_blocks=2,
            attention_levels=(2, 3),
            attention_heads=4,
            emb_dim=256,
        ),
        shower_hidden=128,
        default_n_steps=50,
    ),
}


@dataclass
class TrainConfig:
    """Optimisation settings (the Tool maps its traits onto these)."""

    steps: int = 10_000
    batch_size: int = 32
    learning_rate: float = 3e-4
    weight_decay: float = 0.01
    warmup_steps: int = 200
    cosine_decay: bool = True
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    seed: int = 0
    chunk_size: int = 4096
    fit_events: int = 20_000
    validation_interval: int = 0
    validation_events: int = 2048
    checkpoint_interval: int = 1000
    log_interval: int = 10
    mixed_precision: str = "auto"
    shower_steps: int = 3000
    shower_batch_size: int = 1024
    shower_learning_rate: float = 2e-3
    calibration_events: int = 500_000
    saturation: float | None = None
    device: str = "auto"

    def __post_init__(self):
        for name in (
            "steps",
            "batch_size",
            "chunk_size",
            "fit_events",
            "shower_batch_size",
            "checkpoint_interval",
            "log_interval",
        ):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.mixed_precision not in ("auto", "bf16", "no"):
            raise ValueError(
                f"mixed_precision must be 'auto', 'bf16' or 'no', got {self.mixed_precision!r}"
            )

    def to_dict(self):
        return asdict(self)


@dataclass
class TrainResult:
    step: int
    train_loss: float
    val_loss: float | None
    output: str
    state_path: str
    history: list = field(default_factory=list)
    #: the trained modules of this rank: ``net`` (raw U-Net), ``ema`` (EMA U-Net), ``shower``
    models: dict = field(default_factory=dict)


# -- data sources ------------------------------------------------------------------------
class ArraySource:
    """In-memory source (e.g. a ``TrainingArrays``) with the chunked-read protocol."""

    def __init__(self, image, peak_time, conditions, meta):
        self.image, self.peak_time, self.conditions, self.meta = image, peak_time, conditions, meta
        if not len(image) == len(peak_time) == len(conditions):
            raise ValueError("image, peak_time and conditions differ in length")

    def __len__(self):
        return len(self.image)

    def read(self, start, stop):
        return {
            "image": self.image[start:stop],
            "peak_time": self.peak_time[start:stop],
            "conditions": self.conditions[start:stop],
        }


class SubsetSource:
    """Events ``start..stop`` of another source."""

    def __init__(self, source, start, stop):
        n = len(source)
        self.source, self.start, self.stop = source, max(0, int(start)), min(n, int(stop))
        self.meta = source.meta

    def __len__(self):
        return max(0, self.stop - self.start)

    def read(self, start, stop):
        stop = min(stop, len(self))
        return self.source.read(self.start + start, self.start + stop)


def as_source(data):
    """A source from a ``TrainingArrays``-like object or pass through a source."""
    if hasattr(data, "read") and hasattr(data, "meta"):
        return data
    if all(hasattr(data, k) for k in ("image", "peak_time", "conditions", "meta")):
        return ArraySource(data.image, data.peak_time, data.conditions, data.meta)
    raise TypeError(f"{type(data).__name__} is neither a training source nor TrainingArrays")


def split_source(source, validation_fraction):
    """``(train, validation)``: the last ``validation_fraction`` of the events validate."""
    source = as_source(source)
    if not 0 <= validation_fraction < 1:
        raise ValueError(f"validation fraction must be in [0, 1), got {validation_fraction}")
    n = len(source)
    n_val = round(n * validation_fraction)
    if validation_fraction > 0 and n_val == 0:
        n_val = 1
    if n - n_val < 1:
        raise ValueError(
            f"{n} events are too few for a validation fraction of {validation_fraction}"
        )
    return SubsetSource(source, 0, n - n_val), (
        SubsetSource(source, n - n_val, n) if n_val else None
    )


def state_path_for(output):
    """Training-state file beside the checkpoint: ``m.safetensors`` -> ``m.state.safetensors``."""
    output = Path(output)
    stem = (
        output.name[: -len(".safetensors")] if output.name.endswith(".safetensors") else output.name
    )
    return output.with_name(stem + ".state.safetensors")


def _check_batch(batch, start, stop):
    for key in ("image", "peak_time", "conditions"):
        if key not in batch:
            raise ValueError(f"source.read({start}, {stop}) lacks {key!r}")
        if not np.isfinite(batch[key]).all():
            raise ValueError(f"training events {start}..{stop} contain NaN or inf in {key!r}")


# -- transforms --------------------------------------------------------------------------
def build_transforms(source, model_config, fit_events=20_000, saturation=None):
    """Fit the transforms on the first ``fit_events`` events of ``source``."""
    meta = source.meta
    n = min(len(source), int(fit_events))
    if n < 2:
        raise ValueError(f"need at least 2 training events, got {len(source)}")
    batch = source.read(0, n)
    _check_batch(batch, 0, n)
    image_tf = ImageTransform()
    size = image_tf.size(batch["image"])
    if saturation is None:
        saturation = meta.get("saturation_pe")
    image_tf.fit(batch["image"], saturation=saturation)
    return {
        "grid": PixelGrid(meta["grid_shape"], meta["grid_index"], pad_to=model_config.unet.pad_to),
        "image": image_tf,
        "time": TimeTransform().fit(batch["peak_time"]),
        "conditions": ConditionTransform().fit(batch["conditions"], size),
    }


def transforms_to_dict(tf):
    return {
        "grid": {
            "shape": list(tf["grid"].shape),
            "index": tf["grid"].index.tolist(),
            "pad_to": tf["grid"].pad_to,
        },
        "image": tf["image"].to_dict(),
        "time": tf["time"].to_dict(),
        "conditions": tf["conditions"].to_dict(),
    }


def transforms_from_dict(d):
    return {
        "grid": PixelGrid(d["grid"]["shape"], d["grid"]["index"], pad_to=d["grid"]["pad_to"]),
        "image": ImageTransform.from_dict(d["image"]),
        "time": TimeTransform.from_dict(d["time"]),
        "conditions": ConditionTransform.from_dict(d["conditions"]),
    }


def encode_batch(batch, tf):
    """Raw numpy batch -> ``(x (N, 2, Hp, Wp), cond (N, 8), features (N, 7), z_size (N,))``."""
    image_tf, cond_tf = tf["image"], tf["conditions"]
    size = image_tf.size(batch["image"])
    pixels = torch.stack(
        [image_tf.forward(batch["image"], size), tf["time"].forward(batch["peak_time"])], dim=1
    )
    features = cond_tf.features(batch["conditions"])
    z = cond_tf.log_size(size)
    cond = torch.cat([features, z[:, None]], dim=1)
    return tf["grid"].to_grid(pixels), cond, features, z, size


# -- distributed helpers -----------------------------------------------------------------
def _dist():
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _resolve_device(device, rank):
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and device.index is None and _dist()[1] > 1:
        device = torch.device("cuda", rank % torch.cuda.device_count())
    return device


def _wrap_ddp(module, device):
    if _dist()[1] == 1:
        return module
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(
        module, device_ids=[device.index] if device.type == "cuda" else None
    )


# -- data stream -------------------------------------------------------------------------
class _Stream:
    """Endless batches of one rank's shard, positioned by the global step (for exact resume)."""

    def __init__(self, source, lo, hi, tf, batch_size, chunk_size, seed, rank):
        self.source, self.lo, self.hi, self.tf = source, lo, hi, tf
        self.batch_size, self.chunk_size, self.seed, self.rank = batch_size, chunk_size, seed, rank
        self.n = hi - lo
        self.batches_per_epoch = self.n // batch_size
        if self.batches_per_epoch < 1:
            raise ValueError(
                f"rank {rank} has {self.n} training events, fewer than one batch of {batch_size}"
            )
        self.n_chunks = math.ceil(self.n / chunk_size)

    def epoch_of(self, step):
        return step // self.batches_per_epoch

    def batches(self, start_step):
        epoch, skip_batches = divmod(start_step, self.batches_per_epoch)
        while True:
            yield from self._epoch(epoch, skip_batches * self.batch_size)
            epoch, skip_batches = epoch + 1, 0

    def _epoch(self, epoch, skip):
        rng = np.random.default_rng([self.seed, self.rank, epoch])
        order = rng.permutation(self.n_chunks)
        buffer, n_buffer, n_yield = [], 0, 0
        for c in order:
            start = self.lo + int(c) * self.chunk_size
            stop = min(start + self.chunk_size, self.hi)
            perm = rng.permutation(stop - start)
            if skip >= stop - start:
                skip -= stop - start
                continue
            batch = self.source.read(start, stop)
            _check_batch(batch, start, stop)
            encoded = encode_batch(
                {
                    k: np.asarray(batch[k])[perm[skip:]]
                    for k in ("image", "peak_time", "conditions")
                },
                self.tf,
            )
            skip = 0
            buffer.append(encoded[:2])
            n_buffer += len(encoded[0])
            while n_buffer >= self.batch_size and n_yield < self.batches_per_epoch:
                x, cond = (torch.cat([b[i] for b in buffer]) for i in range(2))
                yield x[: self.batch_size], cond[: self.batch_size]
                n_yield += 1
                buffer, n_buffer = (
                    [(x[self.batch_size :], cond[self.batch_size :])],
                    len(x) - self.batch_size,
                )


# -- state file --------------------------------------------------------------------------
def _optimizer_to_tensors(optimizer, prefix):
    tensors, scalars = {}, {}
    sd = optimizer.state_dict()
    for idx, state in sd["state"].items():
        for key, value in state.items():
            name = f"{prefix}.{idx}.{key}"
            if torch.is_tensor(value):
                tensors[name] = value
            else:
                scalars[name] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _optimizer_from_tensors(optimizer, tensors, info, prefix):
    state = {}
    for name, value in list(tensors.items()) + list(info["scalars"].items()):
        if not name.startswith(prefix + "."):
            continue
        _, idx, key = name.split(".", 2)
        state.setdefault(int(idx), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": info["param_groups"]})


def _prefixed(module, prefix):
    return {f"{prefix}.{k}": v for k, v in module.state_dict().items()}


def _load_prefixed(module, tensors, prefix):
    sub = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
    module.load_state_dict(sub)


# -- shower-level model ------------------------------------------------------------------
def fit_shower_model(
    shower,
    features,
    z,
    sampler,
    condition_transform,
    selected_fraction,
    steps=3000,
    batch_size=1024,
    learning_rate=2e-3,
    calibration_events=500_000,
    seed=0,
    rank=0,
    device="cpu",
    callback=None,
):
    """Train the selection classifier and the size MDN, then calibrate the selection.

    Parameters
    ----------
    shower : ShowerModel
    features : torch.Tensor
        ``(N, 7)`` standardised features of the selected training showers.
    z : torch.Tensor
        ``(N,)`` standardised ``log10 size`` of those showers.
    sampler : ThrownSampler
        The thrown distribution (negatives come from it, with the proposal energy index).
    condition_transform : ConditionTransform
    selected_fraction : float
        ``N_selected / N_thrown`` of the whole training simulation.
    """
    device = torch.device(device)
    model = _wrap_ddp(shower, device)
    shower.train()
    opt = torch.optim.AdamW(shower.parameters(), lr=learning_rate, weight_decay=1e-4, foreach=True)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps))
    )
    rng = np.random.default_rng([seed, rank, 2])
    loss_sum, n_sum = 0.0, 0
    for step in range(steps):
        idx = torch.as_tensor(rng.integers(0, len(features), batch_size))
        proposal = sampler.sample(batch_size, rng, energy_index=shower.proposal_index)
        f_prop = condition_transform.features(proposal).to(device)
        loss = model(features[idx].to(device), f_prop, z[idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(shower.parameters(), 5.0)
        opt.step()
        sched.step()
        loss_sum, n_sum = loss_sum + loss.item(), n_sum + 1
        if callback is not None and ((step + 1) % max(1, steps // 10) == 0 or step + 1 == steps):
            callback({"kind": "shower", "step": step + 1, "loss": loss_sum / n_sum})
            loss_sum, n_sum = 0.0, 0
    shower.eval()
    thrown = sampler.sample(calibration_events, np.random.default_rng([seed, 3]))
    shower.calibrate(
        condition_transform.features(thrown).to(device), thrown[:, 0], sampler, selected_fraction
    )
    return shower


# -- the loop ----------------------------------------------------------------------------
class _Trainer:
    def __init__(
        self, source, output, model_config, cfg, validation_source, state_path, callback, provenance
    ):
        self.source = as_source(source)
        self.validation = None if validation_source is None else as_source(validation_source)
        self.output = Path(output)
        self.state_path = Path(state_path) if state_path is not None else state_path_for(output)
        self.mcfg = model_config or PRESETS["small"]
        self.cfg = cfg or TrainConfig()
        self.callback = callback or (lambda record: None)
        self.provenance = dict(provenance or {})
        self.rank, self.world = _dist()
        self.device = _resolve_device(self.cfg.device, self.rank)
        mp = self.cfg.mixed_precision
        self.amp = self.device.type == "cuda" and mp in ("auto", "bf16")
        meta = self.source.meta
        missing = [k for k in REQUIRED_META if k not in meta]
        if missing:
            raise ValueError(f"training data meta lacks {', '.join(missing)}")
        if len(self.source) < 1:
            raise ValueError("the training data holds no events")
        if not 0 < int(meta["n_selected"]) <= int(meta["n_thrown"]):
            raise ValueError(
                f"need 0 < n_selected <= n_thrown, got {meta['n_selected']} and {meta['n_thrown']}"
            )
        self.history = []

    # records go to the callback (rank 0 only) -------------------------------------------
    def emit(self, record):
        self.history.append(record)
        if self.rank == 0:
            self.callback(record)

    def _seed_models(self):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.cfg.seed)
            self.net = UNet(self.mcfg.unet).to(self.device)
            self.shower = self.mcfg.shower_model().to(self.device)
            self.ema = UNet(self.mcfg.unet).to(self.device)
        self.ema.load_state_dict(self.net.state_dict())
        self.ema.requires_grad_(False)
        self.opt = torch.optim.AdamW(
            self.net.parameters(), lr=self.cfg.learning_rate, weight_decay=self.cfg.weight_decay
        )
        self.gen = torch.Generator(device=self.device).manual_seed(
            int(np.random.SeedSequence([self.cfg.seed, self.rank, 1]).generate_state(1)[0])
        )

    def setup(self, resume):
        self._seed_models()
        self.step = 0
        self.shower_done = False
        self.domain = None
        if resume:
            if not self.state_path.is_file():
                raise FileNotFoundError(
                    f"cannot resume: training-state file {self.state_path} does not exist"
                )
            self._load_state()
        else:
            self.tf = build_transforms(
                self.source, self.mcfg, self.cfg.fit_events, self.cfg.saturation
            )
        n = len(self.source)
        self.lo, self.hi = n * self.rank // self.world, n * (self.rank + 1) // self.world
        self.stream = _Stream(
            self.source,
            self.lo,
            self.hi,
            self.tf,
            self.cfg.batch_size,
            self.cfg.chunk_size,
            self.cfg.seed,
            self.rank,
        )
        self.mask = self.tf["grid"].mask(self.device)
        self.sampler = ThrownSampler.from_dict(self.source.meta["thrown"])

    # shower-level model --------------------------------------------------------------
    def train_shower(self):
        cfg = self.cfg
        feats, zs, raw = [], [], []
        for start in range(self.lo, self.hi, cfg.chunk_size):
            stop = min(start + cfg.chunk_size, self.hi)
            batch = self.source.read(start, stop)
            _check_batch(batch, start, stop)
            size = self.tf["image"].size(batch["image"])
            feats.append(self.tf["conditions"].features(batch["conditions"]))
            zs.append(self.tf["conditions"].log_size(size))
            c = ConditionTransform.raw_features(batch["conditions"])
            raw.append(torch.cat([c, size[:, None]], dim=1))
        features, z, raw = torch.cat(feats), torch.cat(zs), torch.cat(raw)
        self.domain = self._domain(raw)

        meta = self.source.meta
        fit_shower_model(
            self.shower,
            features,
            z,
            self.sampler,
            self.tf["conditions"],
            selected_fraction=int(meta["n_selected"]) / int(meta["n_thrown"]),
            steps=cfg.shower_steps,
            batch_size=cfg.shower_batch_size,
            learning_rate=cfg.shower_learning_rate,
            calibration_events=cfg.calibration_events,
            seed=cfg.seed,
            rank=self.rank,
            device=self.device,
            callback=self.emit,
        )
        self.shower_done = True

    def _domain(self, raw):
        lo, hi = raw.min(0).values.to(self.device), raw.max(0).values.to(self.device)
        if self.world > 1:
            torch.distributed.all_reduce(lo, op=torch.distributed.ReduceOp.MIN)
            torch.distributed.all_reduce(hi, op=torch.distributed.ReduceOp.MAX)
        names = [*FEATURE_NAMES, "size"]
        return {
            name: [float(a), float(b)] for name, a, b in zip(names, lo.cpu(), hi.cpu(), strict=True)
        }

    # pixel model ---------------------------------------------------------------------
    def lr_at(self, step):
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
        decay = min(self.cfg.ema_decay, (1 + step) / (10 + step))
        for e, p in zip(self.ema.parameters(), self.net.parameters(), strict=True):
            e.lerp_(p.detach(), 1 - decay)
        for e, b in zip(self.ema.buffers(), self.net.buffers(), strict=True):
            e.copy_(b)

    def loss(self, module, x, cond, generator=None, t=None, eps=None):
        def denoise(x_t, t_, c):
            return module(x_t, t_, c, self.mask)

        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            return v_loss(
                denoise,
                x,
                cond,
                self.mask,
                generator=generator,
                channel_weights=self.mcfg.channel_weights,
                t=t,
                eps=eps,
            )

    @torch.no_grad()
    def validate(self):
        if self.validation is None or len(self.validation) == 0:
            return None
        if not hasattr(self, "_val"):
            n = min(len(self.validation), self.cfg.validation_events)
            batch = self.validation.read(0, n)
            _check_batch(batch, 0, n)
            x, cond, feat, z, _ = encode_batch(batch, self.tf)
            g = torch.Generator().manual_seed(self.cfg.seed + 7919)
            t = torch.rand(len(x), generator=g)
            eps = torch.randn(x.shape, generator=g)
            self._val = (x, cond, feat, z, t, eps)
        x, cond, feat, z, t, eps = self._val
        total, bs = 0.0, self.cfg.batch_size
        self.ema.eval()
        for i in range(0, len(x), bs):
            sl = slice(i, i + bs)
            d = [a[sl].to(self.device) for a in (x, cond, t, eps)]
            total += float(self.loss(self.ema, d[0], d[1], t=d[2], eps=d[3])) * len(d[0])
        nll = float(self.shower.size_nll(feat.to(self.device), z.to(self.device)))
        return total / len(x), nll

    def run(self):
        cfg = self.cfg
        if not self.shower_done:
            self.train_shower()
            self._save()
        model = _wrap_ddp(self.net, self.device)
        self.net.train()
        val_interval = cfg.validation_interval or self.stream.batches_per_epoch
        running, n_running, last_val, t0 = 0.0, 0, None, time.monotonic()
        for x, cond in self.stream.batches(self.step):
            if self.step >= cfg.steps:
                break
            for group in self.opt.param_groups:
                group["lr"] = self.lr_at(self.step)
            x, cond = x.to(self.device, non_blocking=True), cond.to(self.device, non_blocking=True)
            loss = self.loss(model, x, cond, generator=self.gen)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(self.net.parameters(), cfg.grad_clip)
            self.opt.step()
            self.update_ema(self.step)
            self.step += 1
            value = loss.item()
            if not math.isfinite(value):
                raise FloatingPointError(f"training loss became {value} at step {self.step}")
            running, n_running = running + value, n_running + 1
            if self.step % cfg.log_interval == 0 or self.step == cfg.steps:
                self.emit(
                    {
                        "kind": "train",
                        "step": self.step,
                        "epoch": self.stream.epoch_of(self.step - 1),
                        "loss": running / n_running,
                        "lr": self.lr_at(self.step - 1),
                        "grad_norm": float(grad_norm),
                        "seconds": time.monotonic() - t0,
                    }
                )
                self.last_train_loss, running, n_running = running / n_running, 0.0, 0
            if self.step % val_interval == 0 or self.step == cfg.steps:
                val = self.validate()
                if val is not None:
                    last_val = val[0]
                    self.emit(
                        {
                            "kind": "validation",
                            "step": self.step,
                            "epoch": self.stream.epoch_of(self.step - 1),
                            "train_loss": getattr(self, "last_train_loss", value),
                            "val_loss": val[0],
                            "val_size_nll": val[1],
                        }
                    )
            if self.step % cfg.checkpoint_interval == 0 or self.step == cfg.steps:
                self._save()
        if self.world > 1:
            torch.distributed.barrier()
        return TrainResult(
            step=self.step,
            train_loss=getattr(self, "last_train_loss", float("nan")),
            val_loss=last_val,
            output=str(self.output),
            state_path=str(self.state_path),
            history=self.history,
            models={"net": self.net, "ema": self.ema, "shower": self.shower},
        )

    # files ---------------------------------------------------------------------------
    def _config_dict(self):
        return {"model": self.mcfg.to_dict(), "train": self.cfg.to_dict(), "world_size": self.world}

    def _save(self):
        if self.rank == 0:
            self._write_state()
            if self.shower_done:
                self._write_checkpoint()
            self.emit({"kind": "checkpoint", "step": self.step, "path": str(self.output)})
        if self.world > 1:
            torch.distributed.barrier()

    def _write_state(self):
        tensors = {
            **_prefixed(self.net, "net"),
            **_prefixed(self.ema, "ema"),
            **_prefixed(self.shower, "shower"),
        }
        opt_tensors, opt_info = _optimizer_to_tensors(self.opt, "optim")
        tensors.update(opt_tensors)
        tensors["rng.noise"] = self.gen.get_state()
        meta = {
            "format": STATE_FORMAT,
            "format_version": STATE_FORMAT_VERSION,
            "step": str(self.step),
            "shower_done": json.dumps(self.shower_done),
            "config": json.dumps(self._config_dict()),
            "transforms": json.dumps(transforms_to_dict(self.tf)),
            "domain": json.dumps(self.domain),
            "optimizer": json.dumps(opt_info),
        }
        write_safetensors_atomic(self.state_path, tensors, meta)

    def _load_state(self):
        from safetensors.torch import load_file

        try:
            meta = read_metadata(self.state_path, STATE_FORMAT, STATE_FORMAT_VERSION)
        except CheckpointError as err:
            raise CheckpointError(f"cannot resume: {err}") from None
        saved = meta["config"]
        now = self._config_dict()
        for key in ("model", "train"):
            if saved[key] != now[key]:
                diff = sorted(k for k in now[key] if saved[key].get(k) != now[key][k])
                raise ValueError(
                    f"cannot resume {self.state_path}: {key} settings differ ({', '.join(diff)})"
                )
        if saved["world_size"] != now["world_size"]:
            raise ValueError(
                f"cannot resume {self.state_path}: it was written with {saved['world_size']} "
                f"processes, now {now['world_size']}"
            )
        tensors = load_file(str(self.state_path), device="cpu")
        _load_prefixed(self.net, tensors, "net")
        _load_prefixed(self.ema, tensors, "ema")
        _load_prefixed(self.shower, tensors, "shower")
        _optimizer_from_tensors(self.opt, tensors, meta["optimizer"], "optim")
        self.gen.set_state(tensors["rng.noise"])
        self.step = int(meta["step"])
        self.shower_done = bool(meta["shower_done"])
        self.domain = meta["domain"]
        self.tf = transforms_from_dict(meta["transforms"])

    def _write_checkpoint(self):
        meta = {k: v for k, v in self.source.meta.items() if k != "grid_index"}
        tensors = {**_prefixed(self.ema, "pixel"), **_prefixed(self.shower, "shower")}
        provenance = {
            **self.provenance,
            "steps": self.step,
            "target_steps": self.cfg.steps,
            "seed": self.cfg.seed,
            "world_size": self.world,
            "n_train_events": len(self.source),
            "n_validation_events": 0 if self.validation is None else len(self.validation),
            "input_files": meta.get("input_files", []),
            "versions": _versions(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        save_checkpoint(
            self.output,
            tensors,
            config=self._config_dict(),
            transforms=transforms_to_dict(self.tf),
            training_meta=_jsonable(meta),
            domain=self.domain,
            provenance=provenance,
        )


def _versions():
    from importlib.metadata import PackageNotFoundError, version

    out = {"torch": torch.__version__, "numpy": np.__version__}
    for pkg in ("ctapipe", "ctapipe-genshower", "safetensors"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def _jsonable(obj):
    return json.loads(
        json.dumps(obj, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
    )


def train(
    source,
    output,
    model_config=None,
    train_config=None,
    validation_source=None,
    state_path=None,
    resume=False,
    callback=None,
    provenance=None,
):
    """Train the shower-level and pixel models; write checkpoint and training state.

    Parameters
    ----------
    source : source or TrainingArrays
        Training events (``len``, ``meta``, ``read(start, stop)``).
    output : path-like
        Checkpoint to write (periodically and at the end; atomically).
    model_config : ModelConfig, optional
        Default ``PRESETS["small"]``.
    train_config : TrainConfig, optional
    validation_source : source or TrainingArrays, optional
        Events for the validation loss (see :func:`split_source`).
    state_path : path-like, optional
        Training-state file, default :func:`state_path_for` ``(output)``.
    resume : bool
        Continue from ``state_path``; model and training settings must be unchanged.
    callback : callable, optional
        ``callback(record)`` with dict records of kind ``"shower"``, ``"train"``,
        ``"validation"`` (``step``, ``epoch``, ``train_loss``, ``val_loss``,
        ``val_size_nll``) and ``"checkpoint"`` (rank 0 only).
    provenance : dict, optional
        Extra provenance stored in the checkpoint (e.g. the tool's command line).

    Returns
    -------
    TrainResult
    """
    trainer = _Trainer(
        source,
        output,
        model_config,
        train_config,
        validation_source,
        state_path,
        callback,
        provenance,
    )
    trainer.setup(resume)
    return trainer.run()
