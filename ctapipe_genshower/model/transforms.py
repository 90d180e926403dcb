"""Invertible normalisation of images, peak times and shower conditions (torch + numpy).

The networks see O(1) numbers; everything here is fitted once on training data, is exactly
invertible, and round-trips through a JSON-able dict stored in the checkpoint.

Charge (like the paper, plus a tail transform)
    ``size = max(sum(image), size_floor)`` over all camera pixels (the raw sum, NSB
    included; not the cleaned Hillas intensity). The normalised image ``q = image / size``
    sums to one. Its pixel values span ~1e-6 to ~0.5 and are slightly negative where NSB
    fluctuates below the pedestal, so the network sees
    ``y = (asinh(q / q_scale) - shift) / scale``: linear around zero (keeps negative values
    and their sign), logarithmic in the heavy tail. ``q_scale`` is the median absolute
    normalised charge of the fitted sample, ``shift``/``scale`` standardise ``y``.
Peak time
    In pixels without Cherenkov light the peak time is the position of the largest noise
    fluctuation, i.e. spread over the readout window; in signal pixels it follows the
    shower's time gradient. Both are part of what ctapipe's time-based cleaning and timing
    parameters see, so the model learns the time of every pixel (a model with night-sky
    times leaves the faint pixels' to a table, :mod:`.night_sky_times`). It is standardised with
    global robust statistics: ``(t - median) / (0.7413 * IQR)`` (the IQR scale equals the
    standard deviation for a Gaussian). Generated times are clipped to the fitted range.
Conditions
    The five ``CONDITION_COLUMNS`` plus two derived features (impact distance
    ``hypot(impact_x, impact_y)`` and FoV offset ``hypot(lon, lat)``) are standardised to
    zero mean and unit variance; the pixel model additionally gets the standardised
    ``log10(size)``.
"""

import math

import numpy as np
import torch

from .config import TIME_TRANSFORMS
from .geometry import GeometryMaps
from .night_sky_times import NightSkyTimes
from .pixel_response import PixelResponse, signal_view

__all__ = [
    "CONDITION_NAMES",
    "FEATURE_NAMES",
    "SIGNAL_CHARGE",
    "TIME_TRANSFORMS",
    "ConditionTransform",
    "ImageTransform",
    "PixelGrid",
    "TimeTransform",
    "decode_images",
    "encode_images",
    "fit_time_transform",
    "fit_transforms",
    "transforms_from_dict",
    "transforms_to_dict",
]

#: Must equal ``ctapipe_genshower.data.arrays.CONDITION_COLUMNS`` (kept here so the model
#: package imports only torch + numpy; a test checks they agree).
CONDITION_NAMES = ("log10_energy", "impact_x", "impact_y", "source_fov_lon", "source_fov_lat")
FEATURE_NAMES = (*CONDITION_NAMES, "impact_distance", "fov_offset")

#: Pixels with at least this DL1 charge (p.e.) hold the shower's time, not a noise pulse's:
#: the asinh time transform is centred and scaled on their peak times.
SIGNAL_CHARGE = 10.0


def _as_tensor(x, dtype=torch.float32):
    if isinstance(x, torch.Tensor):
        return x.to(dtype)
    return torch.as_tensor(np.ascontiguousarray(x), dtype=dtype)


class PixelGrid:
    """Camera pixel order <-> padded square grid, from the index list of ``CameraGridMapping``.

    Parameters
    ----------
    shape : tuple of int
        Grid shape ``(H, W)`` of ctapipe's cartesian representation.
    index : sequence of int
        Flat grid index of every camera pixel.
    pad_to : int
        The grid is zero-padded (bottom/right) so both sides are multiples of ``pad_to``.
    """

    def __init__(self, shape, index, pad_to=1):
        self.shape = (int(shape[0]), int(shape[1]))
        self.index = torch.as_tensor(np.asarray(index, dtype=np.int64))
        if self.index.ndim != 1 or len(self.index) == 0:
            raise ValueError("grid index must be a non-empty 1d list of flat grid indices")
        if int(self.index.max()) >= self.shape[0] * self.shape[1] or int(self.index.min()) < 0:
            raise ValueError(f"grid index out of range for grid shape {self.shape}")
        self.pad_to = int(pad_to)
        h, w = self.shape
        self.padded_shape = (
            int(math.ceil(h / self.pad_to) * self.pad_to),
            int(math.ceil(w / self.pad_to) * self.pad_to),
        )
        rows, cols = self.index // w, self.index % w
        self.padded_index = rows * self.padded_shape[1] + cols

    @property
    def n_pixels(self):
        """Number of camera pixels."""
        return len(self.index)

    def mask(self, device=None):
        """``(1, 1, Hp, Wp)`` float mask, one where a real pixel sits."""
        m = torch.zeros(self.padded_shape[0] * self.padded_shape[1], device=device)
        m[self.padded_index.to(device)] = 1.0
        return m.reshape(1, 1, *self.padded_shape)

    def to_grid(self, pixels):
        """``(N, C, n_pixels)`` -> ``(N, C, Hp, Wp)``; cells without a pixel are zero."""
        n, c, _ = pixels.shape
        out = pixels.new_zeros(n, c, self.padded_shape[0] * self.padded_shape[1])
        out[:, :, self.padded_index.to(pixels.device)] = pixels
        return out.reshape(n, c, *self.padded_shape)

    def positions(self):
        """``(n_pixels, 2)`` float64 (row, column) of every pixel on the grid (cells)."""
        index = self.index.numpy()
        return np.stack([index // self.shape[1], index % self.shape[1]], axis=1).astype(np.float64)

    def from_grid(self, grid):
        """``(N, C, Hp, Wp)`` -> ``(N, C, n_pixels)`` in camera pixel order."""
        n, c = grid.shape[:2]
        return grid.reshape(n, c, -1)[:, :, self.padded_index.to(grid.device)]

    def to_dict(self):
        """JSON-able dict."""
        return {"shape": list(self.shape), "index": self.index.tolist(), "pad_to": self.pad_to}

    @classmethod
    def from_dict(cls, data):
        """Inverse of :meth:`to_dict`."""
        return cls(data["shape"], data["index"], pad_to=data["pad_to"])


class ImageTransform:
    """Charge: ``image -> y = (asinh(image / size / q_scale) - shift) / scale`` and back."""

    def __init__(self, q_scale=1e-3, shift=0.0, scale=1.0, size_floor=1.0, saturation=None):
        self.q_scale = float(q_scale)
        self.shift = float(shift)
        self.scale = float(scale)
        self.size_floor = float(size_floor)
        self.saturation = None if saturation is None else float(saturation)

    def size(self, image):
        """Normalisation of each image: the clipped sum of all pixel charges."""
        return _as_tensor(image, torch.float64).sum(-1).clamp_min(self.size_floor)

    def fit(self, image, saturation=None, ignore_zeros=False):
        """Fit ``q_scale``, ``shift``, ``scale`` on ``(N, n_pixels)`` p.e. images.

        ``ignore_zeros``: ``q_scale`` from the non-zero pixels only (true images, which are
        zero in most pixels).
        """
        image = _as_tensor(image, torch.float64)
        if not torch.isfinite(image).all():
            raise ValueError("cannot fit the image transform: images contain NaN or inf")
        q = image / self.size(image)[:, None]
        nonzero = q[q != 0] if ignore_zeros else q
        self.q_scale = max(float(nonzero.abs().median()), 1e-9) if nonzero.numel() else 1e-9
        y = torch.asinh(q / self.q_scale)
        self.shift = float(y.mean())
        self.scale = max(float(y.std()), 1e-6)
        self.saturation = float(image.max()) if saturation is None else float(saturation)
        return self

    def forward(self, image, size=None):
        """p.e. images -> network space (float32, same leading shape)."""
        image = _as_tensor(image, torch.float64)
        if size is None:
            size = self.size(image)
        q = image / _as_tensor(size, torch.float64).to(image.device)[..., None]
        return ((torch.asinh(q / self.q_scale) - self.shift) / self.scale).float()

    def inverse(self, y, size, clip=True):
        """Network space -> p.e. with the given ``size``; clipped at the saturation value."""
        y = _as_tensor(y, torch.float64)
        q = self.q_scale * torch.sinh(y * self.scale + self.shift)
        image = q * _as_tensor(size, torch.float64).to(y.device)[..., None]
        if clip and self.saturation is not None:
            image = image.clamp_max(self.saturation)
        return image.float()

    def to_dict(self):
        return {
            "q_scale": self.q_scale,
            "shift": self.shift,
            "scale": self.scale,
            "size_floor": self.size_floor,
            "saturation": self.saturation,
        }

    @classmethod
    def from_dict(cls, data):
        return cls(**data)


class TimeTransform:
    """Peak time: ``(t - center) / scale``, or asinh-compressed around the signal time.

    Linear (``softening=None``): robust global statistics of all peak times. A noise pixel's
    time is uniform in the readout window, so the scale is the window's (tens of ns) and the
    shower's sub-ns time structure is a percent of the network's unit.

    Asinh (``softening`` in ns): ``y = (asinh((t - center) / softening) - shift) / scale``
    with ``center`` and ``softening`` the median and robust spread of bright pixels' times
    (:data:`SIGNAL_CHARGE`): linear across the shower's time profile, logarithmic in the
    noise pixels' tails, so the profile gets most of the network's resolution.

    Asinh + linear (``linear_slope`` > 0): ``y = (linear_slope * (t - center) + asinh((t -
    center) / softening) - shift) / scale``, the linear term as large in variance as the asinh
    term: the shower's times keep most of the resolution, and the noise pixels' times, which
    the asinh alone squeezes into a logarithmic tail, stay resolvable across the window.
    Generated times are clipped to the fitted range in all forms.
    """

    def __init__(
        self,
        center=0.0,
        scale=1.0,
        t_min=-math.inf,
        t_max=math.inf,
        softening=None,
        shift=0.0,
        linear_slope=0.0,
    ):
        self.center = float(center)
        self.scale = float(scale)
        self.t_min = float(t_min)
        self.t_max = float(t_max)
        self.softening = None if softening is None else float(softening)
        self.shift = float(shift)
        self.linear_slope = float(linear_slope)

    def fit(self, peak_time, robust=True):
        """Fit on peak times (any shape). ``robust=False``: the standard deviation as scale,
        for times whose tails must stay O(1) too (a response model's signal times)."""
        t = self._checked(peak_time)
        q25, q50, q75 = _quartiles(t)
        self.center = float(q50)
        spread = float(q75 - q25) * 0.7413 if robust else float(t.std())
        self.scale = max(spread, 1e-3)
        self.softening, self.shift, self.linear_slope = None, 0.0, 0.0
        self.t_min, self.t_max = float(t.min()), float(t.max())
        return self

    def fit_softened(self, peak_time, signal_time, linear=False):
        """Fit the asinh form: ``center`` and ``softening`` from ``signal_time`` (the times
        of bright pixels), ``shift`` and ``scale`` from all ``peak_time``; ``linear``: add
        the linear term, its slope giving it the asinh term's standard deviation."""
        t, s = self._checked(peak_time), self._checked(signal_time)
        if len(s) < 2:
            raise ValueError("cannot fit the time transform: fewer than 2 bright pixels")
        q25, q50, q75 = _quartiles(s)
        self.center = float(q50)
        self.softening = max(float(q75 - q25) * 0.7413, 1e-3)
        dt = t - self.center
        u = torch.asinh(dt / self.softening)
        self.linear_slope = float(u.std() / dt.std().clamp_min(1e-6)) if linear else 0.0
        u = u + self.linear_slope * dt
        self.shift = float(u.mean())
        self.scale = max(float(u.std()), 1e-6)
        self.t_min, self.t_max = float(t.min()), float(t.max())
        return self

    @staticmethod
    def _checked(peak_time):
        t = _as_tensor(peak_time, torch.float64).flatten()
        if not torch.isfinite(t).all():
            raise ValueError("cannot fit the time transform: peak times contain NaN or inf")
        return t

    def forward(self, peak_time):
        t = _as_tensor(peak_time, torch.float64) - self.center
        if self.softening is None:
            return (t / self.scale).float()
        return ((self._softened(t) - self.shift) / self.scale).float()

    def _softened(self, dt):
        return torch.asinh(dt / self.softening) + self.linear_slope * dt

    def inverse(self, y, clip=True):
        y = _as_tensor(y, torch.float64)
        if self.softening is None:
            t = y * self.scale + self.center
        elif self.linear_slope == 0:
            # clamp before sinh: a wild value must not overflow before it is clipped
            u = (y * self.scale + self.shift).clamp(-50.0, 50.0)
            t = self.center + self.softening * torch.sinh(u)
        else:
            u = y * self.scale + self.shift
            if clip:  # the map is increasing: clipping u first bounds the work, same result
                ends = torch.tensor([self.t_min, self.t_max], dtype=torch.float64) - self.center
                lo, hi = self._softened(ends).tolist()
                u = u.clamp(lo, hi)
            t = self.center + self._invert_softened(u)
        if clip:
            t = t.clamp(self.t_min, self.t_max)
        return t.float()

    def _invert_softened(self, u, max_iterations=100):
        """``dt`` with ``_softened(dt) = u`` by Newton's method from ``dt = 0``.

        ``f(dt) = asinh(dt / softening) + linear_slope dt`` is strictly increasing, concave
        for ``dt > 0`` and convex for ``dt < 0``, so Newton's iterates from 0 approach the
        root monotonically from the side of 0 and never overshoot it: no bracket is needed,
        and about 7 iterations reach float64 rounding (64 bisection steps did before, up to a
        fifth of a 4-step student's generation time).
        """
        dt = torch.zeros_like(u)
        for _ in range(max_iterations):
            slope = torch.rsqrt(self.softening**2 + dt * dt) + self.linear_slope
            step = (self._softened(dt) - u) / slope
            dt = dt - step
            # NaN steps (NaN inputs) count as converged: they stay NaN
            if not bool((step.abs() > 1e-12 * (1.0 + dt.abs())).any()):
                break
        return dt

    def to_dict(self):
        data = {
            "center": self.center,
            "scale": self.scale,
            "t_min": self.t_min,
            "t_max": self.t_max,
        }
        if self.softening is not None:
            data.update(softening=self.softening, shift=self.shift)
        if self.linear_slope:
            data.update(linear_slope=self.linear_slope)
        return data

    @classmethod
    def from_dict(cls, data):
        return cls(**data)


def _quartiles(t):
    """25 %, 50 %, 75 % quantiles of a flat tensor (subsampled to at most ~1e6 values)."""
    levels = torch.tensor([0.25, 0.5, 0.75], dtype=t.dtype)
    return torch.quantile(t[:: max(1, len(t) // 1_000_000)], levels)


class ConditionTransform:
    """Conditions ``(N, 5)`` -> standardised features ``(N, 7)``; ``log10 size`` -> scalar."""

    def __init__(self, mean=None, std=None, log_size_mean=0.0, log_size_std=1.0):
        n = len(FEATURE_NAMES)
        self.mean = [0.0] * n if mean is None else [float(v) for v in mean]
        self.std = [1.0] * n if std is None else [float(v) for v in std]
        self.log_size_mean = float(log_size_mean)
        self.log_size_std = float(log_size_std)

    @staticmethod
    def raw_features(conditions):
        c = _as_tensor(conditions, torch.float64)
        if c.ndim != 2 or c.shape[1] != len(CONDITION_NAMES):
            raise ValueError(
                f"conditions must have shape (N, {len(CONDITION_NAMES)}), got {tuple(c.shape)}"
            )
        extra = torch.stack([torch.hypot(c[:, 1], c[:, 2]), torch.hypot(c[:, 3], c[:, 4])], dim=1)
        return torch.cat([c, extra], dim=1)

    def fit(self, conditions, size):
        f = self.raw_features(conditions)
        if not torch.isfinite(f).all():
            raise ValueError("cannot fit the condition transform: conditions contain NaN or inf")
        self.mean = f.mean(0).tolist()
        self.std = f.std(0).clamp_min(1e-6).tolist()
        log_size = torch.log10(_as_tensor(size, torch.float64))
        self.log_size_mean = float(log_size.mean())
        self.log_size_std = max(float(log_size.std()), 1e-6) if len(log_size) > 1 else 1.0
        return self

    def features(self, conditions):
        """Standardised features ``(N, 7)`` float32 (see ``FEATURE_NAMES``)."""
        f = self.raw_features(conditions)
        mean = torch.tensor(self.mean, dtype=f.dtype, device=f.device)
        std = torch.tensor(self.std, dtype=f.dtype, device=f.device)
        return ((f - mean) / std).float()

    def log_size(self, size):
        """``size`` (p.e.) -> standardised ``log10(size)`` (float32)."""
        log_size = torch.log10(_as_tensor(size, torch.float64))
        return ((log_size - self.log_size_mean) / self.log_size_std).float()

    def size_from_log(self, z):
        """Inverse of :meth:`log_size` (float64)."""
        return 10 ** (_as_tensor(z, torch.float64) * self.log_size_std + self.log_size_mean)

    def pixel_condition(self, conditions, size):
        """Condition vector of the pixel model: features + standardised log size, ``(N, 8)``."""
        return torch.cat([self.features(conditions), self.log_size(size)[:, None]], dim=1)

    def to_dict(self):
        return {
            "feature_names": list(FEATURE_NAMES),
            "mean": self.mean,
            "std": self.std,
            "log_size_mean": self.log_size_mean,
            "log_size_std": self.log_size_std,
        }

    @classmethod
    def from_dict(cls, data):
        if list(data.get("feature_names", FEATURE_NAMES)) != list(FEATURE_NAMES):
            raise ValueError(
                f"condition features {data['feature_names']} differ from {FEATURE_NAMES}"
            )
        return cls(data["mean"], data["std"], data["log_size_mean"], data["log_size_std"])


# -- the transforms together -------------------------------------------------------------
_TRANSFORM_TYPES = {
    "grid": PixelGrid,
    "image": ImageTransform,
    "time": TimeTransform,
    "conditions": ConditionTransform,
}
#: Present only in models with geometry channels (``ModelConfig.geometry_maps``), with a
#: learned pixel response (``ModelConfig.pixel_response``) and with night-sky times
#: (``ModelConfig.night_sky_charge``).
_OPTIONAL_TYPES = {
    "geometry": GeometryMaps,
    "response": PixelResponse,
    "night_sky": NightSkyTimes,
}


def transforms_to_dict(transforms):
    """JSON-able form of the transforms dict (the checkpoint's ``transforms`` entry)."""
    data = {key: transforms[key].to_dict() for key in _TRANSFORM_TYPES}
    data.update({key: transforms[key].to_dict() for key in _OPTIONAL_TYPES if key in transforms})
    return data


def transforms_from_dict(data):
    """Inverse of :func:`transforms_to_dict`."""
    types = {**_TRANSFORM_TYPES, **{k: v for k, v in _OPTIONAL_TYPES.items() if k in data}}
    return {key: cls.from_dict(data[key]) for key, cls in types.items()}


def fit_transforms(
    batch,
    grid_shape,
    grid_index,
    pad_to=1,
    saturation=None,
    pixel_fov=None,
    response=False,
    time_transform="linear",
    night_sky_charge=None,
    night_sky_target="centre",
):
    """Fit all transforms on a batch of training events.

    Parameters
    ----------
    batch : dict
        ``image``, ``peak_time`` ``(N, n_pixels)`` and ``conditions`` ``(N, 5)`` numpy arrays.
    grid_shape, grid_index
        The camera's grid (``meta["grid_shape"]``, ``meta["grid_index"]``).
    pad_to : int
        Grid padding of the U-Net (``UNetConfig.pad_to``).
    saturation : float, optional
        Largest generated charge; default the largest charge in ``batch``.
    pixel_fov : tuple of array-like, optional
        ``(lon, lat)`` of every pixel in the telescope frame (deg): fit the geometry
        channels (:class:`~.geometry.GeometryMaps`) too.
    response : bool
        Fit a :class:`~.pixel_response.PixelResponse` on ``batch["true_image"]`` and the
        DL1 images; the other transforms are then fitted on the signal
        (:func:`~.pixel_response.signal_view`), which the network learns.
    time_transform : {"linear", "asinh", "asinh+linear"}
        Form of the peak-time transform (:class:`TimeTransform`).
    night_sky_charge : float, optional
        Fit a :class:`~.night_sky_times.NightSkyTimes` table of the peak times of the pixels
        at or below this charge (p.e.); the time transform is fitted on all times as they are.
    night_sky_target : {"centre", "plane"}
        The night-sky pixels' training target (:class:`~.night_sky_times.NightSkyTimes`).

    Returns
    -------
    dict
        ``{"grid", "image", "time", "conditions"}``, plus ``"geometry"`` with ``pixel_fov``,
        ``"response"`` with ``response`` and ``"night_sky"`` with ``night_sky_charge``.
    """
    fitted = {}
    if response:
        if batch.get("true_image") is None:
            raise ValueError(
                "a model with a learned pixel response needs training data with true images"
            )
        if saturation is None:  # the DL1 charges saturate, not the signal
            saturation = float(np.max(batch["image"]))
        fitted["response"] = PixelResponse.fit(
            batch["true_image"], batch["image"], batch["peak_time"]
        )
        batch = signal_view(batch)
    image_tf = ImageTransform()
    size = image_tf.size(batch["image"])
    image_tf.fit(batch["image"], saturation=saturation, ignore_zeros=response)
    transforms = {
        "grid": PixelGrid(grid_shape, grid_index, pad_to=pad_to),
        "image": image_tf,
        # a response model's times matter only where there is signal (see signal_view);
        # 1-p.e. pixels' times have long tails (the extractor picks an NSB pulse)
        "time": fit_time_transform(batch, time_transform, response),
        "conditions": ConditionTransform().fit(batch["conditions"], size),
    }
    if pixel_fov is not None:
        geometry = GeometryMaps(*pixel_fov)
        transforms["geometry"] = geometry.fit(batch["image"], batch["conditions"])
    if night_sky_charge is not None:
        if response:
            raise ValueError("a model with a learned pixel response has its own noise times")
        transforms["night_sky"] = fit_night_sky_times(
            batch, night_sky_charge, night_sky_target, transforms["time"]
        )
    transforms.update(fitted)
    return transforms


def fit_night_sky_times(batch, charge, target, time_transform):
    """The night-sky times' table of :func:`fit_transforms` alone, in ``time_transform``
    (its centre is the ``centre`` target). Also used to give a fine-tuned model new ones."""
    return NightSkyTimes.fit(
        batch["image"], batch["peak_time"], charge, time_transform.center, target=target
    )


def fit_time_transform(batch, time_transform="linear", response=False):
    """The peak-time transform of :func:`fit_transforms` alone.

    ``batch`` holds ``image`` and ``peak_time`` (for ``response``: the signal view, true p.e.
    and signal times). Also used to give a warm-started model a new time transform.
    """
    if time_transform not in TIME_TRANSFORMS:
        raise ValueError(f"time_transform must be one of {TIME_TRANSFORMS}, got {time_transform!r}")
    image, time = np.asarray(batch["image"]), np.asarray(batch["peak_time"])
    if time_transform in ("asinh", "asinh+linear"):
        # a response model's signal pixels are those with any p.e.; a DL1 model's are bright
        signal = image > 0 if response else image >= SIGNAL_CHARGE
        return TimeTransform().fit_softened(
            time[signal] if response else time,
            time[signal],
            linear=time_transform == "asinh+linear",
        )
    # a response model's times matter only where there is signal (see signal_view);
    # 1-p.e. pixels' times have long tails (the extractor picks an NSB pulse)
    if response:
        return TimeTransform().fit(time[image > 0], robust=False)
    return TimeTransform().fit(time)


def encode_images(transforms, image, peak_time, size):
    """Camera images (p.e., ns) -> network space on the padded grid, ``(N, 2, Hp, Wp)``."""
    pixels = torch.stack(
        [transforms["image"].forward(image, size), transforms["time"].forward(peak_time)], dim=1
    )
    return transforms["grid"].to_grid(pixels)


def decode_images(transforms, x, size):
    """Inverse of :func:`encode_images`: ``(image, peak_time)``, each ``(N, n_pixels)`` float32.

    Charges are scaled by ``size`` and clipped at the saturation value, peak times clipped
    to the fitted range. Returned on the CPU; computed on the GPU for CUDA input (float64
    there too: on a CPU core the time transform's Newton inverse takes ~0.5 ms per event, ten
    times a 4-step student's network calls on an H200, ``docs/sampling.md``), else on the CPU.
    """
    pixels = transforms["grid"].from_grid(x)
    if pixels.device.type != "cuda":
        pixels = pixels.cpu()
    image = transforms["image"].inverse(pixels[:, 0], torch.as_tensor(size))
    return image.cpu(), transforms["time"].inverse(pixels[:, 1]).cpu()
