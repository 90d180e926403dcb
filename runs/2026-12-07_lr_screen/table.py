"""The learning-rate screen's table from the arms' loss logs and metrics.json files.

usage: python table.py NAME [NAME ...]   (in the folder holding NAME.loss.csv and
       val_NAME/metrics.json, or their copies loss_NAME.csv and metrics_NAME.json here)

One row per arm: the peak learning rate, the validation loss at steps 1000 and 2000, the mean
gradient norm before clipping over the run, the three classifier AUCs, the parameters above
twice their W1 floor, `timing_deviation` and the islands, the re-selection.
"""

import csv
import json
import sys
from pathlib import Path


def first(*paths):
    """The first of ``paths`` that exists."""
    return next(p for p in map(Path, paths) if p.exists())


def row(name):
    with first(f"{name}.loss.csv", f"loss_{name}.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    train = [r for r in rows if r["kind"] == "train"]
    val = {int(r["step"]): float(r["val_loss"]) for r in rows if r["kind"] == "validation"}
    # the largest logged rate, one step short of the warm-up's end: rounded to the peak
    lr = float(f"{max(float(r['lr']) for r in train):.1g}")
    norm = sum(float(r["grad_norm"]) for r in train) / len(train)
    clipped = sum(float(r["clipped"]) for r in train) / len(train)
    metrics = json.loads(first(f"val_{name}/metrics.json", f"metrics_{name}.json").read_text())
    aucs = [
        metrics[key].get("overall", metrics[key])
        for key in ("classifier", "classifier_conditional", "classifier_low_level")
    ]
    ratios = {k: v["w1_ratio"] for k, v in metrics["parameters"].items()}
    generated = metrics["samples"]["generated"]
    cells = [f"{lr:.1e}", f"{val[1000]:.4f}", f"**{val[2000]:.4f}**", f"{norm:.3f} ({clipped:.0%})"]
    cells += [f"{a['auc']:.3f} +- {a['auc_error']:.3f}" for a in aucs]
    cells += [
        f"{sum(r > 2 for r in ratios.values())} / {len(ratios)}",
        f"{ratios['timing_deviation']:.1f}",
        f"{ratios['morphology_n_islands']:.1f}",
        f"{100 * generated['n_selected'] / generated['n_processed']:.1f} %",
    ]
    return f"| {name} | " + " | ".join(cells) + " |"


HEADER = ("arm", "peak lr", "val. loss 1000", "val. loss 2000", "grad norm (clipped)")
HEADER += ("AUC parameters", "AUC conditional", "AUC CNN", "W1/floor > 2")
HEADER += ("`timing_deviation`", "islands", "re-selection")
print("| " + " | ".join(HEADER) + " |")
print("|" + " --- |" * len(HEADER))
for name in sys.argv[1:]:
    print(row(name))
