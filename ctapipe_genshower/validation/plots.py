"""Validation plots (matplotlib, Agg backend, imported lazily by each function).

Every function draws one figure and saves it as PNG to the given path.
"""

import numpy as np

from .metrics import _histogram, efficiency

__all__ = [
    "plot_correlations",
    "plot_efficiency",
    "plot_gallery",
    "plot_histogram_comparison",
    "plot_random_images",
]

GEN_STYLE = {"color": "C1", "label": "generated"}
REF_STYLE = {"color": "C0", "label": "reference"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path):
    fig.savefig(path, dpi=90)
    _pyplot().close(fig)
    return path


def _normalised(x, bins):
    counts = _histogram(x, bins)
    total = counts.sum()
    width = np.diff(bins)
    if total == 0:
        return np.zeros_like(counts), np.zeros_like(counts)
    return counts / total / width, np.sqrt(counts) / total / width


def plot_histogram_comparison(generated, reference, bins, label, path, log=False, title=None):
    """Normalised histograms with Poisson error bars and a generated/reference ratio panel.

    Under- and overflow are folded into the outer bins.
    """
    plt = _pyplot()
    fig, (ax, ax_ratio) = plt.subplots(
        2, 1, figsize=(5.5, 4.8), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    centers = np.sqrt(bins[1:] * bins[:-1]) if log else 0.5 * (bins[1:] + bins[:-1])
    ref, ref_err = _normalised(reference, bins)
    gen, gen_err = _normalised(generated, bins)
    ax.stairs(ref, bins, **REF_STYLE)
    ax.errorbar(centers, ref, ref_err, fmt="none", color=REF_STYLE["color"])
    ax.errorbar(centers, gen, gen_err, xerr=None, fmt="o", ms=3, **GEN_STYLE)
    ax.set_ylabel("normalised density")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = gen / ref
        ratio_err = ratio * np.sqrt((gen_err / gen) ** 2 + (ref_err / ref) ** 2)
    ax_ratio.axhline(1, color="gray", lw=0.8)
    ax_ratio.errorbar(centers, ratio, ratio_err, fmt="o", ms=3, color=GEN_STYLE["color"])
    ax_ratio.set_ylim(0, 2)
    ax_ratio.set_ylabel("gen / ref")
    ax_ratio.set_xlabel(label)
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
    fig.tight_layout()
    return _save(fig, path)


def plot_efficiency(generated, reference, label, path, log=False):
    """Selection efficiency (selected / thrown) of both samples vs a true quantity.

    ``generated`` and ``reference`` are dicts with ``values`` (of the selected images),
    ``scale`` (processed fraction), ``thrown`` (thrown counts per bin) and ``bins``
    (edges), or None for a sample without a thrown-shower histogram.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for sample, style in ((reference, REF_STYLE), (generated, GEN_STYLE)):
        if sample is None:
            continue
        bins = sample["bins"]
        centers = np.sqrt(bins[1:] * bins[:-1]) if log else 0.5 * (bins[1:] + bins[:-1])
        eff, err = efficiency(sample["values"], sample["thrown"], bins, sample["scale"])
        ax.errorbar(centers, eff, err, xerr=None, fmt="o", ms=3, **style)
    ax.set_xlabel(label)
    ax.set_ylabel("selection efficiency (selected / thrown)")
    ax.set_yscale("log")
    if log:
        ax.set_xscale("log")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_correlations(gen_x, gen_y, ref_x, ref_y, bins_x, bins_y, label_x, label_y, path):
    """2D histograms (normalised, shared colour scale) of generated and reference."""
    from matplotlib.colors import LogNorm

    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), sharex=True, sharey=True)
    hists = []
    for x, y in ((ref_x, ref_y), (gen_x, gen_y)):
        ok = np.isfinite(x) & np.isfinite(y)
        h = np.histogram2d(
            np.clip(x[ok], bins_x[0], bins_x[-1]),
            np.clip(y[ok], bins_y[0], bins_y[-1]),
            bins=[bins_x, bins_y],
        )[0]
        hists.append(h / max(h.sum(), 1))
    positive = np.concatenate([h[h > 0] for h in hists])
    vmin, vmax = (positive.min(), positive.max()) if len(positive) else (1e-4, 1)
    for ax, h, name in zip(axes, hists, ("reference", "generated"), strict=True):
        mesh = ax.pcolormesh(bins_x, bins_y, h.T, norm=LogNorm(vmin, vmax), cmap="viridis")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(label_x)
    axes[0].set_ylabel(label_y)
    fig.colorbar(mesh, ax=axes, label="fraction of images")
    return _save(fig, path)


def _draw_images(geometry, images, titles, path, n_cols, suptitle):
    from ctapipe.visualization import CameraDisplay

    plt = _pyplot()
    n_cols = max(1, min(n_cols, len(images)))
    n_rows = int(np.ceil(len(images) / n_cols))
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(2.6 * n_cols, 2.6 * n_rows), squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, image, title in zip(axes.ravel(), images, titles, strict=False):
        display = CameraDisplay(geometry, image=image, ax=ax, cmap="inferno", title="")
        display.pixels.set_edgecolor("none")
        ax.set_title(title, fontsize=7)
        ax.set_axis_off()
    fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def nearest_neighbours(reference_images, generated_images):
    """Index of the generated image with the smallest MSE to each reference image."""
    ref = np.asarray(reference_images, dtype=np.float64)
    gen = np.asarray(generated_images, dtype=np.float64)
    # ||r - g||^2 = r.r - 2 r.g + g.g, in blocks to bound memory
    g2 = np.sum(gen**2, axis=1)
    best = np.empty(len(ref), dtype=np.int64)
    mse = np.empty(len(ref))
    for start in range(0, len(ref), 256):
        r = ref[start : start + 256]
        d = np.sum(r**2, axis=1)[:, None] - 2 * r @ gen.T + g2[None]
        best[start : start + 256] = np.argmin(d, axis=1)
        mse[start : start + 256] = np.min(d, axis=1) / ref.shape[1]
    return best, mse


def plot_gallery(geometry, reference_images, generated_images, path, n_pairs=5, rng=None):
    """Random reference images (top row) above their nearest generated neighbours (MSE)."""
    rng = rng if rng is not None else np.random.default_rng(0)
    n_pairs = min(n_pairs, len(reference_images))
    pick = rng.choice(len(reference_images), n_pairs, replace=False)
    refs = reference_images[pick]
    best, mse = nearest_neighbours(refs, generated_images)
    images = [*refs, *generated_images[best]]
    titles = [f"reference, {r.sum():.0f} p.e." for r in refs] + [
        f"nearest generated, MSE {m:.2g}" for m in mse
    ]
    return _draw_images(
        geometry, images, titles, path, n_pairs, "Reference images and nearest generated (MSE)"
    )


def plot_random_images(geometry, images, path, n_images=10, rng=None):
    """A random selection of generated images."""
    rng = rng if rng is not None else np.random.default_rng(0)
    pick = rng.choice(len(images), min(n_images, len(images)), replace=False)
    titles = [f"{images[i].sum():.0f} p.e." for i in pick]
    return _draw_images(geometry, images[pick], titles, path, 5, "Random generated images")
