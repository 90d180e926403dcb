"""The fine-tune's table: one row per model and generation seed, then each model's means.

usage: python table.py NAME [NAME ...]   (in the folder holding report_NAME_s7/ and
       report_NAME_s8/, or their copies metrics_NAME_s7.json, metrics_NAME_s8.json here)
"""

import json
import sys
from pathlib import Path

SEEDS = (7, 8)
COLUMNS = (
    "timing_slope",
    "timing_deviation",
    "peak_time_std",
    "morphology_n_islands",
    "concentration_pixel",
    "hillas_length",
)


def metrics(name, seed):
    """The validation report's metrics of one sample, or None if not made."""
    for path in (Path(f"report_{name}_s{seed}/metrics.json"), Path(f"metrics_{name}_s{seed}.json")):
        if path.exists():
            return json.loads(path.read_text())
    return None


def numbers(m):
    """AUC parameters, conditional, CNN; the count above twice the floor; the W1 columns."""
    aucs = [m["classifier"]["overall"]["auc"], m["classifier_conditional"]["overall"]["auc"]]
    aucs.append(m["classifier_low_level"]["auc"])  # one AUC, no energy bins
    ratios = {k: v["w1_ratio"] for k, v in m["parameters"].items()}
    return [*aucs, sum(r > 2 for r in ratios.values()), *(ratios[c] for c in COLUMNS)]


HEADER = ("model", "seed", "AUC parameters", "AUC conditional", "AUC CNN", "W1/floor > 2")
HEADER += tuple(f"`{c}`" for c in COLUMNS)
print("| " + " | ".join(HEADER) + " |")
print("|" + " --- |" * len(HEADER))
for name in sys.argv[1:]:
    rows = {s: numbers(m) for s in SEEDS if (m := metrics(name, s)) is not None}
    for seed, row in rows.items():
        print(f"| {name} | {seed} | " + " | ".join(f"{x:.3f}" for x in row[:3]), end="")
        print(f" | {row[3]} | " + " | ".join(f"{x:.2f}" for x in row[4:]) + " |")
    if len(rows) > 1:
        mean = [sum(col) / len(col) for col in zip(*rows.values(), strict=True)]
        print(f"| **{name}** | mean | " + " | ".join(f"{x:.3f}" for x in mean[:3]), end="")
        print(f" | {mean[3]:.1f} | " + " | ".join(f"{x:.2f}" for x in mean[4:]) + " |")
