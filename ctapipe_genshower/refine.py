"""Refining a model: fit its refiner on the training images and the model's own images.

:func:`refine_model` takes ``n_events`` selected images of a prepared training file (the
simulation), generates an image for each of their showers **with the simulated image's
size** as the ``DiffusionEventSource`` makes images (the training selection applied again,
failing draws redrawn with the same size), parameterises both with ctapipe as the selection
does (:class:`~ctapipe_genshower.io.reselection.ImageReselection`), fits the density-ratio
classifier (:func:`~ctapipe_genshower.training.density_ratio.fit_density_ratio`) and writes
the model with its refiner (:func:`~ctapipe_genshower.checkpoint.save_refined`). Both samples
have the same showers and the same sizes, so the classifier learns the ratio of the image
distributions given the shower and the size: what the generator's rejection step needs, which
chooses among draws of the size the shower-level model drew. (Fitted on draws of free size,
the ratio also ranks sizes; held at one size it misranks images, ``docs/refiner.md``.)

Generating the pairs is nearly all of the cost (~30 min for 69,000 pairs on 2 CPU cores; the
classifier's fit ~1 min). A *pairs file* (``refine_model(pairs=...)``,
``ctapipe-genshower-refine --pairs``) keeps them: the feature rows of every refiner feature
(:data:`PAIRS_FEATURES`) as safetensors, with what they were made from, so a refit with other
classifier settings or features reads them instead of generating them again. Pairs are kept
per training file, so a fit on more simulation (a new run added to the files of an earlier
fit) generates only the new file's pairs.
"""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .atomic import atomic_output
from .checkpoint import CheckpointError, file_sha256, read_header, save_refined
from .data.training_file import TrainingFile
from .generator import ShowerGenerator
from .io.reselection import ImageReselection
from .model.config import jsonable_eta
from .model.density_ratio import (
    REFINER_FEATURES,
    TIME_RESIDUAL_FEATURE,
    feature_spec,
    refiner_features,
)
from .training.density_ratio import calibrate_marginals, fit_density_ratio

__all__ = [
    "PAIRS_FEATURES",
    "pair_columns",
    "paired_features",
    "read_pairs",
    "refine_model",
    "write_pairs",
]

#: ``format`` of a pairs file.
PAIRS_FORMAT = "ctapipe-genshower-refiner-pairs"
#: The features a pairs file holds: every refiner feature, so any of their subsets is fitted
#: from it.
PAIRS_FEATURES = (*REFINER_FEATURES, TIME_RESIDUAL_FEATURE)

#: Events per generation and parameterisation chunk (bounds the memory, moves the bar).
CHUNK = 1024


def _columns(table, features):
    return {name: table[name] for name, _ in features}


def paired_features(
    generator,
    training_file,
    n_events,
    *,
    seed=0,
    max_redraws=10,
    n_steps=None,
    solver="ddim",
    batch_size=64,
    draws_per_image=1,
    features=REFINER_FEATURES,
    progress=True,
    stream=0,
):
    """Refiner features of simulated images and of the model's images of the same showers.

    Each generated image is drawn with the size of its simulated image
    (:meth:`~ctapipe_genshower.generator.ShowerGenerator.simulated_size`), so both samples
    share showers and sizes.

    Parameters
    ----------
    generator : ShowerGenerator
    training_file : path-like
        A prepared training file (``ctapipe-genshower-train --prepare-only``) of the model's
        simulation; ideally the model's own training data.
    n_events : int or None
        Simulated images drawn from it (without replacement, seeded); None: all of them.
    seed : int
        The choice of images and the seeds of the generated events.
    max_redraws, n_steps, solver, batch_size :
        Generation as in the ``DiffusionEventSource``.
    draws_per_image : int
        Generated images per simulated image (each with its own seed): where simulated
        images are the scarce part (a sim_telarray production), more generated ones still
        sharpen the ratio's estimate of the model's side. The classifier weighs both samples
        equally whatever their sizes.
    stream : int
        Which random streams of ``seed`` choose the images and seed the events: 0 for the
        first (or only) training file of a fit, ``k`` for its ``k``-th further file, so that
        the files' events never share noise.

    Returns
    -------
    simulated, generated : numpy.ndarray
        Feature rows of the images that pass the training selection.
    stats : dict
        Events read, generated, passing; mean draws per generated event.
    """
    tf = TrainingFile(training_file)
    if tf.n_pixels != generator.n_pixels:
        raise ValueError(
            f"{training_file}: images of {tf.n_pixels} pixels, the model makes {generator.n_pixels}"
        )
    if not generator.selection:
        raise ValueError(
            f"{generator.path} records no training selection: a refiner is fitted to selected"
            " images and applied after the selection"
        )
    n_events = len(tf) if n_events is None else int(min(n_events, len(tf)))
    if n_events < 40:
        raise ValueError(f"need at least 40 training images, {training_file} has {len(tf)}")
    if draws_per_image < 1:
        raise ValueError(f"draws_per_image must be at least 1, got {draws_per_image}")
    if stream < 0:
        raise ValueError(f"stream must be >= 0, got {stream}")
    # stream 0 keeps the streams of the single-file fits (and their pairs files)
    rng = np.random.default_rng(seed if stream == 0 else [seed, 2, stream])
    chosen = np.sort(rng.choice(len(tf), size=n_events, replace=False))
    event_seeds = rng.integers(0, 2**62, size=n_events)
    # the first draw of each image keeps the seeds of a single-draw fit (same images)
    more_seeds = np.random.default_rng([seed, 1] if stream == 0 else [seed, 1, stream]).integers(
        0, 2**62, size=(n_events, draws_per_image - 1)
    )
    tel_id = generator.training_meta["tel_ids"][0]
    selection = ImageReselection(generator.subarray, tel_id, generator.selection)

    simulated, generated = [], []
    stats = {
        "n_read": n_events,
        "draws_per_image": int(draws_per_image),
        "n_simulated_selected": 0,
        "n_generated_selected": 0,
        "draws": 0,
    }
    bar = tqdm(total=n_events, desc="images", unit="ev", disable=not progress)
    for start in range(0, n_events, CHUNK):
        sl = slice(start, start + CHUNK)
        arrays = tf.take(chosen[sl])
        conditions = np.asarray(arrays["conditions"], dtype=np.float64)
        n_read = len(conditions)
        table, finite = selection.parameters(arrays["image"], arrays["peak_time"])
        passed = np.asarray(selection.query.get_table_mask(table), bool) & finite
        simulated.append(
            refiner_features(_columns(table[passed], features), conditions[passed], features)
        )

        # the model's images of the same showers AND sizes (kept by the selection's redraws)
        seeds = np.concatenate([event_seeds[sl][:, None], more_seeds[sl]], axis=1)[passed]
        conditions = np.repeat(conditions[passed], draws_per_image, axis=0)
        out = generator.generate(
            conditions,
            seeds.ravel(),
            n_steps=n_steps,
            solver=solver,
            batch_size=batch_size,
            size=np.repeat(generator.simulated_size(arrays)[passed], draws_per_image),
            accept=selection,
            max_redraws=max_redraws,
        )
        table, _ = selection.parameters(out["image"], out["peak_time"])
        kept = out["accepted"]
        generated.append(
            refiner_features(_columns(table[kept], features), conditions[kept], features)
        )
        stats["n_simulated_selected"] += int(passed.sum())
        stats["n_generated_selected"] += int(kept.sum())
        stats["draws"] += int(out["n_draws"].sum())
        bar.update(n_read)
    bar.close()
    n_generated = stats["n_simulated_selected"] * draws_per_image
    stats["draws_per_event"] = stats.pop("draws") / max(n_generated, 1)
    return np.concatenate(simulated), np.concatenate(generated), stats


def write_pairs(path, simulated, generated, stats, made_from):
    """Write image pairs (:data:`PAIRS_FEATURES` rows) to a safetensors file, atomically.

    ``made_from`` (JSON-able) says what they were made from; :func:`read_pairs` compares it.
    """
    from safetensors.numpy import save_file

    tensors = {
        "simulated": np.ascontiguousarray(simulated, dtype=np.float64),
        "generated": np.ascontiguousarray(generated, dtype=np.float64),
    }
    metadata = {
        "format": PAIRS_FORMAT,
        "features": json.dumps([list(f) for f in PAIRS_FEATURES]),
        "made_from": json.dumps(made_from, sort_keys=True),
        "stats": json.dumps(stats),
    }
    with atomic_output(path) as tmp:
        save_file(tensors, tmp, metadata=metadata)


def read_pairs(path, made_from):
    """The pairs of :func:`write_pairs`: ``simulated, generated, stats``.

    Raises ``ValueError`` (one line) for a file that is not a pairs file, holds other
    features, or was made from something else than ``made_from`` (naming what differs).
    """
    from safetensors.numpy import load_file

    try:
        meta = read_header(path).get("__metadata__") or {}
    except CheckpointError as err:
        raise ValueError(f"pairs file {err}") from None
    if meta.get("format") != PAIRS_FORMAT:
        raise ValueError(f"{path} is not a refiner pairs file (format {meta.get('format')!r})")
    if feature_spec(json.loads(meta["features"])) != PAIRS_FEATURES:
        raise ValueError(f"{path} holds other features than this version's refiner pairs")
    recorded = json.loads(meta["made_from"])
    differ = sorted(
        k for k in set(recorded) | set(made_from) if recorded.get(k) != made_from.get(k)
    )
    if differ:
        raise ValueError(
            f"{path} was made with other {', '.join(differ)} (delete it or give another"
            " pairs file to make new pairs)"
        )
    tensors = load_file(path)
    return tensors["simulated"], tensors["generated"], json.loads(meta["stats"])


def _as_paths(value):
    """One path or a sequence of them, as a list."""
    if isinstance(value, (str, Path)):
        return [value]
    return list(value)


def _file_pairs(generator, training_file, n_events, features, options, *, stream, pairs, made_from):
    """The pairs of one training file: read from ``pairs`` when it exists (made from the same
    inputs), else made (and written to ``pairs`` when given)."""
    if pairs is None:
        return paired_features(
            generator, training_file, n_events, features=features, stream=stream, **options
        )
    if stream:  # the first file's pairs are a single-file fit's (the files stay valid)
        made_from = {**made_from, "stream": int(stream)}
    if Path(pairs).exists():
        simulated, generated, stats = read_pairs(pairs, made_from)
    else:
        simulated, generated, stats = paired_features(
            generator, training_file, n_events, features=PAIRS_FEATURES, stream=stream, **options
        )
        write_pairs(pairs, simulated, generated, stats, made_from)
    columns = pair_columns(features)
    return simulated[:, columns], generated[:, columns], stats


def _merged_stats(parts):
    """The statistics of :func:`paired_features` of several files as of one sample."""
    if len(parts) == 1:
        return parts[0]
    merged = {
        key: sum(part[key] for part in parts)
        for key in ("n_read", "n_simulated_selected", "n_generated_selected")
    }
    merged["draws_per_image"] = parts[0]["draws_per_image"]
    events = [part["n_simulated_selected"] * part["draws_per_image"] for part in parts]
    merged["draws_per_event"] = sum(
        part["draws_per_event"] * n for part, n in zip(parts, events, strict=True)
    ) / max(sum(events), 1)
    merged["files"] = parts
    return merged


def pair_columns(features):
    """Columns of a pairs file's rows that make a refiner's feature rows.

    Parameters
    ----------
    features : sequence of (str, str)
        A refiner's features (``DensityRatio.features``).

    Returns
    -------
    list of int
        Indices into rows of :data:`PAIRS_FEATURES` plus the five conditions (the arrays
        ``simulated`` and ``generated`` of :func:`read_pairs`), conditions last.

    Raises
    ------
    ValueError
        If a feature is not among :data:`PAIRS_FEATURES`.
    """
    features = feature_spec(features)
    missing = [f for f in features if f not in PAIRS_FEATURES]
    if missing:
        raise ValueError(f"a pairs file cannot give the refiner features {missing}")
    n = len(PAIRS_FEATURES)
    return [PAIRS_FEATURES.index(f) for f in features] + list(range(n, n + 5))


def _fit_classifier(simulated, generated, features, seed, fit_options, progress):
    options = {"seed": seed, **(fit_options or {})}
    epochs = options.get("epochs", 60) * options.get("members", 1)
    bar = tqdm(total=epochs, desc="refiner", unit="epoch", disable=not progress)

    def report(epoch, train_loss, validation_loss):
        bar.set_postfix(train=f"{train_loss:.4f}", validation=f"{validation_loss:.4f}")
        bar.update(1)

    refiner = fit_density_ratio(
        simulated, generated, features=tuple(features), progress=report, **options
    )
    bar.close()
    refiner.info["fit_options"] = {k: v for k, v in options.items() if k != "seed"}
    return refiner


def refine_model(
    model,
    training_file,
    output,
    *,
    n_events=None,
    seed=0,
    max_redraws=10,
    n_steps=None,
    solver="ddim",
    batch_size=64,
    draws_per_image=1,
    fit_options=None,
    keep_classifier=False,
    device="cpu",
    progress=True,
    eta=None,
    eta_channels=None,
    features=REFINER_FEATURES,
    pairs=None,
    bf16=False,
    fit_seed=None,
):
    """Fit a refiner for ``model`` and write the refined model to ``output``.

    Parameters
    ----------
    model : path-like
        A model file (a refiner it already has is replaced: the model's own images are made
        without it).
    training_file : path-like or sequence of path-like
        Prepared training file(s) of the simulation (see :func:`paired_features`). Several
        files are paired each with its own random streams (``stream`` ``k`` for the
        ``k``-th) and fitted as one sample.
    output : path-like
        The refined model file (written atomically).
    n_events, seed, max_redraws, n_steps, solver, batch_size, draws_per_image :
        See :func:`paired_features` (``n_events``: from each training file).
    fit_options : dict, optional
        Keyword arguments of :func:`~ctapipe_genshower.training.density_ratio.fit_density_ratio`
        (``marginal_calibration=True`` adds the marginal calibration, fitted on the
        classifier's held-out pairs; ``marginal_parameters`` names the parameters it
        corrects, default all).
    keep_classifier : bool
        Keep the model's refiner classifier and fit only its marginal calibration
        (:func:`~ctapipe_genshower.training.density_ratio.calibrate_marginals`) on the new
        pairs, at ``fit_options["cap_quantile"]`` (default: the refiner's cap), of
        ``fit_options["marginal_parameters"]`` (default: all). The training
        file's showers must be others than the classifier's: its ratio is over-confident on
        new images of the showers it was fitted on, since the conditions are its inputs.
    device : str
    eta, eta_channels : sequence, optional
        A per-step DDIM ``eta`` (and the channels it adds noise to; None: all) to sample the
        model with: recorded in the output as its default sampler (``default_eta``,
        ``eta_channels`` of its config), and the refiner is fitted on its images. None: the
        model's own sampler.
    features : sequence of (str, str)
        The classifier's features (ignored with ``keep_classifier``: the model's).
    pairs : path-like or sequence of path-like, optional
        A pairs file per training file: read when it exists (it must have been made from the
        same model, training file, images, seed, sampling and stream), else the pairs are made
        and written to it. Adding a training file to a fit then costs only its own pairs.
    bf16 : bool
        Make the generated images under bf16 autocast (faster on CPUs with bf16 instructions;
        the images differ from float32 ones by rounding): for a model that will generate with
        ``--bf16``. Recorded in the pairs and in the refiner's sampling.
    fit_seed : int, optional
        Seed of the classifier's fit: its split into fit and held-out images (and with it
        the marginal calibration's images), initial weights and batch order. None:
        ``seed``. Another fit seed refits the same pairs (a pairs file is still read).
        Recorded in the refiner's ``info["fit_seed"]``.

    Returns
    -------
    DensityRatio
        The refiner written (its ``info`` holds the fit's statistics and the sampling it
        was fitted for).
    """
    generator = ShowerGenerator.from_file(model, device=device, bf16=bool(bf16))
    if keep_classifier and generator.refiner is None:
        raise ValueError(f"{model} has no refiner whose classifier could be kept")
    fitted_bf16 = bool(generator.refiner and generator.refiner.info.get("sampling", {}).get("bf16"))
    if keep_classifier and fitted_bf16 != bool(bf16):
        # the calibration corrects the kept images of the classifier's own generator settings
        raise ValueError(
            f"{model}'s refiner classifier was fitted on {'bf16' if fitted_bf16 else 'float32'}"
            f" images: keep it {'with' if fitted_bf16 else 'without'} --bf16"
        )
    if eta is not None:  # the sampler the refined model will generate with by default
        generator.model_config = replace(
            generator.model_config,
            default_eta=tuple(eta),
            eta_channels=tuple(eta_channels or ()),
        )
    if keep_classifier:
        features = generator.refiner.features
    n_steps = generator.resolve_n_steps(n_steps)
    sampler_eta, sampler_channels = generator.resolve_eta(None, solver)
    generator.model_config.check_sampling(solver, n_steps, sampler_eta, sampler_channels)
    options = dict(
        seed=seed,
        max_redraws=max_redraws,
        n_steps=n_steps,
        solver=solver,
        batch_size=batch_size,
        draws_per_image=draws_per_image,
        progress=progress,
    )
    training_files = _as_paths(training_file)
    pairs_files = [None] * len(training_files) if pairs is None else _as_paths(pairs)
    if len(pairs_files) != len(training_files):
        raise ValueError(
            f"{len(pairs_files)} pairs files for {len(training_files)} training files (one each)"
        )
    hashes = [file_sha256(path) for path in training_files]
    if len(set(hashes)) < len(hashes):
        raise ValueError("the same training file is given twice (its images would be paired twice)")
    made_from = {
        "model_sha256": file_sha256(model),
        "n_events": n_events,
        "seed": int(seed),
        "max_redraws": int(max_redraws),
        "n_steps": int(n_steps),
        "solver": solver,
        "eta": jsonable_eta(sampler_eta),
        "eta_channels": None if sampler_channels is None else list(sampler_channels),
        "draws_per_image": int(draws_per_image),
    }  # the batch size changes the images only by float32 rounding
    if bf16:  # recorded only when set, so float32 pairs files of earlier versions still match
        made_from["bf16"] = True
    parts = [
        _file_pairs(
            generator,
            path,
            n_events,
            features,
            options,
            stream=k,
            pairs=pairs_file,
            made_from={**made_from, "training_file_sha256": sha256},
        )
        for k, (path, pairs_file, sha256) in enumerate(
            zip(training_files, pairs_files, hashes, strict=True)
        )
    ]
    simulated = np.concatenate([part[0] for part in parts])
    generated = np.concatenate([part[1] for part in parts])
    stats = _merged_stats([part[2] for part in parts])
    if keep_classifier:
        # raked with global weights: raking per shower on a few draws of each (a study,
        # removed since) made the kept images far worse in generation
        # (runs/2026-12-05_per_shower_calibration/)
        options = fit_options or {}
        refiner = calibrate_marginals(
            generator.refiner,
            simulated,
            generated,
            options.get("cap_quantile"),
            parameters=options.get("marginal_parameters"),
        )
        refiner.info.update({"calibration_samples": stats, "calibration_seed": int(seed)})
    else:
        fit_seed = seed if fit_seed is None else fit_seed
        refiner = _fit_classifier(simulated, generated, features, fit_seed, fit_options, progress)
        refiner.info.update(
            {
                "fit_seed": int(fit_seed),
                "sampling": {
                    "solver": solver,
                    "n_steps": int(n_steps),
                    "eta": jsonable_eta(sampler_eta),
                    "eta_channels": None if sampler_channels is None else list(sampler_channels),
                    "max_redraws": max_redraws,
                    **({"bf16": True} if bf16 else {}),
                },
                "sizes": "simulated",  # generated sample drawn with the simulated images' sizes
                "samples": stats,
            }
        )
    save_refined(
        model,
        output,
        refiner,
        provenance={
            "training_file": str(training_files[0])
            if len(training_files) == 1
            else [str(path) for path in training_files],
            "n_events": stats["n_read"],
        },
        model_config=None if eta is None else generator.model_config,
    )
    return refiner
