"""Several validated samples side by side: the figures a model is judged by, one column each.

One generated sample scatters: three samples of 1M showers of one model gave W1 ratios up to
~1.4 apart and parameter AUCs 0.035 apart (``docs/validation.md``), so models are ranked on
several samples. :func:`summary_table` reads the ``metrics.json`` of each sample's
``ctapipe-genshower-validate`` run (and, optionally, the ``--summary`` JSON of a
``ctapipe-genshower-background`` comparison after the G/H cut and one with quality cuts only)
and writes one Markdown table with a column per sample and one for all of them together.
"""

import json
from pathlib import Path

import numpy as np

__all__ = ["W1_RATIO_LIMIT", "gh_survivors", "sample_figures", "summary_table"]

#: The fidelity target: a parameter's W1 at most this many times its MC-vs-MC floor.
W1_RATIO_LIMIT = 2.0


def _read_json(path_or_dict):
    if isinstance(path_or_dict, dict):
        return path_or_dict
    return json.loads(Path(path_or_dict).read_text())


def gh_survivors(background_summary, scale):
    """Effective events of the test sample in a background comparison, against expected.

    Parameters
    ----------
    background_summary : dict or path-like
        ``ctapipe-genshower-background --summary`` JSON (``n_eff_test``, ``n_eff_ref`` per bin).
    scale : float
        Thrown showers of the test sample over those of the reference.

    Returns
    -------
    dict
        ``survivors``, ``expected`` (the reference's, scaled) and ``sigma``, the difference
        in units of both samples' Poisson errors.
    """
    summary = _read_json(background_summary)
    test = float(np.nansum(np.asarray(summary["n_eff_test"], dtype=float)))
    expected = float(np.nansum(np.asarray(summary["n_eff_ref"], dtype=float))) * scale
    error = np.sqrt(expected * scale + test)
    sigma = (test - expected) / error if error > 0 else float("nan")
    return {"survivors": test, "expected": expected, "sigma": float(sigma)}


def sample_figures(metrics, limit=W1_RATIO_LIMIT):
    """The headline figures of one ``metrics.json`` (dict or path), as a flat dict.

    ``auc`` / ``auc_conditional`` / ``auc_cnn`` (with ``*_error``), ``bins_conditional``
    (the lowest and highest conditional AUC over the energy bins), ``n_events`` (selected
    generated events), ``n_parameters``, ``above_limit`` (names whose W1 ratio exceeds ``limit``)
    and ``w1_ratio`` (name -> ratio).
    """
    metrics = _read_json(metrics)
    figures = {}
    for key, name in (
        ("auc", "classifier"),
        ("auc_conditional", "classifier_conditional"),
    ):
        overall = (metrics.get(name) or {}).get("overall") or {}
        figures[key] = overall.get("auc", np.nan)
        figures[f"{key}_error"] = overall.get("auc_error", np.nan)
    low_level = metrics.get("classifier_low_level") or {}
    figures["auc_cnn"] = low_level.get("auc", np.nan)
    figures["auc_cnn_error"] = low_level.get("auc_error", np.nan)
    bins = (metrics.get("classifier_conditional") or {}).get("energy_bins") or []
    aucs = [b["auc"] for b in bins if b.get("auc") is not None and np.isfinite(b["auc"])]
    figures["bins_conditional"] = (min(aucs), max(aucs)) if aucs else (np.nan, np.nan)
    ratios = {
        name: entry["w1_ratio"]
        for name, entry in metrics["parameters"].items()
        if entry.get("w1_ratio") is not None and np.isfinite(entry["w1_ratio"])
    }
    figures["w1_ratio"] = ratios
    figures["n_parameters"] = len(ratios)
    figures["above_limit"] = sorted(name for name, r in ratios.items() if r > limit)
    generated = (metrics.get("samples") or {}).get("generated") or {}
    figures["n_events"] = int(generated.get("n_selected", 0))
    return figures


def _finite(values, reduce):
    """``reduce`` of the finite values, NaN when there are none."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return float(reduce(values)) if len(values) else np.nan


def _cell(value, digits=3):
    return "-" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def summary_table(metrics, names=None, gh=None, quality=None, scale=None, parameters=()):
    """One Markdown table of several validated samples, a column each and one for all.

    Parameters
    ----------
    metrics : list of dict or path-like
        ``metrics.json`` of each sample (``ctapipe-genshower-validate``).
    names : list of str, optional
        Column titles (default: the metrics files' folder names, else ``sample 1 ...``).
    gh, quality : list of dict or path-like, optional
        ``ctapipe-genshower-background --summary`` JSON of each sample after the G/H cut, and
        with quality cuts only (its ``chi2_ndf``; None, for no bin with enough events, shows
        as ``-``).
    scale : float or list of float, optional
        Thrown showers of each sample over the reference's; needed with ``gh``.
    parameters : sequence of str
        Parameters whose W1 ratio gets a row of its own (every parameter above the limit in
        any sample gets one anyway).

    Returns
    -------
    str
        The Markdown table. The last column holds the mean AUCs, the summed count of
        parameters above the limit, the largest ratio of each parameter and the summed G/H
        survivors.
    """
    figures = [sample_figures(m) for m in metrics]
    n = len(figures)
    if names is None:
        names = [
            Path(m).parent.name if not isinstance(m, dict) else f"sample {i + 1}"
            for i, m in enumerate(metrics)
        ]
    if len(names) != n:
        raise ValueError(f"{len(names)} names for {n} samples")
    for extra, label in ((gh, "gh"), (quality, "quality")):
        if extra is not None and len(extra) != n:
            raise ValueError(f"{len(extra)} {label} summaries for {n} samples")
    if gh is not None and scale is None:
        raise ValueError("gh survivors need the scale (thrown showers over the reference's)")
    scales = [scale] * n if np.isscalar(scale) else scale

    rows = [["", *names, "all"], ["---"] * (n + 2)]

    def add(label, values, total):
        rows.append([label, *values, total])

    for key, label in (
        ("auc", "classifier AUC"),
        ("auc_conditional", "conditional AUC"),
        ("auc_cnn", "CNN AUC"),
    ):
        values = [f[key] for f in figures]
        errors = [f[f"{key}_error"] for f in figures]
        add(
            label,
            [f"{_cell(v)} +- {_cell(e)}" for v, e in zip(values, errors, strict=True)],
            f"{_cell(_finite(values, np.mean))} (mean)",
        )
    lows, highs = zip(*(f["bins_conditional"] for f in figures), strict=True)
    add(
        "conditional AUC per energy bin",
        [f"{_cell(lo)}-{_cell(hi)}" for lo, hi in zip(lows, highs, strict=True)],
        f"{_cell(_finite(lows, np.min))}-{_cell(_finite(highs, np.max))}",
    )
    add(
        "selected events",
        [str(f["n_events"]) for f in figures],
        str(sum(f["n_events"] for f in figures)),
    )
    above = [len(f["above_limit"]) for f in figures]
    add(
        f"parameters with W1 > {W1_RATIO_LIMIT:g}x floor",
        [f"{a} of {f['n_parameters']}" for a, f in zip(above, figures, strict=True)],
        f"{sum(above)} (sum)",
    )
    shown = list(
        dict.fromkeys([*parameters, *sorted({p for f in figures for p in f["above_limit"]})])
    )
    for name in shown:
        values = [f["w1_ratio"].get(name, np.nan) for f in figures]
        add(
            f"`{name}` W1 / floor",
            [_cell(v, 2) for v in values],
            f"{_cell(_finite(values, np.max), 2)} (max)",
        )
    if gh is not None:
        counts = [gh_survivors(g, s) for g, s in zip(gh, scales, strict=True)]
        total = sum(c["survivors"] for c in counts)
        expected = sum(c["expected"] for c in counts)
        error = np.sqrt(
            sum(c["expected"] * s + c["survivors"] for c, s in zip(counts, scales, strict=True))
        )
        sigma = (total - expected) / error if error > 0 else np.nan
        add(
            "G/H-cut survivors (expected, sigma)",
            [f"{c['survivors']:.1f} ({c['expected']:.1f}, {c['sigma']:+.1f})" for c in counts],
            f"{total:.1f} ({expected:.1f}, {sigma:+.1f})",
        )
    if quality is not None:
        chi2 = [_read_json(q)["chi2_ndf"] for q in quality]
        add(
            "quality cuts chi2/ndf",
            [_cell(c, 2) for c in chi2],
            f"{_cell(_finite([np.nan if c is None else c for c in chi2], np.max), 2)} (max)",
        )
    return "".join("| " + " | ".join(row) + " |\n" for row in rows)
