"""Model configuration: network sizes, sampler defaults and the named presets (no torch).

These dataclasses are stored as JSON in every checkpoint (``config["model"]``) and rebuild
the networks when a checkpoint is read. They import nothing but the standard library, so
a Tool can offer ``--model tiny|small|base`` (``PRESETS``) without paying for torch.
"""

import math
import numbers
from dataclasses import asdict, dataclass, field, replace

__all__ = [
    "NIGHT_SKY_TARGETS",
    "PRESETS",
    "SOLVER_NAMES",
    "TIME_TRANSFORMS",
    "MLPConfig",
    "ModelConfig",
    "UNetConfig",
    "eta_per_step",
    "is_number",
    "jsonable_eta",
]

#: The samplers of :mod:`.samplers` by name (here, without torch, for traits and checks).
SOLVER_NAMES = ("ddim", "dpmpp-2m", "heun")

#: Forms of the peak-time transform (``ModelConfig.time_transform``).
TIME_TRANSFORMS = ("linear", "asinh", "asinh+linear")
#: The night-sky pixels' training targets (:mod:`.night_sky_times`).
NIGHT_SKY_TARGETS = ("centre", "plane")

#: Charge and peak time.
_DATA_CHANNELS = 2
#: ``ctapipe_genshower.model.geometry.N_GEOMETRY_MAPS`` (kept here: no torch; a test checks).
_GEOMETRY_CHANNELS = 3


@dataclass
class UNetConfig:
    """Width and depth of the pixel U-Net.

    ``channel_mult[i] * base_channels`` channels at level ``i`` (resolution ``H / 2**i``);
    the grid is padded to a multiple of ``2**(len(channel_mult) - 1)``.
    """

    in_channels: int = 2
    out_channels: int = 2
    cond_dim: int = 8
    base_channels: int = 32
    channel_mult: tuple = (1, 2, 2)
    num_res_blocks: int = 1
    attention_levels: tuple = (2,)
    attention_heads: int = 4
    emb_dim: int = 128
    groups: int = 8

    @property
    def pad_to(self):
        """Grid sides must be multiples of this (one halving per level below the top)."""
        return 2 ** (len(self.channel_mult) - 1)

    def to_dict(self):
        """JSON-able dict (tuples as lists)."""
        d = asdict(self)
        d["channel_mult"] = list(self.channel_mult)
        d["attention_levels"] = list(self.attention_levels)
        return d

    @classmethod
    def from_dict(cls, data):
        """Inverse of :meth:`to_dict`."""
        data = dict(data)
        data["channel_mult"] = tuple(data["channel_mult"])
        data["attention_levels"] = tuple(data["attention_levels"])
        return cls(**data)


@dataclass
class MLPConfig:
    """Residual MLP ``in_dim -> hidden x depth -> out_dim``."""

    in_dim: int = 7
    out_dim: int = 1
    hidden: int = 64
    depth: int = 3
    extra: dict = field(default_factory=dict)

    def to_dict(self):
        """JSON-able dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


def is_number(eta):
    """Whether DDIM's ``eta`` is one number (not a per-step sequence)."""
    return isinstance(eta, numbers.Real)


def eta_per_step(eta, n_steps):
    """DDIM's ``eta`` of each of ``n_steps`` steps: a number for all of them, or a sequence
    (steps beyond it: 0). Refuses negative or non-finite values (ValueError)."""
    values = [float(eta)] * int(n_steps) if is_number(eta) else [float(e) for e in eta]
    if not all(math.isfinite(e) and e >= 0 for e in values):
        raise ValueError(f"eta must be finite and >= 0, got {eta}")
    return (values + [0.0] * int(n_steps))[: int(n_steps)]


def jsonable_eta(eta):
    """DDIM's ``eta`` as metadata: a float, or a list of floats (one per step)."""
    return float(eta) if is_number(eta) else [float(e) for e in eta]


@dataclass
class ModelConfig:
    """Both networks and the sampler default (stored in the checkpoint).

    Attributes
    ----------
    unet : UNetConfig
        The pixel model.
    shower_hidden, shower_depth : int
        Width and residual blocks of the two shower-level MLPs.
    size_components : int
        Gaussians in the size mixture density network.
    proposal_index : float
        Spectral index of the selection classifier's energy proposal (-1: log-uniform).
    channel_weights : tuple of float
        Weights of the charge and peak-time channels in the diffusion loss.
    default_n_steps : int
        DDIM steps when the caller gives none.
    distilled_steps : int
        0 for a denoiser (any solver, any number of steps); N for a distilled student
        (:mod:`ctapipe_genshower.model.distillation`), which samples with DDIM at exactly
        N steps.
    default_eta : tuple of float
        DDIM's ``eta`` of each step when the caller gives none (empty: 0, deterministic).
        A distilled student samples with this or with ``eta = 0`` (what it was distilled
        for); its refiner is fitted for this one (``docs/sampling.md``, *A stochastic
        student*).
    eta_channels : tuple of int
        The channels ``default_eta`` adds noise to (empty: all; ``(0,)``: the charge only).
    geometry_maps : bool
        Feed the U-Net per-pixel geometry channels computed from the shower conditions
        (:mod:`ctapipe_genshower.model.geometry`); ``unet.in_channels`` is then 2 + 3.
    pixel_response : bool
        The network generates the Cherenkov signal (true p.e. and signal times) and a
        pixel response learned from the training pairs makes the DL1 image
        (:mod:`ctapipe_genshower.model.pixel_response`); needs training data with true images.
    time_transform : {"linear", "asinh", "asinh+linear"}
        Form of the peak-time normalisation (:class:`~.transforms.TimeTransform`): ``asinh``
        gives the shower's sub-ns time profile most of the network's range instead of the
        readout window; ``asinh+linear`` keeps the noise pixels' times resolvable too. Not a
        property of the network: a trained model may be continued with another form
        (``--init-model``; its time transform is then refitted).
    night_sky_charge : float or None
        Pixels with DL1 charge at or below this (p.e.) get their peak times from a table
        learned from the training images, not from the network, which learns one fixed time
        there (:mod:`ctapipe_genshower.model.night_sky_times`). None: the network learns
        every pixel's time. Not with ``pixel_response`` (which has its own noise times).
    night_sky_target : {"centre", "plane"}
        What the network learns in those pixels: one fixed time, or the event's time plane
        (:class:`~ctapipe_genshower.model.night_sky_times.NightSkyTimes`).
    """

    unet: UNetConfig = field(default_factory=UNetConfig)
    shower_hidden: int = 64
    shower_depth: int = 3
    size_components: int = 4
    proposal_index: float = -1.0
    channel_weights: tuple = (1.0, 1.0)
    default_n_steps: int = 20
    geometry_maps: bool = False
    distilled_steps: int = 0
    default_eta: tuple = ()
    eta_channels: tuple = ()
    pixel_response: bool = False
    time_transform: str = "linear"
    night_sky_charge: float | None = None
    night_sky_target: str = "centre"

    def __post_init__(self):
        self.default_eta = tuple(float(e) for e in self.default_eta)
        self.eta_channels = tuple(int(c) for c in self.eta_channels)
        self.channel_weights = tuple(float(w) for w in self.channel_weights)
        if len(self.channel_weights) != _DATA_CHANNELS or not all(
            math.isfinite(w) and w > 0 for w in self.channel_weights
        ):
            raise ValueError(
                f"channel_weights must be {_DATA_CHANNELS} finite values > 0, "
                f"got {list(self.channel_weights)}"
            )
        if not all(math.isfinite(e) and e >= 0 for e in self.default_eta):
            raise ValueError(f"default_eta must be finite and >= 0, got {self.default_eta}")
        if any(not 0 <= c < _DATA_CHANNELS for c in self.eta_channels):
            raise ValueError(
                f"eta_channels must be in [0, {_DATA_CHANNELS}), got {self.eta_channels}"
            )
        if self.night_sky_charge is not None:
            self.night_sky_charge = float(self.night_sky_charge)
            if not math.isfinite(self.night_sky_charge):
                raise ValueError(f"night_sky_charge must be finite, got {self.night_sky_charge}")
            if self.pixel_response:
                raise ValueError(
                    "night_sky_charge cannot be combined with pixel_response, "
                    "which has its own noise times"
                )
        if self.night_sky_target not in NIGHT_SKY_TARGETS:
            raise ValueError(
                f"night_sky_target must be one of {NIGHT_SKY_TARGETS}, "
                f"got {self.night_sky_target!r}"
            )
        if self.night_sky_charge is None and self.night_sky_target != "centre":
            raise ValueError("night_sky_target applies to night-sky times: set night_sky_charge")
        if self.time_transform not in TIME_TRANSFORMS:
            raise ValueError(
                f"time_transform must be one of {TIME_TRANSFORMS}, got {self.time_transform!r}"
            )
        expected = _DATA_CHANNELS + (_GEOMETRY_CHANNELS if self.geometry_maps else 0)
        if self.distilled_steps and self.distilled_steps != self.default_n_steps:
            raise ValueError(
                f"a model distilled for {self.distilled_steps} steps must default to them, "
                f"got default_n_steps={self.default_n_steps}"
            )
        if self.unet.in_channels != expected:
            raise ValueError(
                f"unet.in_channels must be {expected} with geometry_maps={self.geometry_maps}, "
                f"got {self.unet.in_channels}"
            )

    def network_dict(self):
        """:meth:`to_dict` without the sampling settings: equal for a teacher and its student."""
        d = self.to_dict()
        for key in ("default_n_steps", "distilled_steps", "default_eta", "eta_channels"):
            del d[key]
        return d

    def architecture_dict(self):
        """:meth:`network_dict` without the time transform, the loss weights and the
        night-sky times: the networks whose weights can start one another's training."""
        d = self.network_dict()
        for key in ("time_transform", "channel_weights", "night_sky_charge", "night_sky_target"):
            del d[key]
        return d

    def distilled(self, n_steps):
        """The config of a student distilled from this model for ``n_steps`` DDIM steps."""
        return replace(self, default_n_steps=int(n_steps), distilled_steps=int(n_steps))

    @property
    def sampler_eta(self):
        """``(eta, eta_channels)`` of the default sampler: ``(0.0, None)`` when
        deterministic, else the per-step tuple and the channels (None: all)."""
        if not any(self.default_eta):
            return 0.0, None
        return self.default_eta, (self.eta_channels or None)

    def check_sampling(self, solver, n_steps, eta=0.0, eta_channels=None):
        """Refuse a sampler a distilled student was not trained for (ValueError): DDIM at
        its steps, deterministic or with its :attr:`default_eta` on its channels."""
        n = self.distilled_steps
        if not n:
            return
        steps, recorded = eta_per_step(eta, n), eta_per_step(self.default_eta, n)
        channels = None if eta_channels is None else tuple(int(c) for c in eta_channels)
        allowed = not any(steps) or (steps == recorded and channels == (self.eta_channels or None))
        if solver != "ddim" or int(n_steps) != n or not allowed:
            own = f" or eta {list(self.default_eta)}" if any(self.default_eta) else ""
            raise ValueError(
                f"this model is distilled for the ddim solver at {n} steps (eta 0{own}); "
                f"it cannot sample with {solver!r} at {n_steps} steps (eta {eta})"
            )

    def to_dict(self):
        """JSON-able dict (the ``config["model"]`` entry of a checkpoint)."""
        d = asdict(self)
        d["unet"] = self.unet.to_dict()
        d["channel_weights"] = list(self.channel_weights)
        d["default_eta"] = list(self.default_eta)
        d["eta_channels"] = list(self.eta_channels)
        return d

    @classmethod
    def from_dict(cls, data):
        """Inverse of :meth:`to_dict`."""
        data = dict(data)
        data["unet"] = UNetConfig.from_dict(data["unet"])
        data["channel_weights"] = tuple(data["channel_weights"])
        data["default_eta"] = tuple(data.get("default_eta", ()))
        data["eta_channels"] = tuple(data.get("eta_channels", ()))
        return cls(**data)


_TINY_UNET = dict(
    base_channels=4,
    channel_mult=(1, 1, 2),
    num_res_blocks=1,
    attention_levels=(2,),
    attention_heads=1,
    emb_dim=8,
    groups=2,
)
_SMALL_UNET = dict(
    base_channels=16,
    channel_mult=(1, 2, 4, 4),
    num_res_blocks=1,
    attention_levels=(2, 3),
    attention_heads=4,
    emb_dim=64,
)

#: Named model sizes: ``tiny`` for tests (seconds), ``small`` for the bundled CPU model,
#: ``base`` for GPUs; ``-geo`` adds the geometry channels, ``-signal`` the learned pixel
#: response (the network generates the signal, see :mod:`.pixel_response`), ``-asinh-time``
#: the asinh peak-time transform, ``-asinh-linear-time`` asinh plus a linear term
#: (``ModelConfig.time_transform``).
PRESETS = {
    "tiny": ModelConfig(
        unet=UNetConfig(**_TINY_UNET),
        shower_hidden=16,
        shower_depth=1,
        default_n_steps=4,
    ),
    "tiny-geo": ModelConfig(
        unet=UNetConfig(**_TINY_UNET, in_channels=_DATA_CHANNELS + _GEOMETRY_CHANNELS),
        shower_hidden=16,
        shower_depth=1,
        default_n_steps=4,
        geometry_maps=True,
    ),
    "tiny-signal": ModelConfig(
        unet=UNetConfig(**_TINY_UNET),
        shower_hidden=16,
        shower_depth=1,
        default_n_steps=4,
        pixel_response=True,
    ),
    "tiny-asinh-time": ModelConfig(
        unet=UNetConfig(**_TINY_UNET),
        shower_hidden=16,
        shower_depth=1,
        default_n_steps=4,
        time_transform="asinh",
    ),
    "small": ModelConfig(unet=UNetConfig(**_SMALL_UNET), default_n_steps=20),
    "small-asinh-time": ModelConfig(
        unet=UNetConfig(**_SMALL_UNET), default_n_steps=20, time_transform="asinh"
    ),
    "small-asinh-linear-time": ModelConfig(
        unet=UNetConfig(**_SMALL_UNET), default_n_steps=20, time_transform="asinh+linear"
    ),
    "small-signal": ModelConfig(
        unet=UNetConfig(**_SMALL_UNET), default_n_steps=20, pixel_response=True
    ),
    "small-geo": ModelConfig(
        unet=UNetConfig(**_SMALL_UNET, in_channels=_DATA_CHANNELS + _GEOMETRY_CHANNELS),
        default_n_steps=20,
        geometry_maps=True,
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
