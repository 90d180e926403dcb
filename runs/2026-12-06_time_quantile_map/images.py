"""How the stray peak times group into images: simulation (run 201) against v12's outputs."""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from residuals import load, residuals

for path in ["run_201.dl1.h5", "gen_v12.dl1.h5", "gen_v12_s8.dl1.h5"]:
    table, pix_x, pix_y = load(path)
    table = table[np.asarray(table["hillas_intensity"]) >= 250]
    _, r, index = residuals(table, pix_x, pix_y)
    per_image = [np.abs(r[index == i]) for i in range(len(table))]
    median = np.array([np.median(x) if len(x) else np.nan for x in per_image])
    largest = np.array([np.max(x) if len(x) else np.nan for x in per_image])
    n_off = np.array([np.sum(x > 3) for x in per_image])
    broad = np.asarray(table["timing_deviation"], float) > 0.75
    print(
        f"{path:22s} P(td>0.75) {broad.mean():.3f}; in them: median|r| "
        f"{np.nanmedian(median[broad]):.3f} max|r| median {np.nanmedian(largest[broad]):.2f}"
        f" n(|r|>3) median {np.median(n_off[broad])}; all: median|r| q50 "
        f"{np.nanmedian(median):.3f} q90 {np.nanquantile(median, 0.9):.3f}; max|r|>8:"
        f" {np.nanmean(largest > 8):.3f}; n(|r|>3)>=1: {np.mean(n_off >= 1):.3f}"
        f" >=3: {np.mean(n_off >= 3):.3f}"
    )
