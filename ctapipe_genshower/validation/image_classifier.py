"""Low-level classifier two-sample test: a small CNN on the camera images (torch, lazily).

The images are mapped to ctapipe's square grid
(:class:`~ctapipe_genshower.instrument.CameraGridMapping`); channel 0 is the image
normalised by its sum (the shape, not the size, which the parameter classifier sees),
channel 1 (if given) the peak time minus the image's intensity-weighted mean time, both
standardised over the training events. Stratified folds (5 by default) each train a fresh
network and score their held-out events, so every event is scored once out of fold; the
ROC AUC of all of them comes with its Hanley-McNeil error and the spread of the per-fold
AUCs. (Until 2026-12-05 one 70/30 split: at ~350 events per class its AUC moved by 0.2
with the seed, and by 0.05 at ~1800; ``docs/validation.md``.)
"""

import numpy as np

from .metrics import auc_standard_error

__all__ = [
    "LOW_LEVEL_EPOCHS",
    "LOW_LEVEL_FOLDS",
    "image_classifier_two_sample_test",
    "images_to_grid",
]

#: Training epochs of the CNN (few: the test should stay a smoke alarm of minutes).
LOW_LEVEL_EPOCHS = 8
#: Stratified folds of the CNN test (one network trained per fold).
LOW_LEVEL_FOLDS = 5


def images_to_grid(geometry, images, peak_times=None):
    """``(n, n_pixels)`` images (and peak times) -> ``(n, channels, height, width)`` float32.

    The peak time channel is the time relative to the image's intensity-weighted mean
    time (clipped positive weights); empty grid cells are 0.
    """
    from ..instrument import CameraGridMapping

    mapping = CameraGridMapping.from_geometry(geometry)
    images = np.asarray(images, dtype=np.float32)
    channels = [mapping.to_grid(images)]
    if peak_times is not None:
        t = np.asarray(peak_times, dtype=np.float32)
        w = np.clip(images, 0, None)
        norm = np.where(w.sum(axis=1) > 0, w.sum(axis=1), 1.0)
        t = t - (np.sum(w * t, axis=1) / norm)[:, np.newaxis]
        channels.append(mapping.to_grid(t.astype(np.float32)))
    return np.stack(channels, axis=1)


def _network(n_channels):
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(n_channels, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 1),
    )


def image_classifier_two_sample_test(
    generated,
    reference,
    seed=0,
    n_folds=LOW_LEVEL_FOLDS,
    epochs=LOW_LEVEL_EPOCHS,
    batch_size=128,
    max_per_class=5000,
    min_per_class=20,
    n_threads=None,
):
    """Out-of-fold ROC AUC of a small CNN separating generated from reference images.

    Parameters
    ----------
    generated, reference : numpy.ndarray
        ``(n, channels, height, width)`` grids (:func:`images_to_grid`).
    seed : int
        Seeds the subsample, the folds, the initial weights and the batch order.
    n_folds : int
        Stratified folds: each trains a network on the others and scores its own events.
    epochs, batch_size : int
    max_per_class : int
        At most this many events per class.
    min_per_class : int
        Fewer events in a class -> ``auc`` None.
    n_threads : int or None
        torch CPU threads during the test (None: torch's default).

    Returns
    -------
    dict
        ``auc`` (all events, each scored out of fold), ``auc_error`` (Hanley-McNeil with
        ``n_per_class``), ``auc_fold_std`` (spread of the per-fold AUCs), ``n_per_class``,
        ``n_folds``, ``epochs``.
    """
    import torch
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    n = min(len(generated), len(reference), max_per_class)
    result = {"n_per_class": int(n), "n_folds": int(n_folds), "epochs": epochs}
    if n < max(min_per_class, n_folds) or n_folds < 2:
        return {"auc": None, "auc_error": None, "auc_fold_std": None, **result}
    gen = np.asarray(generated, dtype=np.float32)[rng.choice(len(generated), n, replace=False)]
    ref = np.asarray(reference, dtype=np.float32)[rng.choice(len(reference), n, replace=False)]
    x = np.concatenate([gen, ref])
    x[~np.isfinite(x)] = 0.0
    y = np.concatenate([np.ones(n), np.zeros(n)]).astype(np.float32)
    # stratified folds: the same number of events of each class in every fold
    fold_of = np.tile(rng.permutation(n) % n_folds, 2)
    score = np.empty(2 * n, dtype=np.float64)
    fold_auc = []
    old_threads = torch.get_num_threads()
    if n_threads:
        torch.set_num_threads(n_threads)
    try:
        for fold in range(n_folds):
            is_test = fold_of == fold
            score[is_test] = _fit_and_score(x, y, is_test, seed + fold, epochs, batch_size)
            fold_auc.append(roc_auc_score(y[is_test], score[is_test]))
    finally:
        torch.set_num_threads(old_threads)
    auc = float(roc_auc_score(y, score))
    return {
        "auc": auc,
        "auc_error": auc_standard_error(auc, n, n),
        "auc_fold_std": float(np.std(fold_auc)),
        **result,
    }


def _fit_and_score(x, y, is_test, seed, epochs, batch_size):
    """Train a fresh network on the events not in ``is_test`` and score those that are."""
    import torch

    # standardise each channel on the non-empty cells of the training events
    x = x.copy()
    train_x = x[~is_test]
    for c in range(x.shape[1]):
        values = train_x[:, c][train_x[:, c] != 0]
        scale = float(np.std(values)) if len(values) else 1.0
        x[:, c] /= scale if scale > 0 else 1.0
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = _network(x.shape[1])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    xt = torch.from_numpy(x[~is_test])
    yt = torch.from_numpy(y[~is_test])
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=generator)
        for start in range(0, len(xt), batch_size):
            batch = order[start : start + batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(xt[batch]).squeeze(1), yt[batch])
            loss.backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        xs = torch.from_numpy(x[is_test])
        return torch.cat(
            [model(xs[i : i + 1024]).squeeze(1) for i in range(0, len(xs), 1024)]
        ).numpy()
