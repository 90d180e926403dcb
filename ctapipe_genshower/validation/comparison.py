"""Compare two :class:`~.samples.ValidationSample`: metrics.json, PNG plots, HTML report."""

import itertools
import json
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .metrics import (
    CLASSIFIER_FOLDS,
    CLASSIFIER_MAX_PER_CLASS,
    classifier_two_sample_test,
    common_bins,
    compare_parameter,
    conditional_classifier_two_sample_test,
)
from .samples import PARAMETERS, check_same_telescope

__all__ = [
    "CLASSIFIER_FEATURES",
    "CONDITIONS",
    "GALLERY_PAIRS",
    "MIN_SELECTED",
    "compare_samples",
    "energy_bins",
    "sample_warnings",
    "write_outputs",
]

#: Reference images shown with their nearest generated ones (twice as many random).
GALLERY_PAIRS = 5

#: Fewer selected images in a sample than this: warned (metrics dominated by noise; the
#: AUC's statistical error alone is about 0.04 at 100 events per class).
MIN_SELECTED = 100

#: Features of the classifier two-sample test (log10 of the log-scale parameters). The
#: parameters added to the report after 2026-12-03 (``timing_deviation``, ``peak_time_std``)
#: are compared by W1 only, so that classifier AUCs stay comparable with the earlier reports.
W1_ONLY = ("leakage_intensity_width_1", "concentration_cog", "timing_deviation", "peak_time_std")
CLASSIFIER_FEATURES = [name for name in PARAMETERS if name not in W1_ONLY]

#: Shower conditions added to the features of the conditional classifier (truth column,
#: log10); columns absent or all-NaN in either sample are left out.
CONDITIONS = [
    ("true_energy", True),
    ("true_impact_distance", False),
    ("true_source_fov_offset", False),
]

#: Simulation settings that must agree for a like-for-like comparison.
THROWN_SETTINGS = [
    "energy_range_min",
    "energy_range_max",
    "spectral_index",
    "max_scatter_range",
    "min_viewcone_radius",
    "max_viewcone_radius",
    "max_alt",
    "max_az",
]

#: (x, y, label x, label y, log x, log y) of the 2D correlation plots.
CORRELATIONS = [
    ("true_impact_distance", "hillas_intensity", "impact distance [m]", "log10 size [p.e.]"),
    ("hillas_intensity", "hillas_length", "log10 size [p.e.]", "Hillas length [deg]"),
    ("hillas_length", "hillas_width", "Hillas length [deg]", "Hillas width [deg]"),
]


def _features(sample):
    cols = []
    for name in CLASSIFIER_FEATURES:
        x = sample.parameters[name]
        if PARAMETERS[name][1]:
            with np.errstate(divide="ignore", invalid="ignore"):
                x = np.log10(x)
        cols.append(x)
    return np.column_stack(cols)


def _conditions(generated, reference):
    """Condition names (as features) and the ``(n, k)`` condition matrices of both samples."""
    names, gen_cols, ref_cols = [], [], []
    for name, log in CONDITIONS:
        g, r = generated.truth.get(name), reference.truth.get(name)
        if g is None or r is None or not (np.any(np.isfinite(g)) and np.any(np.isfinite(r))):
            continue
        if log:
            with np.errstate(divide="ignore", invalid="ignore"):
                g, r = np.log10(g), np.log10(r)
        names.append(f"log10_{name}" if log else name)
        gen_cols.append(g)
        ref_cols.append(r)
    n_gen, n_ref = generated.n_events, reference.n_events
    if not names:
        return names, np.empty((n_gen, 0)), np.empty((n_ref, 0))
    return names, np.column_stack(gen_cols), np.column_stack(ref_cols)


def low_level_test(generated, reference, seed=0, n_threads=None, epochs=None):
    """The CNN test on the samples' kept classifier images (None when a sample has none)."""
    from .image_classifier import LOW_LEVEL_EPOCHS, image_classifier_two_sample_test, images_to_grid

    if generated.classifier_images is None or reference.classifier_images is None:
        return None
    with_time = (
        generated.classifier_peak_times is not None and reference.classifier_peak_times is not None
    )
    grids = [
        images_to_grid(
            sample.geometry,
            sample.classifier_images,
            sample.classifier_peak_times if with_time else None,
        )
        for sample in (generated, reference)
    ]
    result = image_classifier_two_sample_test(
        *grids,
        seed=seed,
        n_threads=n_threads,
        epochs=LOW_LEVEL_EPOCHS if epochs is None else epochs,
    )
    result["channels"] = ["image / size", *(["peak time"] if with_time else [])]
    return result


def energy_bins(generated, reference, bins_per_decade=2):
    """Log energy bin edges [TeV] spanning both samples, ``bins_per_decade`` per decade."""
    e = np.concatenate([generated.truth["true_energy"], reference.truth["true_energy"]])
    e = e[np.isfinite(e) & (e > 0)]
    lo = np.floor(np.log10(e.min()) * bins_per_decade) / bins_per_decade
    hi = np.ceil(np.log10(e.max()) * bins_per_decade) / bins_per_decade
    return 10 ** np.arange(lo, hi + 0.5 / bins_per_decade, 1 / bins_per_decade)


def compare_samples(
    generated,
    reference,
    seed=0,
    n_folds=CLASSIFIER_FOLDS,
    max_per_class=CLASSIFIER_MAX_PER_CLASS,
    n_threads=None,
    progress=True,
    low_level=True,
    low_level_epochs=None,
):
    """All metrics of generated vs reference as a JSON-able dict.

    ``classifier`` is the parameter-only classifier test, ``classifier_conditional`` the
    same with the shower conditions (:data:`CONDITIONS`) as extra inputs, and
    ``classifier_low_level`` the CNN on the images (None with ``low_level=False`` or when
    the samples kept no classifier images).

    Raises ``ValueError`` when the telescope type or camera differ.
    """
    check_same_telescope(generated, reference)
    rng = np.random.default_rng(seed)
    parameters = {}
    for name, (_, log) in tqdm(PARAMETERS.items(), desc="metrics", disable=not progress):
        gen, ref = generated.parameters[name], reference.parameters[name]
        bins = common_bins(ref, gen, log=log)
        parameters[name] = compare_parameter(gen, ref, bins, rng)
    gen_pix, ref_pix = generated.pixel_values, reference.pixel_values
    # pixel values of one image are correlated: the floor splits the reference by image
    parameters["pixel_values"] = compare_parameter(
        gen_pix,
        ref_pix,
        common_bins(ref_pix[ref_pix > 0], gen_pix[gen_pix > 0], log=True),
        rng,
        reference_groups=reference.pixel_image,
        n_generated_groups=generated.n_selected,
    )

    x_gen, x_ref = _features(generated), _features(reference)
    kwargs = {
        "seed": seed,
        "n_folds": n_folds,
        "max_per_class": max_per_class,
        "n_threads": n_threads,
    }
    condition_names, c_gen, c_ref = _conditions(generated, reference)
    overall = classifier_two_sample_test(x_gen, x_ref, **kwargs)
    overall_cond = conditional_classifier_two_sample_test(x_gen, x_ref, c_gen, c_ref, **kwargs)
    bins = energy_bins(generated, reference)
    e_gen, e_ref = generated.truth["true_energy"], reference.truth["true_energy"]
    per_bin, per_bin_cond = [], []
    for lo, hi in tqdm(list(itertools.pairwise(bins)), desc="classifier", disable=not progress):
        in_gen = (e_gen >= lo) & (e_gen < hi)
        in_ref = (e_ref >= lo) & (e_ref < hi)
        edges = {"energy_min": float(lo), "energy_max": float(hi)}
        result = classifier_two_sample_test(x_gen[in_gen], x_ref[in_ref], **kwargs)
        per_bin.append({**edges, **result})
        result = conditional_classifier_two_sample_test(
            x_gen[in_gen], x_ref[in_ref], c_gen[in_gen], c_ref[in_ref], **kwargs
        )
        per_bin_cond.append({**edges, **result})
    low = None
    if low_level:
        low = low_level_test(
            generated, reference, seed=seed, n_threads=n_threads, epochs=low_level_epochs
        )

    def info(sample):
        return {
            # names only: reports are shared, a directory here says nothing elsewhere
            "files": [Path(f).name for f in sample.files],
            "telescope_type": sample.telescope_type,
            "camera_name": sample.camera_name,
            "n_read": sample.n_read,
            "n_processed": sample.n_processed,
            "n_selected": sample.n_selected,
            "n_nonfinite": sample.n_nonfinite,
            "subsample_fraction": sample.subsample_fraction,
            "has_thrown_histogram": sample.thrown is not None,
            "simulation_config": sample.simulation_config,
        }

    warnings = sample_warnings(generated) + sample_warnings(reference)
    gen_cfg, ref_cfg = generated.simulation_config, reference.simulation_config
    for key in THROWN_SETTINGS:
        a, b = gen_cfg.get(key), ref_cfg.get(key)
        if a is not None and b is not None and not np.isclose(a, b, rtol=1e-6):
            warnings.append(
                f"thrown distributions differ: {key} = {a} (generated) vs {b} (reference)"
            )

    return {
        "warnings": warnings,
        "parameters": parameters,
        "classifier": {
            "features": CLASSIFIER_FEATURES,
            "n_folds": n_folds,
            "overall": overall,
            "energy_bins": per_bin,
        },
        "classifier_conditional": {
            "features": CLASSIFIER_FEATURES + condition_names,
            "conditions": condition_names,
            "n_folds": n_folds,
            "overall": overall_cond,
            "energy_bins": per_bin_cond,
        },
        "classifier_low_level": low,
        "samples": {"generated": info(generated), "reference": info(reference)},
        "seed": seed,
    }


def sample_warnings(sample, min_selected=MIN_SELECTED):
    """Warnings about one sample: non-finite images left out, too few selected images."""
    warnings = []
    if sample.n_nonfinite:
        warnings.append(
            f"{sample.name}: {sample.n_nonfinite} of {sample.n_processed} images have"
            " non-finite (NaN or inf) pixels and were left out"
        )
    if sample.n_selected < min_selected:
        warnings.append(
            f"{sample.name}: only {sample.n_selected} selected images (fewer than"
            f" {min_selected}): the metrics are dominated by statistical fluctuations"
        )
    return warnings


def write_outputs(
    generated, reference, metrics, output_dir, seed=0, n_gallery=GALLERY_PAIRS, progress=True
):
    """Write metrics.json, the PNG plots and report.html into ``output_dir``.

    ``n_gallery`` reference images are shown with their nearest generated neighbours and
    ``2 * n_gallery`` random generated images.

    Returns the list of ``(section, png_path, caption)`` of the figures.
    """
    from . import plots
    from .report import write_html_report

    output_dir = Path(output_dir)
    rng = np.random.default_rng(seed)
    figures = []
    total = len(PARAMETERS) + 1 + 2 + len(CORRELATIONS) + 2
    bar = tqdm(total=total, desc="plots", disable=not progress)

    gen_pix, ref_pix = generated.pixel_values, reference.pixel_values
    path = output_dir / "pixel_values.png"
    bins = common_bins(ref_pix[ref_pix > 0], gen_pix[gen_pix > 0], log=True)
    plots.plot_histogram_comparison(
        gen_pix[gen_pix > 0],
        ref_pix[ref_pix > 0],
        bins,
        "pixel value after cleaning [p.e.]",
        path,
        log=True,
    )
    figures.append(("Image parameters", path, "Pixel values of the pixels that survive cleaning"))
    bar.update()
    for name, (label, log) in PARAMETERS.items():
        gen, ref = generated.parameters[name], reference.parameters[name]
        path = output_dir / f"{name}.png"
        row = metrics["parameters"][name]
        title = None
        if row.get("w1") is not None:
            title = (
                f"W1/floor {_num(row['w1_ratio'])}, KS {_num(row['ks'])}, "
                f"S {_num(row['separation_power'])}"
            )
        plots.plot_histogram_comparison(
            gen, ref, common_bins(ref, gen, log=log), label, path, log=log, title=title
        )
        figures.append(("Image parameters", path, label))
        bar.update()

    for quantity, bins_key, label, log in (
        ("true_energy", "energy_bins", "true energy [TeV]", True),
        ("true_core_distance", "core_bins", "true core distance (ground) [m]", False),
    ):
        path = output_dir / f"efficiency_{quantity}.png"
        axis = 1 if quantity == "true_energy" else 0  # histogram is (energy, core)
        inputs = [
            None
            if sample.thrown is None
            else {
                "values": sample.truth[quantity],
                "scale": sample.subsample_fraction,
                "thrown": sample.thrown["histogram"].sum(axis=axis),
                "bins": sample.thrown[bins_key],
            }
            for sample in (generated, reference)
        ]
        if inputs[0] is None and inputs[1] is None:
            bar.update()
            continue
        plots.plot_efficiency(inputs[0], inputs[1], label, path, log=log)
        figures.append(("Selection efficiency", path, f"selected / thrown vs {label}"))
        bar.update()

    for x_name, y_name, label_x, label_y in CORRELATIONS:

        def values(sample, name):
            v = sample.truth.get(name, sample.parameters.get(name))
            if name == "hillas_intensity":
                with np.errstate(divide="ignore", invalid="ignore"):
                    v = np.log10(v)
            return v

        gx, gy = values(generated, x_name), values(generated, y_name)
        rx, ry = values(reference, x_name), values(reference, y_name)
        path = output_dir / f"correlation_{x_name}_{y_name}.png"
        plots.plot_correlations(
            gx,
            gy,
            rx,
            ry,
            common_bins(rx, gx, 30),
            common_bins(ry, gy, 30),
            label_x,
            label_y,
            path,
        )
        figures.append(("Correlations", path, f"{label_y} vs {label_x}"))
        bar.update()

    path = output_dir / "gallery_nearest.png"
    plots.plot_gallery(
        reference.geometry,
        reference.gallery_images,
        generated.gallery_images,
        path,
        n_pairs=n_gallery,
        rng=rng,
    )
    figures.append(("Images", path, "Random reference images and their nearest generated images"))
    bar.update()
    path = output_dir / "gallery_generated.png"
    plots.plot_random_images(
        generated.geometry, generated.gallery_images, path, n_images=2 * n_gallery, rng=rng
    )
    figures.append(("Images", path, "Random generated images"))
    bar.update()
    bar.close()

    (output_dir / "metrics.json").write_text(json.dumps(_jsonable(metrics), indent=2))
    write_html_report(output_dir / "report.html", metrics, figures)
    return figures


def _num(x):
    return "-" if x is None else f"{x:.3g}"


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items() if not callable(v)}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj
