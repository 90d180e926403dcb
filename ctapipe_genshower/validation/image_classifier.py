"""Low-level classifier two-sample test: a small CNN on the camera images (torch, lazily).

The images are mapped to ctapipe's square grid
(:class:`~ctapipe_genshower.instrument.CameraGridMapping`); channel 0 is the image
normalised by its sum (the shape, not the size, which the parameter classifier sees),
channel 1 (if given) the peak time minus the image's intensity-weighted mean time, both
standardised over the training set. A seeded held-out split (70/30 by default) scores the
test events; the ROC AUC comes with its Hanley-McNeil error.
"""

import numpy as np

from .metrics import auc_standard_error

__all__ = ["LOW_LEVEL_EPOCHS", "image_classifier_two_sample_test", "images_to_grid"]

#: Training epochs of the CNN (few: the test should stay a smoke alarm of minutes).
LOW_LEVEL_EPOCHS = 8


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
    test_fraction=0.3,
    epochs=LOW_LEVEL_EPOCHS,
    batch_size=128,
    max_per_class=5000,
    min_per_class=20,
    n_threads=None,
):
    """Held-out ROC AUC of a small CNN separating generated from reference images.

    Parameters
    ----------
    generated, reference : numpy.ndarray
        ``(n, channels, height, width)`` grids (:func:`images_to_grid`).
    seed : int
        Seeds the subsample, the split, the initial weights and the batch order.
    test_fraction : float
        Fraction of the (balanced) events held out for the AUC.
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
        ``auc`` (held-out events), ``auc_error`` (Hanley-McNeil with ``n_test_per_class``),
        ``n_per_class`` (train + test), ``n_test_per_class``, ``epochs``.
    """
    import torch
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    n = min(len(generated), len(reference), max_per_class)
    n_test = round(n * test_fraction)
    result = {"n_per_class": int(n), "n_test_per_class": n_test, "epochs": epochs}
    if n < min_per_class or n_test < 1 or n - n_test < 1:
        return {"auc": None, "auc_error": None, **result}
    gen = np.asarray(generated, dtype=np.float32)[rng.choice(len(generated), n, replace=False)]
    ref = np.asarray(reference, dtype=np.float32)[rng.choice(len(reference), n, replace=False)]
    x = np.concatenate([gen, ref])
    x[~np.isfinite(x)] = 0.0
    y = np.concatenate([np.ones(n), np.zeros(n)]).astype(np.float32)
    # stratified split: the same events of each class held out
    test_rows = rng.permutation(n)[:n_test]
    is_test = np.zeros(2 * n, dtype=bool)
    is_test[test_rows] = True
    is_test[n + test_rows] = True
    # standardise each channel on the non-empty cells of the training set
    train_x = x[~is_test]
    for c in range(x.shape[1]):
        values = train_x[:, c][train_x[:, c] != 0]
        scale = float(np.std(values)) if len(values) else 1.0
        x[:, c] /= scale if scale > 0 else 1.0

    old_threads = torch.get_num_threads()
    if n_threads:
        torch.set_num_threads(n_threads)
    try:
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
            score = torch.cat(
                [model(xs[i : i + 1024]).squeeze(1) for i in range(0, len(xs), 1024)]
            ).numpy()
    finally:
        torch.set_num_threads(old_threads)
    auc = float(roc_auc_score(y[is_test], score))
    return {"auc": auc, "auc_error": auc_standard_error(auc, n_test, n_test), **result}
