"""The refiner: a learned density ratio between simulated and generated images.

A classifier trained to tell the training simulation's selected images from a model's own
generated images of the same showers estimates, through its odds, the ratio

    r(x, c, s) = p_sim(x | c, s, selected) / p_model(x | c, s, selected)

of image parameters ``x`` given the shower conditions ``c`` and the image size ``s`` (both
classes share the conditions and sizes, :func:`ctapipe_genshower.refine.paired_features`, so
the joint odds are the conditional ratio). Accepting a generated image with
probability ``min(r / r_max, 1)`` and redrawing the rest for the same shower and size turns the
model's distribution into ``p_model * min(r, r_max)``, i.e. into the simulation's wherever
the ratio is below the cap (discriminator rejection sampling, arXiv 1810.06758; the
classifier-weight correction of generated events in HEP, DCTRGAN, arXiv 2009.03796, made
unweighted). The shower-level model, hence the selected events per thrown shower, is
untouched: rejection only chooses among the draws of the same shower.

The classifier reads the image parameters analyses use (:data:`REFINER_FEATURES`, ctapipe's
DL1 parameter columns) and the five shower conditions, standardised with statistics of the
simulated sample. Features are numpy; the network is a small MLP (torch, imported lazily).
"""

import numpy as np

from .marginal_calibration import MarginalCalibration

__all__ = [
    "ANGLE_READINGS",
    "FEATURE_TRANSFORMS",
    "REFINER_FEATURES",
    "REFINER_FEATURES_V1",
    "TIME_RESIDUAL_FEATURE",
    "DensityRatio",
    "density_ratio_net",
    "feature_spec",
    "refiner_features",
]

#: How a refiner feature enters the classifier: the value, its log10, or the cosine / sine of
#: an angle in degrees (``cos``, ``sin``) or of twice the angle (``cos2``, ``sin2``, for an
#: axis direction such as ``hillas_psi``, defined modulo 180 deg). The trigonometric forms keep
#: directions continuous across the wrap, where a raw angle jumps from +90 to -90 deg.
FEATURE_TRANSFORMS = ("linear", "log10", "cos", "sin", "cos2", "sin2")

#: How the trigonometric transforms read an angle column: ``"degrees"`` converts an angular
#: quantity to degrees first (ctapipe's ``hillas_phi`` and ``hillas_psi`` are in rad);
#: ``"unconverted"`` takes the number as stored, the behaviour of the refiners fitted before
#: this conversion existed (their rad values were read as degrees, so their ``cos`` / ``sin``
#: features were nearly constant / linear in the angle). Model files record the reading their
#: refiner was fitted with; files without the record are ``"unconverted"``.
ANGLE_READINGS = ("degrees", "unconverted")

#: Image parameters the refiner reads: (ctapipe DL1 column, transform). The shape, timing and
#: direction parameters downstream tools read (energy, disp and G/H models of
#: ``examples/irf``), the peak-time spread among them.
REFINER_FEATURES = (
    ("hillas_intensity", "log10"),
    ("morphology_n_pixels", "log10"),
    ("hillas_fov_lon", "linear"),
    ("hillas_fov_lat", "linear"),
    ("hillas_r", "linear"),
    ("hillas_phi", "cos"),
    ("hillas_phi", "sin"),
    ("hillas_psi", "cos2"),
    ("hillas_psi", "sin2"),
    ("hillas_length", "linear"),
    ("hillas_width", "linear"),
    ("hillas_skewness", "linear"),
    ("hillas_kurtosis", "linear"),
    ("leakage_intensity_width_1", "linear"),
    ("leakage_intensity_width_2", "linear"),
    ("concentration_cog", "linear"),
    ("concentration_core", "linear"),
    ("concentration_pixel", "linear"),
    ("timing_slope", "linear"),
    ("timing_deviation", "linear"),
    ("peak_time_std", "linear"),
    ("morphology_n_islands", "linear"),
    ("intensity_max", "log10"),
    ("intensity_std", "log10"),
)

#: An optional 25th feature (``ctapipe-genshower-refine --time-residual``): the largest
#: peak-time residual of a cleaned pixel from ctapipe's timing fit, which
#: :class:`~ctapipe_genshower.io.reselection.ImageReselection` adds (not a ctapipe column).
#: It brings ``timing_deviation`` within twice its floor but keeps fewer of the G/H-cut tail
#: (runs/2026-12-06_time_residual_feature/), so it is not among the defaults.
TIME_RESIDUAL_FEATURE = ("timing_max_residual", "log10")

#: The features of the first refiners (``(column, log10?)``), the form their
#: model files record.
REFINER_FEATURES_V1 = (
    ("hillas_intensity", True),
    ("morphology_n_pixels", True),
    ("hillas_fov_lon", False),
    ("hillas_fov_lat", False),
    ("hillas_r", False),
    ("hillas_phi", False),
    ("hillas_psi", False),
    ("hillas_length", False),
    ("hillas_width", False),
    ("hillas_skewness", False),
    ("hillas_kurtosis", False),
    ("leakage_intensity_width_2", False),
    ("concentration_core", False),
    ("concentration_pixel", False),
    ("timing_slope", False),
    ("morphology_n_islands", False),
    ("intensity_max", True),
)


def feature_spec(features):
    """``features`` as a tuple of ``(column, transform)``; booleans (the form of model files
    refined before the transforms existed) mean ``log10`` (True) and ``linear`` (False).

    Raises ``ValueError`` for an unknown transform.
    """
    spec = []
    for name, transform in features:
        if isinstance(transform, bool):
            transform = "log10" if transform else "linear"
        if transform not in FEATURE_TRANSFORMS:
            raise ValueError(
                f"unknown transform {transform!r} of refiner feature {name!r}"
                f" (choose from {', '.join(FEATURE_TRANSFORMS)})"
            )
        spec.append((str(name), transform))
    return tuple(spec)


def _transformed(x, transform):
    with np.errstate(divide="ignore", invalid="ignore"):
        if transform == "log10":
            return np.log10(x)
    factor = 2.0 if transform.endswith("2") else 1.0
    if transform.startswith("cos"):
        return np.cos(np.deg2rad(factor * x))
    if transform.startswith("sin"):
        return np.sin(np.deg2rad(factor * x))
    return x


def _values(column, transform="linear", angles="degrees"):
    """A table column as a float64 array (astropy quantities lose their unit); an angular
    quantity read by a trigonometric transform is first converted to degrees (``angles``:
    one of :data:`ANGLE_READINGS`)."""
    unit = getattr(column, "unit", None)  # a Quantity's or a table Column's
    if transform.startswith(("cos", "sin")) and angles == "degrees" and unit is not None:
        import astropy.units as u  # only columns with units need it (GPU nodes lack astropy)

        return u.Quantity(column, unit, dtype=np.float64).to_value(u.deg)
    return np.asarray(getattr(column, "value", column), dtype=np.float64)


def refiner_features(columns, conditions, features=REFINER_FEATURES, angles="degrees"):
    """The refiner's raw input matrix: image parameters, then the five conditions.

    Parameters
    ----------
    columns : mapping of str -> array-like
        ctapipe DL1 parameter columns (e.g. ``ImageReselection.parameters``), one row per image.
    conditions : array-like, shape (N, 5)
        ``CONDITION_COLUMNS`` of the same images.
    features : sequence of (str, str)
        Parameter columns and their transforms (:data:`FEATURE_TRANSFORMS`; booleans:
        :func:`feature_spec`).
    angles : str
        How the trigonometric transforms read angles (:data:`ANGLE_READINGS`); plain numbers
        are taken as degrees.

    Returns
    -------
    numpy.ndarray, shape (N, len(features) + 5), float64
        Non-finite values (a log of a non-positive number, a parameter ctapipe could not
        compute) stay NaN; :meth:`DensityRatio.log_ratio` maps them to the sample mean.
    """
    if angles not in ANGLE_READINGS:
        raise ValueError(f"unknown angle reading {angles!r} (choose from {ANGLE_READINGS})")
    conditions = np.asarray(conditions, dtype=np.float64)
    cols = []
    for name, transform in feature_spec(features):
        if name not in columns:
            raise KeyError(f"parameter column {name!r} missing (the refiner needs it)")
        cols.append(_transformed(_values(columns[name], transform, angles), transform))
    x = np.column_stack([*cols, conditions]) if cols else conditions.copy()
    if len(x) != len(conditions):
        raise ValueError(f"{len(x)} parameter rows for {len(conditions)} conditions")
    x[~np.isfinite(x)] = np.nan
    return x


def _mlp(n_inputs, width, depth):
    import torch.nn as nn

    layers, n = [], n_inputs
    for _ in range(depth):
        layers += [nn.Linear(n, width), nn.SiLU()]
        n = width
    layers.append(nn.Linear(n, 1))
    return nn.Sequential(*layers)


def density_ratio_net(n_inputs, width=128, depth=3, members=1):
    """The classifier network: an MLP from standardised features to the log-odds (sim vs model).

    Parameters
    ----------
    n_inputs : int
    width : int
        Hidden units per layer.
    depth : int
        Hidden layers.
    members : int
        MLPs whose log-odds are averaged (an ensemble,
        :class:`~ctapipe_genshower.model.networks.MeanOfNets`); 1: the MLP itself.

    Returns
    -------
    torch.nn.Module
        ``torch.nn.Sequential`` for one member.
    """
    if n_inputs < 1 or width < 1 or depth < 1 or members < 1:
        raise ValueError(
            f"need n_inputs, width, depth, members >= 1, got {n_inputs}, {width}, {depth},"
            f" {members}"
        )
    if members == 1:
        return _mlp(int(n_inputs), int(width), int(depth))
    from .networks import MeanOfNets

    return MeanOfNets([_mlp(int(n_inputs), int(width), int(depth)) for _ in range(members)])


def _members(net):
    """The MLPs of a classifier network (one, or an ensemble's)."""
    return list(net.members) if hasattr(net, "members") else [net]


class DensityRatio:
    """A fitted refiner: ``log r(x, c)`` and the acceptance probability of generated images.

    Parameters
    ----------
    net : torch.nn.Module
        :func:`density_ratio_net` with its fitted weights (balanced classes: its output is
        ``log r`` directly).
    mean, scale : array-like, shape (n_inputs,)
        Standardisation of the raw features (:func:`refiner_features`).
    log_cap : float
        ``log r_max``: images with a larger ratio are always accepted.
    features : sequence of (str, str)
        The parameter columns the net reads (before the five conditions) and their
        transforms (:func:`feature_spec`).
    info : dict, optional
        How it was fitted (sample sizes, sampling settings, held-out AUC, acceptance).
    angles : str
        How its trigonometric features read angle columns (:data:`ANGLE_READINGS`): what it
        was fitted with.
    temperature : float
        ``log r = temperature x`` the net's output: the calibration of an over-confident
        classifier on held-out rows (1 for refiners fitted without it).
    calibration : MarginalCalibration, optional
        Per-parameter factors multiplying the classifier's ratio so that the kept images
        match the simulation's one-dimensional distributions
        (:mod:`~ctapipe_genshower.model.marginal_calibration`); None: the classifier alone.
    """

    def __init__(
        self,
        net,
        mean,
        scale,
        log_cap,
        features=REFINER_FEATURES,
        info=None,
        angles="degrees",
        temperature=1.0,
        calibration=None,
    ):
        if angles not in ANGLE_READINGS:
            raise ValueError(f"unknown angle reading {angles!r} (choose from {ANGLE_READINGS})")
        self.angles = angles
        self.net = net.eval()
        self.mean = np.asarray(mean, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)
        self.features = feature_spec(features)
        n_inputs = len(self.features) + 5
        if self.mean.shape != (n_inputs,) or self.scale.shape != (n_inputs,):
            raise ValueError(f"mean and scale must have {n_inputs} entries")
        if not np.all(self.scale > 0) or not np.all(np.isfinite(self.mean)):
            raise ValueError("scale must be positive and mean finite")
        self.log_cap = float(log_cap)
        if not np.isfinite(self.log_cap):
            raise ValueError(f"log_cap must be finite, got {log_cap}")
        self.info = dict(info or {})
        self.temperature = float(temperature)
        if not (np.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"temperature must be positive, got {temperature}")
        if calibration is not None and max(calibration.columns, default=-1) >= n_inputs:
            raise ValueError("the marginal calibration reads a column the refiner lacks")
        self.calibration = calibration

    @property
    def cap_quantile(self):
        """The cap as a quantile of the ratio over generated images (NaN if not recorded)."""
        return float(self.info.get("cap_quantile", np.nan))

    @property
    def acceptance_rate(self):
        """Expected fraction of selected generated images the refiner keeps (NaN if not
        recorded)."""
        return float(self.info.get("acceptance", np.nan))

    def with_cap_quantile(self, quantile):
        """The same refiner capped at another recorded quantile of the ratio.

        Raises ``ValueError`` for a quantile the fit did not record.
        """
        table = self.info.get("log_ratio_quantiles", {})
        key = f"{float(quantile):g}"
        if key not in table:
            recorded = ", ".join(table) or "none"
            raise ValueError(
                f"the refiner recorded no ratio quantile {quantile} (recorded: {recorded})"
            )
        info = {
            **self.info,
            "cap_quantile": float(quantile),
            "acceptance": self.info.get("acceptance_at_quantile", {}).get(key, np.nan),
        }
        return DensityRatio(
            self.net,
            self.mean,
            self.scale,
            table[key],
            self.features,
            info,
            self.angles,
            self.temperature,
            self.calibration,
        )

    def standardise(self, x):
        """Raw features -> the net's inputs (NaN -> 0, the sample mean), float32."""
        z = (np.asarray(x, dtype=np.float64) - self.mean) / self.scale
        return np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)

    def log_ratio_of_features(self, x, batch_size=65536):
        """``log r`` of raw feature rows (:func:`refiner_features`), ``(N,)`` float64: the
        calibrated classifier's, times the marginal calibration's factors if it has one."""
        log_r = self.temperature * self.logits_of_features(x, batch_size)
        if self.calibration is not None:
            log_r += self.calibration.log_factor(x)
        return log_r

    def logits_of_features(self, x, batch_size=65536):
        """The net's output (uncalibrated log-odds) for raw feature rows, ``(N,)`` float64."""
        import torch

        z = self.standardise(x)
        out = np.empty(len(z))
        with torch.inference_mode():
            for start in range(0, len(z), batch_size):
                chunk = torch.from_numpy(z[start : start + batch_size])
                out[start : start + len(chunk)] = self.net(chunk)[:, 0].double().numpy()
        return out

    def log_ratio(self, columns, conditions):
        """``log r`` of images given their parameter columns and conditions."""
        return self.log_ratio_of_features(
            refiner_features(columns, conditions, self.features, self.angles)
        )

    def acceptance(self, columns, conditions):
        """Acceptance probability ``min(r / r_max, 1)`` of each image, ``(N,)`` float64."""
        return np.exp(np.minimum(self.log_ratio(columns, conditions) - self.log_cap, 0.0))

    # -- the model file ----------------------------------------------------------------
    def to_metadata(self):
        """JSON-able description (weights are stored separately as tensors)."""
        members = _members(self.net)
        n_linear = [m for m in members[0] if hasattr(m, "weight")]
        return {
            "features": [list(f) for f in self.features],
            "angles": self.angles,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "log_cap": self.log_cap,
            "temperature": self.temperature,
            "width": int(n_linear[0].weight.shape[0]),
            "depth": len(n_linear) - 1,
            "members": len(members),
            "info": self.info,
            "calibration": None if self.calibration is None else self.calibration.to_metadata(),
        }

    @classmethod
    def from_metadata(cls, meta, state):
        """Build from :meth:`to_metadata` and the net's ``state_dict`` (tensors)."""
        features = feature_spec(meta["features"])
        net = density_ratio_net(
            len(features) + 5, meta["width"], meta["depth"], meta.get("members", 1)
        )
        net.load_state_dict(state)
        # refiners written before the record existed read the angles unconverted
        angles = meta.get("angles", "unconverted")
        calibration = meta.get("calibration")
        return cls(
            net,
            meta["mean"],
            meta["scale"],
            meta["log_cap"],
            features,
            meta.get("info"),
            angles,
            meta.get("temperature", 1.0),  # uncalibrated before the record existed
            None if calibration is None else MarginalCalibration.from_metadata(calibration),
        )

    def __repr__(self):
        return (
            f"DensityRatio(features={len(self.features)}+5 conditions,"
            f" temperature={self.temperature:.3g}, r_max=exp({self.log_cap:.3g})"
            f"{'' if self.calibration is None else ', marginal calibration'})"
        )
