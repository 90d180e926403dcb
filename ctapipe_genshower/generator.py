"""``ShowerGenerator``: selection decisions, image sizes, images and peak times from a checkpoint.

Post-processing of a generated event (in this order):

1. the size is drawn from the shower-level model (or given by the caller);
2. the network output is mapped back to the normalised image and multiplied by the size
   (:meth:`ImageTransform.inverse`); no renormalisation, so the sum of the generated
   image equals the size only as well as the network learned it;
3. charges are clipped at the saturation value stored in the checkpoint (the configured
   saturation, else the largest charge seen in training); no lower clip and no removal of
   small values: NSB noise, including negative values, is part of the learned image and
   ctapipe's cleaning removes it as it does for simulated events;
4. peak times are mapped back and clipped to the range seen in training (the readout window).

The training selection (e.g. size > 250 p.e. after cleaning) is *not* re-applied here:
``P(selected | shower)`` already accounts for it, and cutting generated images again would
lower the efficiency twice. Callers that want the paper's post-cut can apply
``training_meta["selection"]`` with ctapipe.
"""

import numpy as np

from .checkpoint import load_generator_modules

__all__ = ["ShowerGenerator"]


def _resolve_device(device):
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _event_streams(seeds):
    """Per-event ``(size uniform, size normal, image seed)`` derived from integer seeds."""
    seeds = np.asarray(seeds)
    if seeds.ndim != 1 or not np.issubdtype(seeds.dtype, np.integer) or np.any(seeds < 0):
        raise ValueError("seeds must be a 1d array of non-negative integers")
    uniform = np.empty(len(seeds))
    normal = np.empty(len(seeds))
    image_seed = np.empty(len(seeds), dtype=np.int64)
    for i, seed in enumerate(seeds.tolist()):
        ss = np.random.SeedSequence([int(seed), 0x5E1EC7])
        size_ss, image_ss = ss.spawn(2)
        rng = np.random.default_rng(size_ss)
        uniform[i], normal[i] = rng.uniform(), rng.standard_normal()
        image_seed[i] = int(image_ss.generate_state(1, np.uint64)[0] >> np.uint64(1))
    return uniform, normal, image_seed


class ShowerGenerator:
    """A trained generator, loaded from a checkpoint file.

    Use :meth:`from_file`. All inputs are numpy arrays; ``conditions`` are ``(N, 5)``
    in ``CONDITION_COLUMNS`` order (log10 E/TeV, impact_x m, impact_y m, fov_lon deg,
    fov_lat deg).

    Parameters
    ----------
    pixel_net : UNet
        The pixel model (EMA weights), on ``device``.
    shower_model : ShowerModel
        The shower-level model, on ``device``.
    transforms : dict
        ``{"grid", "image", "time", "conditions"}``.
    metadata : dict
        The checkpoint's decoded metadata (``config``, ``training_meta``, ``domain``,
        ``provenance``).
    device : torch.device
    path : str, optional
        The file it was read from.
    """

    def __init__(self, pixel_net, shower_model, transforms, metadata, device, path=None):
        from .model.denoiser import Denoiser
        from .model.shower_model import ThrownSampler

        self.pixel_net = pixel_net
        self.shower_model = shower_model
        self.transforms = transforms
        self.metadata = metadata
        self.device = device
        self.path = path
        self.config = metadata["config"]
        self.training_meta = metadata["training_meta"]
        self.domain = metadata["domain"]
        self.provenance = metadata["provenance"]
        self.n_pixels = transforms["grid"].n_pixels
        self.default_n_steps = int(self.config["model"]["default_n_steps"])
        self.denoiser = Denoiser(pixel_net, transforms, device)
        self._subarray = None
        self._thrown = None
        self._sampler = ThrownSampler.from_dict(self.training_meta["thrown"])

    @classmethod
    def from_file(cls, path, device="auto"):
        """Load a checkpoint (safetensors; raises ``CheckpointError`` for bad files).

        Parameters
        ----------
        path : str or pathlib.Path
        device : str
            ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        """
        device = _resolve_device(device)
        modules = load_generator_modules(path, device=device)
        return cls(*modules, device, path=str(path))

    def resolve_n_steps(self, n_steps=None):
        """DDIM steps to run: ``n_steps``, or the checkpoint's ``default_n_steps`` if None."""
        n_steps = self.default_n_steps if n_steps is None else int(n_steps)
        if n_steps < 1:
            raise ValueError(f"n_steps must be >= 1, got {n_steps}")
        return n_steps

    # -- descriptions ---------------------------------------------------------------------
    @property
    def thrown(self):
        """``ThrownDistribution`` of the training simulation (needs ctapipe/astropy)."""
        if self._thrown is None:
            from .thrown import ThrownDistribution

            self._thrown = ThrownDistribution.from_dict(self.training_meta["thrown"])
        return self._thrown

    @property
    def subarray(self):
        """``SubarrayDescription`` the model was trained for (decoded lazily, needs ctapipe)."""
        if self._subarray is None:
            from .instrument.description import subarray_from_dict

            data = self.training_meta.get("subarray")
            if not data:
                raise ValueError(f"{self.path}: the checkpoint holds no subarray description")
            self._subarray = subarray_from_dict(data)
        return self._subarray

    @property
    def selection(self):
        """The training selection, ``[[name, expression], ...]`` (not re-applied here)."""
        return self.training_meta.get("selection")

    @property
    def saturation(self):
        """Largest generated charge (p.e.)."""
        return self.transforms["image"].saturation

    # -- shower level --------------------------------------------------------------------
    def _check_conditions(self, conditions):
        conditions = np.ascontiguousarray(conditions, dtype=np.float64)
        if conditions.ndim != 2 or conditions.shape[1] != 5:
            raise ValueError(f"conditions must have shape (N, 5), got {conditions.shape}")
        if not np.isfinite(conditions).all():
            raise ValueError("conditions contain NaN or inf")
        return conditions

    def _features(self, conditions):
        return self.transforms["conditions"].features(conditions).to(self.device)

    def selection_probability(self, conditions):
        """``P(trigger and selected | shower)``, ``(N,)`` float64."""
        conditions = self._check_conditions(conditions)
        if len(conditions) == 0:
            return np.zeros(0)
        return self.shower_model.selection_probability(
            self._features(conditions), conditions[:, 0], self._sampler
        )

    def sample_selection(self, conditions, rng):
        """Selection decisions ``(N,)`` bool drawn with ``rng`` (a ``numpy.random.Generator``)."""
        p = self.selection_probability(conditions)
        return rng.uniform(size=len(p)) < p

    def sample_size(self, conditions, seeds):
        """Image sizes (sum of charge, p.e.) ``(N,)`` float64, one draw per event seed."""
        import torch

        conditions = self._check_conditions(conditions)
        uniform, normal, _ = _event_streams(seeds)
        if len(uniform) != len(conditions):
            raise ValueError(f"{len(seeds)} seeds for {len(conditions)} conditions")
        z = self.shower_model.sample_z(
            self._features(conditions), torch.as_tensor(uniform), torch.as_tensor(normal)
        )
        return self.transforms["conditions"].size_from_log(z.cpu().double()).numpy()

    # -- images ----------------------------------------------------------------------------
    def generate(self, conditions, seeds, n_steps=None, batch_size=256, size=None, eta=0.0):
        """Generate images and peak times.

        Parameters
        ----------
        conditions : array-like, shape (N, 5)
        seeds : array-like of int, shape (N,)
            Per-event seeds: event ``i`` depends only on ``seeds[i]`` and ``conditions[i]``.
        n_steps : int, optional
            DDIM steps (default: the checkpoint's ``default_n_steps``).
        batch_size : int
            Events per network call.
        size : array-like, optional
            Image sizes to use instead of sampling them.
        eta : float
            DDIM stochasticity (0: deterministic).

        Returns
        -------
        dict
            ``image`` (N, n_pixels) float32 p.e., ``peak_time`` (N, n_pixels) float32 ns
            (camera pixel order), ``size`` (N,) float64 p.e.
        """
        import torch

        from .model.samplers import event_generators
        from .model.transforms import decode_images

        conditions = self._check_conditions(conditions)
        seeds = np.asarray(seeds)
        n = len(conditions)
        if seeds.shape != (n,):
            raise ValueError(f"need one seed per event: {seeds.shape} seeds for {n} conditions")
        n_steps = self.resolve_n_steps(n_steps)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        _, _, image_seeds = _event_streams(seeds)
        if size is None:
            size = self.sample_size(conditions, seeds)
        else:
            size = np.asarray(size, dtype=np.float64)
            if size.shape != (n,) or not np.all(np.isfinite(size)) or np.any(size <= 0):
                raise ValueError("size must be (N,) positive finite values")
        image = np.empty((n, self.n_pixels), dtype=np.float32)
        peak_time = np.empty((n, self.n_pixels), dtype=np.float32)
        for start in range(0, n, int(batch_size)):
            sl = slice(start, min(start + int(batch_size), n))
            cond = self.denoiser.condition(conditions[sl], size[sl])
            with torch.inference_mode():
                x = self.denoiser.sample(cond, event_generators(image_seeds[sl]), n_steps, eta)
            image_sl, peak_time_sl = decode_images(self.transforms, x, size[sl])
            image[sl], peak_time[sl] = image_sl.numpy(), peak_time_sl.numpy()
        return {"image": image, "peak_time": peak_time, "size": size}

    def __repr__(self):
        n_par = sum(p.numel() for p in self.pixel_net.parameters())
        return (
            f"ShowerGenerator({self.path!r}, pixels={self.n_pixels}, "
            f"params={n_par}, device={self.device})"
        )
