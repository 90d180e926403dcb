"""Gammaness profile of generated vs simulated protons, with the IRF chain's models.

``python gh_profile.py CHAIN_DIR NAME...`` reads ``NAME.dl2.h5`` (a 1,000,000-shower
validation file of ``ctapipe-genshower-generate`` with the chain's reconstructors applied by
``gh_tail.sh``) and the chain's ``CHAIN_DIR/proton_test.dl2.h5`` (toy run 201, 2,500,000
showers). It prints, per gammaness threshold, the events per thrown shower above it, generated
over simulated (Poisson errors of both), for the valid events (the chain's quality query,
training selection included), the G/H-cut survivors and quality-cut chi2/ndf of
``NAME.json`` / ``NAME.quality.json``, and draws ``gh_profile.png``. When ``toy_202`` is among
the names (the second toy run, also 2,500,000 showers), the survivors are compared with the
pooled toy runs 201 + 202 too (twice the reference statistics; run 201 alone is +-11 %).
"""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from ctapipe.io import read_table

KEY = "/dl2/event/subarray/particle_type/ExtraTreesClassifier"
COL = "ExtraTreesClassifier_prediction"
THRESHOLDS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
BINS = np.linspace(0, 1, 11)


def gammaness(path):
    g = np.asarray(read_table(path, KEY)[COL], float)
    n_thrown = float(read_table(path, "/configuration/simulation/run")["n_showers"].sum())
    return g[np.isfinite(g)], n_thrown


def main(chain, names):
    ref, n_ref = gammaness(Path(chain) / "proton_test.dl2.h5")
    print(
        "| sample | " + " | ".join(f"g >= {t:.1f}" for t in THRESHOLDS) + " | G/H survivors"
        " (expected) | vs runs 201 + 202 | quality cuts chi2/ndf |"
    )
    print("|" + " --- |" * (len(THRESHOLDS) + 4))
    print(
        "| simulated (events) | "
        + " | ".join(str(np.sum(ref >= t)) for t in THRESHOLDS)
        + " | | | |"
    )
    pool = None
    if "toy_202" in names:  # survivors and thrown showers of the second toy run
        floor = json.loads(Path("toy_202.json").read_text())
        pool = np.nansum(np.array(floor["n_eff_test"], float)), gammaness("toy_202.dl2.h5")[1]
    fig, (ax, rax) = plt.subplots(2, 1, figsize=(7, 6), sharex=True, height_ratios=(2, 1))
    h_ref, _ = np.histogram(ref, BINS)
    centres = 0.5 * (BINS[1:] + BINS[:-1])
    ax.step(centres, h_ref / n_ref * 1e6, where="mid", color="k", label="simulated (toy run 201)")
    for k, name in enumerate(names):
        gen, n_gen = gammaness(f"{name}.dl2.h5")
        cells = []
        for t in THRESHOLDS:
            a, b = np.sum(gen >= t), np.sum(ref >= t)
            ratio = (a / n_gen) / (b / n_ref)
            cells.append(f"{ratio:.2f} +- {ratio * np.sqrt(1 / a + 1 / b):.2f}")
        gh = json.loads(Path(f"{name}.json").read_text())
        quality = json.loads(Path(f"{name}.quality.json").read_text())
        test = np.nansum(np.array(gh["n_eff_test"], float))
        expected = np.nansum(np.array(gh["n_eff_ref"], float)) * n_gen / n_ref
        err = np.sqrt(expected * n_gen / n_ref + test)
        pooled = ""
        if pool is not None and name != "toy_202":
            n_pool = n_ref + pool[1]
            expected_pool = (np.nansum(np.array(gh["n_eff_ref"], float)) + pool[0]) * n_gen / n_pool
            err_pool = np.sqrt(expected_pool * n_gen / n_pool + test)
            pooled = f"{expected_pool:.1f}, {(test - expected_pool) / err_pool:+.1f} sigma"
        print(
            f"| {name} | " + " | ".join(cells) + f" | {test:.1f} ({expected:.1f},"
            f" {(test - expected) / err:+.1f} sigma) | {pooled} | {quality['chi2_ndf']:.2f} |"
        )
        h, _ = np.histogram(gen, BINS)
        ax.step(centres, h / n_gen * 1e6, where="mid", label=name)
        ratio = (h / n_gen) / (h_ref / n_ref)
        shift = (k - 0.5 * (len(names) - 1)) * 0.012  # side by side
        rax.errorbar(
            centres + shift,
            ratio,
            ratio * np.sqrt(1 / np.maximum(h, 1) + 1 / h_ref),
            fmt="o",
            ms=3,
            capsize=2,
            label=name,
        )
    ax.set_yscale("log")
    ax.set_ylabel("valid events per 10^6 thrown showers")
    ax.legend(fontsize=8)
    rax.axhline(1, color="k", lw=0.8)
    rax.set_xlabel("gammaness (the IRF chain's G/H classifier)")
    rax.set_ylabel("generated / simulated")
    fig.tight_layout()
    fig.savefig("gh_profile.png", dpi=120)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
