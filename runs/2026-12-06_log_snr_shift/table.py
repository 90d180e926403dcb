"""The ablation table of the noise-level shift from the arms' metrics.json files.

usage: python table.py NAME=metrics.json [NAME=metrics.json ...]

One row per arm: the three classifier AUCs, the worst W1/floor, the parameters above twice
their floor, the re-selection (generated images passing the training selection again).
"""

import json
import sys


def row(name, path):
    metrics = json.load(open(path))
    aucs = [
        metrics[key].get("overall", metrics[key])
        for key in ("classifier", "classifier_conditional", "classifier_low_level")
    ]
    ratios = {k: v["w1_ratio"] for k, v in metrics["parameters"].items()}
    worst = max(ratios, key=ratios.get)
    generated = metrics["samples"]["generated"]
    reselected = generated["n_selected"] / generated["n_processed"]
    cells = [f"{a['auc']:.3f} +- {a['auc_error']:.3f}" for a in aucs]
    cells += [
        f"{ratios[worst]:.1f} ({worst})",
        f"{sum(r > 2 for r in ratios.values())} / {len(ratios)}",
    ]
    cells += [f"{100 * reselected:.1f} %"]
    return f"| {name} | " + " | ".join(cells) + " |"


HEADER = ("arm", "AUC parameters", "AUC conditional", "AUC CNN", "worst W1/floor")
HEADER += ("W1/floor > 2", "re-selection")
print("| " + " | ".join(HEADER) + " |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for argument in sys.argv[1:]:
    name, path = argument.split("=", 1)
    print(row(name, path))
