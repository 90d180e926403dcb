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

The training selection (e.g. ``hillas_intensity >= 250`` after cleaning) decides which showers
have an image at all: ``P(selected | shower)`` (:meth:`ShowerGenerator.sample_selection`). The
image model is trained on selected images only, so a generated image is a draw from the model's
``p(image | shower, selected)``; an image that fails the selection when it is applied again is
a model error, not a rejected shower. :meth:`ShowerGenerator.generate` therefore takes an
optional ``accept`` callable (images, peak times -> bool mask; the ctapipe side,
:class:`~ctapipe_genshower.io.reselection.ImageReselection`, applies the training selection
exactly as training did) and redraws the failing events of the SAME showers, with a new size
and new image noise, up to ``max_redraws`` times: rejection sampling from the model's
distribution truncated to the selection region, which is what the training data are. The
selection efficiency stays that of ``P(selected | shower)``; an event still failing after
``max_redraws`` redraws is kept as one of its draws chosen in proportion to their acceptance
probabilities (the last draw for a bool ``accept``) and reported as not accepted.

Randomness: event seed ``s`` gives draw 0 from ``SeedSequence([s, 0x5E1EC7])`` and redraw
``k >= 1`` from ``SeedSequence([s, 0x5E1EC7], spawn_key=(2, k))`` (each spawning a size
stream and an image-noise stream), so a draw depends only on ``(s, k)`` and the event's
conditions, never on the batch or on the other events. Without ``accept`` (or with
``max_redraws=0``) the events are exactly draw 0.

Refined models (:mod:`.model.density_ratio`): ``accept`` may answer with acceptance
probabilities instead of a bool mask; a draw is kept when a uniform number from its own
fourth stream is below its probability (a bool mask is the case of probabilities 0 and 1).
An event that no draw passes ends as draw ``k`` with probability ``p_k / sum_j p_j``, a
weighted reservoir (Chao 1982) decided by the fourth stream's second number: as the
rejection sampler's target ``p(image) a(image)`` restricted to the event's draws. (Keeping
the draw of the highest probability instead kept the extremes of the refiner's ratio for the
showers the model makes worst: few events, 9 of the model card's 1794, but the most atypical
ones.)
Sizes are decided by the selection alone: while no draw of an event has passed it
(probability > 0), each redraw gets a new size (the selection's rejection sampling above);
once one has, the event keeps that size, and every later draw (rejected by the refiner, or
failing the selection) is new image noise at it. The refiner then chooses among images of
the size the shower-level model drew, and the sizes stay the shower-level model's. (A
refiner allowed to choose among sizes moved the mean size by +20-40 %; one whose redraws
got a new size whenever a redraw failed the selection, +50 % in the median: each of its
many redraws retried the selection, which large sizes pass; ``docs/refiner.md``.)
The ctapipe side's :class:`~ctapipe_genshower.io.reselection.ImageReselection` multiplies
the selection by the model's refiner (:attr:`ShowerGenerator.refiner`).
"""

import numpy as np

from .checkpoint import load_generator_modules
from .model import seed_streams
from .model.config import SOLVER_NAMES, ModelConfig

__all__ = ["ShowerGenerator"]


def _resolve_device(device):
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


#: Entropy word of the per-event streams (``SeedSequence([seed, _STREAM_TAG])``).
_STREAM_TAG = 0x5E1EC7
#: First spawn-key word of the redraw streams (draw 0 spawns its size and image streams
#: with the keys 0 and 1 from the same root).
_REDRAW_KEY = 2


def _event_streams(seeds, draw=0):
    """Per-event ``(size uniform, size normal, image seed, response seed, accept uniform,
    reservoir uniform)``.

    Draw 0 comes from ``SeedSequence([seed, 0x5E1EC7])``, redraw ``k >= 1`` from the same
    entropy with ``spawn_key=(2, k)``; each root spawns a size stream, an image stream, a
    pixel-response stream (the night-sky times' in models with them) and an acceptance
    stream (spawned children do not depend on how many are spawned, so each added stream
    left the earlier ones unchanged). The reservoir
    uniform is the acceptance stream's second number (its first is the acceptance uniform).
    """
    seeds = np.asarray(seeds)
    if seeds.ndim != 1 or not np.issubdtype(seeds.dtype, np.integer) or np.any(seeds < 0):
        raise ValueError("seeds must be a 1d array of non-negative integers")
    if draw < 0:
        raise ValueError(f"draw must be >= 0, got {draw}")
    root_key = () if draw == 0 else (_REDRAW_KEY, int(draw))
    # the children 0-3 of the root, made for all events at once (model.seed_streams)
    size_pool, image_pool, response_pool, accept_pool = (
        seed_streams.pools(seed_streams.entropy_words(seeds, _STREAM_TAG, (*root_key, child)))
        for child in range(4)
    )
    uniform = np.empty(len(seeds))
    normal = np.empty(len(seeds))
    for i, rng in enumerate(seed_streams.pcg64_generators(size_pool)):
        uniform[i], normal[i] = rng.uniform(), rng.standard_normal()
    image_seed = (seed_streams.generate_state(image_pool, 1)[:, 0] >> np.uint64(1)).astype(np.int64)
    response_seed = (seed_streams.generate_state(response_pool, 1)[:, 0] >> np.uint64(1)).astype(
        np.int64
    )
    accept = np.empty((len(seeds), 2))
    for i, rng in enumerate(seed_streams.pcg64_generators(accept_pool)):
        accept[i] = rng.uniform(size=2)
    accept_uniform, reservoir_uniform = accept.T
    return uniform, normal, image_seed, response_seed, accept_uniform, reservoir_uniform


def _decide(answer, uniforms):
    """``accept``'s answer (bool mask or probabilities) as kept draws, ``(n,)`` bool.

    A probability ``p`` keeps the draw when the draw's own uniform number is below it;
    True/False are ``p = 1`` / ``p = 0``. Anything else is one clear error.
    """
    n = len(uniforms)
    answer = np.asarray(answer)
    if answer.shape != (n,) or not (
        answer.dtype == bool or np.issubdtype(answer.dtype, np.floating)
    ):
        raise ValueError(
            f"accept must return a ({n},) bool or probability array,"
            f" got {answer.dtype} {answer.shape}"
        )
    if answer.dtype == bool:
        return answer.copy()
    if not np.all((answer >= 0) & (answer <= 1)):
        raise ValueError("accept's probabilities must lie in [0, 1]")
    return uniforms < answer


def _replaces_held_draw(kept, probability, total, uniform):
    """Whether draw ``k`` replaces an event's held draw: when kept, else with probability
    ``p_k / sum_{j<=k} p_j`` (``total``, this draw included), a weighted reservoir of one
    (Chao 1982): an event that no draw passes ends as draw ``k`` with probability
    ``p_k / sum_j p_j``. While no draw had ``p > 0``, the last one is held."""
    share = np.divide(probability, total, out=np.ones(len(total)), where=total > 0)
    return kept | (uniform < share)


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
    bf16 : bool, optional
        Run the pixel network under bf16 autocast (the sampler state stays float64);
        default: on CUDA, not on the CPU.
    channels_last : bool
        Run the pixel network in the channels-last memory format (default; the same
        arithmetic in another order, ~1.5x faster on the CPU).
    refiner : DensityRatio, optional
        The model's refiner (:mod:`.model.density_ratio`), applied by the ctapipe side's
        ``accept`` (:class:`~ctapipe_genshower.io.reselection.ImageReselection`).
    device_noise : bool, optional
        Draw the image noise on ``device`` from counter-based per-event streams
        (:class:`.model.noise.CounterStreams`) instead of one CPU generator per event;
        default: on CUDA (event-by-event CPU noise would cap a GPU at a few thousand
        images/s), not on the CPU. The same seed gives other images with and without it.
    compile : bool
        Run the pixel network through ``torch.compile`` (inductor): 2.6x the images/s of
        the plain network on an H200 in bf16 (``docs/sampling.md``); the first batch (and
        the first of another size) waits for the compilation. Slower than channels-last
        on the CPU, so off by default.
    """

    def __init__(
        self,
        pixel_net,
        shower_model,
        transforms,
        metadata,
        device,
        path=None,
        bf16=None,
        channels_last=True,
        refiner=None,
        device_noise=None,
        compile=False,
    ):
        from .model.denoiser import Denoiser
        from .model.shower_model import ThrownSampler

        self.pixel_net = pixel_net
        self.shower_model = shower_model
        self.transforms = transforms
        self.metadata = metadata
        self.device = device
        self.path = path
        self.refiner = refiner
        self.bf16 = device.type == "cuda" if bf16 is None else bool(bf16)
        self.device_noise = device.type == "cuda" if device_noise is None else bool(device_noise)
        self.config = metadata["config"]
        self.training_meta = metadata["training_meta"]
        self.domain = metadata["domain"]
        self.provenance = metadata["provenance"]
        self.n_pixels = transforms["grid"].n_pixels
        self.model_config = ModelConfig.from_dict(self.config["model"])
        self.default_n_steps = self.model_config.default_n_steps
        self.denoiser = Denoiser(pixel_net, transforms, device, channels_last=channels_last)
        self.channels_last = self.denoiser.channels_last
        self.compiled = bool(compile)
        if self.compiled:
            import torch

            self.denoiser.net = torch.compile(self.denoiser.net)
        self._subarray = None
        self._thrown = None
        self._sampler = ThrownSampler.from_dict(self.training_meta["thrown"])

    @classmethod
    def from_file(
        cls, path, device="auto", bf16=None, channels_last=True, device_noise=None, compile=False
    ):
        """Load a checkpoint (safetensors; raises ``CheckpointError`` for bad files).

        Parameters
        ----------
        path : str or pathlib.Path
        device : str
            ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        bf16 : bool, optional
            bf16 autocast of the pixel network (default: on CUDA).
        channels_last : bool
            Channels-last memory format of the pixel network (default: on).
        device_noise : bool, optional
            Counter-based noise streams drawn on the device (default: on CUDA).
        compile : bool
            ``torch.compile`` the pixel network (default: off).
        """
        device = _resolve_device(device)
        modules = load_generator_modules(path, device=device)
        return cls(
            modules.pixel_net,
            modules.shower_model,
            modules.transforms,
            modules.metadata,
            device,
            path=str(path),
            bf16=bf16,
            channels_last=channels_last,
            refiner=modules.refiner,
            device_noise=device_noise,
            compile=compile,
        )

    def resolve_eta(self, eta=None, solver="ddim"):
        """``(eta, eta_channels)`` a run samples with: the model's recorded
        ``default_eta`` and ``eta_channels`` when ``eta`` is None (for DDIM; other solvers
        are deterministic), else ``eta`` on all channels."""
        if eta is None:
            return self.model_config.sampler_eta if solver == "ddim" else (0.0, None)
        return eta, None

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
        """The training selection, ``[[name, expression], ...]`` (None or empty: none recorded).

        Applied to generated images by the ``accept`` callable of :meth:`generate`.
        """
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

    def sample_size(self, conditions, seeds, draw=0):
        """Image sizes (sum of charge, p.e.) ``(N,)`` float64, one per event seed.

        ``draw`` selects the event streams (0: the first draw, ``k``: the ``k``-th redraw).
        """
        conditions = self._check_conditions(conditions)
        uniform, normal, *_ = _event_streams(seeds, draw)
        if len(uniform) != len(conditions):
            raise ValueError(f"{len(seeds)} seeds for {len(conditions)} conditions")
        return self._size_from_streams(conditions, uniform, normal)

    def _size_from_streams(self, conditions, uniform, normal):
        import torch

        z = self.shower_model.sample_z(
            self._features(conditions), torch.as_tensor(uniform), torch.as_tensor(normal)
        )
        return self.transforms["conditions"].size_from_log(z.cpu().double()).numpy()

    def simulated_size(self, arrays):
        """The size the image network was trained with, of simulated events ``(N,)`` float64.

        ``arrays`` holds ``image`` (and ``true_image``) ``(N, n_pixels)`` p.e., e.g. a block
        of a training file: the sum of the DL1 image, or of the true image for models with
        a learned pixel response (their network makes the signal).
        """
        key = "true_image" if "response" in self.transforms else "image"
        if arrays.get(key) is None:
            raise ValueError(f"the model's size is the sum of {key!r}, which the arrays lack")
        return self.transforms["image"].size(arrays[key]).numpy()

    # -- images ----------------------------------------------------------------------------
    def generate(
        self,
        conditions,
        seeds,
        n_steps=None,
        batch_size=256,
        size=None,
        eta=None,
        accept=None,
        max_redraws=0,
        solver="ddim",
    ):
        """Generate images and peak times, redrawing events that ``accept`` rejects.

        Parameters
        ----------
        conditions : array-like, shape (N, 5)
        seeds : array-like of int, shape (N,)
            Per-event seeds: event ``i`` depends only on ``seeds[i]`` and ``conditions[i]``.
        n_steps : int, optional
            Sampler steps (default: the checkpoint's ``default_n_steps``).
        batch_size : int
            Events per network call.
        size : array-like, optional
            Image sizes to use instead of sampling them (kept by redraws, which then draw
            only new image noise).
        eta : float or sequence of float, optional
            DDIM stochasticity (0: deterministic), one number or one per step, on all
            channels; None: the model's own (:meth:`resolve_eta`).
        accept : callable, optional
            ``accept(images, peak_times, conditions) -> (M,) bool or float``, called with
            ``(M, n_pixels)`` float32 arrays and the ``(M, 5)`` conditions of the draws:
            True (or the probability) for keeping a draw, e.g. the training selection
            (times the refiner's acceptance). Events it rejects are drawn again (new image
            noise from the streams of ``(seed, k)`` for redraw ``k``, and a new size from
            them until a draw of the event has passed, i.e. had a positive probability;
            from then on the event keeps that size), only those, in batches.
        max_redraws : int
            Most redraws per event (0: ``accept`` is only evaluated). An event still
            rejected after them is kept as one of its draws, chosen with probability
            proportional to its acceptance probability (the last draw when ``accept``
            answers with bools, or when no draw had a positive probability).
        solver : str
            ``"ddim"``, ``"dpmpp-2m"`` or ``"heun"`` (see :mod:`.model.samplers`).

        Returns
        -------
        dict
            ``image`` (N, n_pixels) float32 p.e., ``peak_time`` (N, n_pixels) float32 ns
            (camera pixel order), ``size`` (N,) float64 p.e., ``n_draws`` (N,) int64 (1: the
            first draw was kept), ``accepted`` (N,) bool (``accept`` of the kept draw; None
            without ``accept``); models with a learned pixel response also give
            ``true_image`` (N, n_pixels) int32, the generated signal in whole p.e., and their
            ``size`` is the true p.e. sum the signal was drawn for.
        """
        conditions = self._check_conditions(conditions)
        seeds = np.asarray(seeds)
        n = len(conditions)
        if seeds.shape != (n,):
            raise ValueError(f"need one seed per event: {seeds.shape} seeds for {n} conditions")
        n_steps = self.resolve_n_steps(n_steps)
        if solver not in SOLVER_NAMES:
            raise ValueError(f"unknown solver {solver!r}, choose from {', '.join(SOLVER_NAMES)}")
        eta, eta_channels = self.resolve_eta(eta, solver)
        self.model_config.check_sampling(solver, n_steps, eta, eta_channels)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if max_redraws < 0:
            raise ValueError(f"max_redraws must be >= 0, got {max_redraws}")
        if size is not None:
            size = np.asarray(size, dtype=np.float64)
            if size.shape != (n,) or not np.all(np.isfinite(size)) or np.any(size <= 0):
                raise ValueError("size must be (N,) positive finite values")

        sampling = (n_steps, eta, solver, eta_channels)
        out = self._draw(conditions, seeds, 0, sampling, int(batch_size), size)
        uniforms = out.pop("accept_uniform")
        out.pop("reservoir_uniform")  # draw 0 is held whatever its probability
        out["n_draws"] = np.ones(n, dtype=np.int64)
        out["accepted"] = None
        if accept is None:
            return out
        accepted, total = self._accept(accept, out, conditions, uniforms)
        last_size = out["size"].copy()
        for draw in range(1, int(max_redraws) + 1):
            redo = np.flatnonzero(~accepted)
            if len(redo) == 0:
                break
            redo_size = last_size[redo]
            if size is None:
                # a new size (NaN: drawn by _draw) only while no draw of the event has passed:
                # a size that passed once is the event's for good. Redrawing it whenever a
                # later draw fails would let each of the refiner's many redraws retry the
                # selection and drift the sizes up (+50 % in the median, docs/refiner.md)
                redo_size[total[redo] <= 0] = np.nan
            again = self._draw(
                conditions[redo], seeds[redo], draw, sampling, int(batch_size), redo_size
            )
            uniforms = again.pop("accept_uniform")
            reservoir = again.pop("reservoir_uniform")
            kept, probability = self._accept(accept, again, conditions[redo], uniforms)
            last_size[redo] = again["size"]
            total[redo] += probability
            take = _replaces_held_draw(kept, probability, total[redo], reservoir)
            for key in ("image", "peak_time", "size", "true_image"):
                if key in out:
                    out[key][redo[take]] = again[key][take]
            out["n_draws"][redo] += 1
            accepted[redo] = kept
        out["accepted"] = accepted
        return out

    @staticmethod
    def _accept(accept, drawn, conditions, uniforms):
        """Which drawn events are kept (``accept``'s answer, decided with each draw's own
        uniform) and their acceptance probabilities (``(kept, probability)``)."""
        answer = accept(drawn["image"], drawn["peak_time"], conditions)
        kept = _decide(answer, uniforms)
        return kept, np.asarray(answer, dtype=np.float64)

    def _draw(self, conditions, seeds, draw, sampling, batch_size, size):
        """Draw ``draw`` of each event: sizes (where ``size`` is None or NaN), images, peak
        times.

        ``sampling`` is ``(n_steps, eta, solver, eta_channels)``."""
        import torch

        from .model.noise import CounterStreams
        from .model.samplers import event_generators
        from .model.transforms import decode_images

        n_steps, eta, solver, eta_channels = sampling
        n = len(conditions)
        uniform, normal, image_seeds, response_seeds, accept_uniform, reservoir_uniform = (
            _event_streams(seeds, draw)
        )
        response = self.transforms.get("response")
        night_sky = self.transforms.get("night_sky")
        if response is not None:
            true_image = np.empty((n, self.n_pixels), dtype=np.int32)
        size = np.full(n, np.nan) if size is None else np.array(size, dtype=np.float64)
        missing = np.isnan(size)
        if missing.any():  # the streams of this draw, as sample_size(conditions, seeds, draw)
            size[missing] = self._size_from_streams(
                conditions[missing], uniform[missing], normal[missing]
            )
        image = np.empty((n, self.n_pixels), dtype=np.float32)
        peak_time = np.empty((n, self.n_pixels), dtype=np.float32)
        for start in range(0, n, batch_size):
            sl = slice(start, min(start + batch_size, n))
            cond = self.denoiser.condition(conditions[sl], size[sl])
            with (
                torch.inference_mode(),
                torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16),
            ):
                streams = (
                    CounterStreams(image_seeds[sl], self.device)
                    if self.device_noise
                    else event_generators(image_seeds[sl])
                )
                x = self.denoiser.sample(cond, streams, n_steps, eta, solver, eta_channels)
            image_sl, peak_time_sl = decode_images(self.transforms, x, size[sl])
            image[sl], peak_time[sl] = image_sl.numpy(), peak_time_sl.numpy()
            if response is not None or night_sky is not None:
                rngs = [np.random.default_rng(int(s)) for s in response_seeds[sl]]
            if response is not None:  # the network made the signal: now the camera's response
                true_image[sl] = np.rint(np.clip(image[sl], 0, None))
                image[sl], peak_time[sl] = response.apply(true_image[sl], peak_time[sl], rngs)
            elif night_sky is not None:  # the network left these pixels' times to the table
                peak_time[sl] = night_sky.apply(image[sl], peak_time[sl], rngs)
        out = {"image": image, "peak_time": peak_time, "size": size}
        # for generate's decisions, not returned
        out["accept_uniform"], out["reservoir_uniform"] = accept_uniform, reservoir_uniform
        if response is not None:
            np.minimum(image, self.saturation, out=image)
            out["true_image"] = true_image
        return out

    def __repr__(self):
        n_par = sum(p.numel() for p in self.pixel_net.parameters())
        return (
            f"ShowerGenerator({self.path!r}, pixels={self.n_pixels}, "
            f"params={n_par}, device={self.device}, bf16={self.bf16},"
            f" channels_last={self.channels_last})"
        )
