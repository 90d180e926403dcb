"""The self-contained HTML validation report (PNG plots embedded as base64)."""

import base64
import html
from pathlib import Path

__all__ = ["write_html_report"]

_CSS = """
body { font-family: sans-serif; margin: 2em; max-width: 1200px; }
table { border-collapse: collapse; font-size: 0.9em; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #eee; } td.name { text-align: left; }
.good { background: #d9f2d9; } .fair { background: #fff2cc; } .bad { background: #f8d0d0; }
figure { display: inline-block; margin: 0.5em; vertical-align: top; }
figcaption { font-size: 0.8em; max-width: 500px; }
"""


def _fmt(value, digits=3):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return html.escape(str(value))


def _ratio_class(ratio):
    if ratio is None:
        return ""
    return "good" if ratio < 2 else ("fair" if ratio < 5 else "bad")


def _auc_class(auc):
    if auc is None:
        return ""
    return "good" if auc < 0.6 else ("fair" if auc < 0.75 else "bad")


def _embed(png_path):
    data = base64.b64encode(Path(png_path).read_bytes()).decode("ascii")
    return f"data:image/png;base64,{data}"


def write_html_report(path, metrics, figures, title="ctapipe-genshower validation report"):
    """Write one HTML file with the metrics tables and all figures embedded.

    Parameters
    ----------
    path : path-like
        Output HTML file.
    metrics : dict
        As written to ``metrics.json`` (keys ``parameters``, ``classifier``, ``samples``).
    figures : list of (section, png_path, caption)
        Figures in order; each section gets a heading.
    """
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for warning in metrics.get("warnings", []):
        parts.append(f"<p class='bad'>Warning: {html.escape(warning)}</p>")
    samples = metrics.get("samples", {})
    parts.append("<h2>Samples</h2><table><tr><th></th>")
    keys = ["files", "telescope_type", "n_read", "n_processed", "n_nonfinite", "n_selected"]
    parts.extend(f"<th>{k}</th>" for k in keys)
    parts.append("</tr>")
    for name, info in samples.items():
        parts.append(f"<tr><td class='name'>{html.escape(name)}</td>")
        for k in keys:
            value = info.get(k)
            if isinstance(value, list):
                value = ", ".join(Path(v).name for v in value)
            parts.append(f"<td>{_fmt(value)}</td>")
        parts.append("</tr>")
    parts.append("</table>")
    selection = metrics.get("selection")
    if selection:
        parts.append(
            f"<p>Selection on both samples: <code>{html.escape(str(selection))}</code></p>"
        )

    clf = metrics.get("classifier", {})
    overall = clf.get("overall", {})
    parts.append("<h2>Classifier two-sample test</h2>")
    parts.append(
        "<p>Gradient-boosted trees trained to separate generated from reference images on "
        "their image parameters; cross-validated ROC AUC. 0.5: indistinguishable, 1: fully "
        "separable. &plusmn;: statistical standard error of the AUC (Hanley &amp; McNeil "
        "1982, from the events per class; about 0.41/&radic;n at 0.5); fold std: spread of "
        "the AUCs of the cross-validation folds.</p>"
    )
    cond = metrics.get("classifier_conditional") or {}
    cond_bins = cond.get("energy_bins", [])
    conditions = ", ".join(cond.get("conditions", []))
    parts.append(
        "<p>Conditional: the same classifier with the shower conditions as extra inputs "
        f"(<code>{html.escape(conditions)}</code>): it also sees whether an image fits its "
        "energy and impact distance, which the parameter-only test cannot.</p>"
    )
    parts.append("<table><tr><th>true energy bin [TeV]</th><th>AUC</th><th>&plusmn;</th>")
    parts.append("<th>fold std</th><th>events / class</th>")
    parts.append("<th>AUC conditional</th><th>&plusmn;</th><th>fold std</th></tr>")
    rows = [("all", overall, cond.get("overall", {}))] + [
        (
            f"{b['energy_min']:.3g} - {b['energy_max']:.3g}",
            b,
            cond_bins[i] if i < len(cond_bins) else {},
        )
        for i, b in enumerate(clf.get("energy_bins", []))
    ]
    for label, row, crow in rows:
        auc, cauc = row.get("auc"), crow.get("auc")
        parts.append(
            f"<tr><td class='name'>{label}</td><td class='{_auc_class(auc)}'>{_fmt(auc)}</td>"
            f"<td>{_fmt(row.get('auc_error'), 2)}</td><td>{_fmt(row.get('auc_fold_std'), 2)}</td>"
            f"<td>{_fmt(row.get('n_per_class'))}</td>"
            f"<td class='{_auc_class(cauc)}'>{_fmt(cauc)}</td>"
            f"<td>{_fmt(crow.get('auc_error'), 2)}</td><td>{_fmt(crow.get('auc_fold_std'), 2)}</td>"
            "</tr>"
        )
    parts.append("</table>")
    low = metrics.get("classifier_low_level")
    parts.append("<h3>Low-level classifier (CNN on the images)</h3>")
    if low is None:
        parts.append("<p>Not run (<code>--no-low-level</code> or no images kept).</p>")
    else:
        auc = low.get("auc")
        parts.append(
            "<p>A small convolutional network on the images mapped to the square grid "
            f"(channels: {html.escape(', '.join(low.get('channels', [])))}; each image "
            f"divided by its size), one network per fold of {_fmt(low.get('n_folds'))}, each "
            "scoring its held-out events: "
            f"<b class='{_auc_class(auc)}'>AUC {_fmt(auc)}</b> &plusmn; "
            f"{_fmt(low.get('auc_error'), 2)} (spread of the folds "
            f"{_fmt(low.get('auc_fold_std'), 2)}; {_fmt(low.get('n_per_class'))} events per "
            "class, all scored out of fold).</p>"
        )

    parts.append("<h2>Per-parameter metrics</h2>")
    parts.append(
        "<p>W1: Wasserstein-1 distance (parameter units); floor: W1 expected between the "
        "reference and another simulation run of the generated sample's size (from two "
        "halves of the reference); ratio = W1 / floor (1: as close as another simulation "
        "run; green &lt; 2, amber &lt; 5, red above); KS: Kolmogorov-Smirnov statistic; "
        "S: CaloChallenge separation power (0 identical, 1 disjoint).</p>"
    )
    cols = ["w1", "w1_floor", "w1_ratio", "ks", "separation_power", "mean_generated"]
    cols += ["mean_reference"]
    parts.append("<table><tr><th>parameter</th>")
    parts.extend(f"<th>{c}</th>" for c in cols)
    parts.append("</tr>")
    for name, row in metrics.get("parameters", {}).items():
        parts.append(f"<tr><td class='name'>{html.escape(name)}</td>")
        for c in cols:
            css = _ratio_class(row.get(c)) if c == "w1_ratio" else ""
            parts.append(f"<td class='{css}'>{_fmt(row.get(c))}</td>")
        parts.append("</tr>")
    parts.append("</table>")

    section = None
    for fig_section, png, caption in figures:
        if fig_section != section:
            section = fig_section
            parts.append(f"<h2>{html.escape(section)}</h2>")
        name = Path(png).name
        parts.append(
            f"<figure id='{html.escape(name)}'><img src='{_embed(png)}' alt='{html.escape(name)}'>"
            f"<figcaption>{html.escape(caption)} ({html.escape(name)})</figcaption></figure>"
        )
    parts.append("</body></html>")
    Path(path).write_text("\n".join(parts), encoding="utf-8")
    return path
