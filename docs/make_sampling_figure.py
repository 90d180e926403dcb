"""Fidelity versus network evaluations: the table and figure of ``docs/sampling.md``.

Reads the ``metrics.json`` of ``ctapipe-genshower-validate`` runs kept as
``docs/sampling/<solver>_<n_steps>.json`` (``<solver>+karras_<n_steps>.json`` for EDM's noise
levels; ``student_<n_steps>.json`` for a distilled student, sampled with DDIM at its steps)
and writes ``docs/sampling/nfe.md`` (markdown table)
and ``docs/figures/sampling_nfe.png``::

    python docs/make_sampling_figure.py
"""

import json
from pathlib import Path

import matplotlib.pyplot as plt

from ctapipe_genshower.model.samplers import network_evaluations

HERE = Path(__file__).parent
RUNS = HERE / "sampling"


def read_runs():
    """``[(label, n_steps, nfe, metrics)]`` sorted by label and NFE."""
    runs = []
    for path in RUNS.glob("*.json"):
        label, n_steps = path.stem.rsplit("_", 1)
        solver = "ddim" if label == "student" else label.split("+")[0]
        nfe = network_evaluations(solver, int(n_steps))
        runs.append((label, int(n_steps), nfe, json.loads(path.read_text())))
    return sorted(runs, key=lambda r: (r[0], r[2]))


def summary(metrics):
    """AUCs, worst W1/floor and re-selection of one run (AUC None: too few events)."""
    ratios = {k: v["w1_ratio"] for k, v in metrics["parameters"].items() if v.get("w1_ratio")}
    worst = max(ratios, key=ratios.get)
    generated = metrics["samples"]["generated"]
    return {
        "auc": metrics["classifier"]["overall"]["auc"],
        "auc_error": metrics["classifier"]["overall"]["auc_error"],
        "auc_conditional": metrics["classifier_conditional"]["overall"]["auc"],
        "auc_cnn": metrics["classifier_low_level"]["auc"],
        "worst": worst,
        "worst_ratio": ratios[worst],
        "n_over_2": sum(r > 2 for r in ratios.values()),
        "n_parameters": len(ratios),
        "reselection": generated["n_selected"] / generated["n_read"],
    }


def main():
    runs = read_runs()
    lines = [
        "| solver | steps | NFE | AUC parameters | AUC conditional | AUC CNN | worst W1/floor "
        "| params W1/floor > 2 | re-selection |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for solver, n_steps, nfe, metrics in runs:
        s = summary(metrics)
        if s["auc"] is None:
            lines.append(
                f"| {solver} | {n_steps} | {nfe} | too few selected events "
                f"({metrics['samples']['generated']['n_selected']}) | | | | | "
                f"{100 * s['reselection']:.1f} % |"
            )
            continue
        lines.append(
            f"| {solver} | {n_steps} | {nfe} | {s['auc']:.3f} +- {s['auc_error']:.3f} "
            f"| {s['auc_conditional']:.3f} | {s['auc_cnn']:.3f} "
            f"| {s['worst_ratio']:.1f} ({s['worst']}) | {s['n_over_2']} / {s['n_parameters']} "
            f"| {100 * s['reselection']:.1f} % |"
        )
    (RUNS / "nfe.md").write_text("\n".join(lines) + "\n")

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for solver in sorted({r[0] for r in runs}):
        rows = [(nfe, summary(m)) for s, _, nfe, m in runs if s == solver]
        rows = [r for r in rows if r[1]["auc"] is not None]
        nfe = [r[0] for r in rows]
        # a student is one model per NFE: points, not a line
        style = (
            dict(marker="*", markersize=12, ls="none") if solver == "student" else dict(marker="o")
        )
        axes[0].errorbar(
            nfe, [r[1]["auc"] for r in rows], [r[1]["auc_error"] for r in rows], **style
        )
        axes[1].plot(nfe, [r[1]["worst_ratio"] for r in rows], label=solver, **style)
        axes[2].plot(nfe, [100 * r[1]["reselection"] for r in rows], **style)
    axes[0].axhline(0.483, color="gray", ls=":", label="MC floor")
    axes[0].set_ylabel("classifier AUC (image parameters)")
    axes[1].set_ylabel("worst W1 / floor")
    axes[2].set_ylabel("generated images passing the selection [%]")
    axes[1].legend()
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xlabel("network evaluations per image")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(HERE / "figures" / "sampling_nfe.png", dpi=120)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
