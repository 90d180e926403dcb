"""Residuals per charge bin: toy runs 117-124 against v12's seeds 8 and 9; writes the pixels
the map is fitted on (``tcal/fit_pixels.npz``)."""

import itertools
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from residuals import load, residuals

EDGES = [0, 7, 10, 15, 25, 50, 100, np.inf]
SIZE_CUT = 250  # the training selection


def collect(paths):
    """Charges and residuals of the selected images' cleaned pixels, and the image count."""
    charges, residual_list, n_images = [], [], 0
    for path in paths:
        table, pix_x, pix_y = load(path)
        table = table[np.asarray(table["hillas_intensity"]) >= SIZE_CUT]
        q, r, _ = residuals(table, pix_x, pix_y)
        charges.append(q)
        residual_list.append(r)
        n_images += len(table)
    return np.concatenate(charges), np.concatenate(residual_list), n_images


def describe(name, q, r, n_images):
    print(name, n_images, "images", len(q), "pixels")
    for lo, hi in itertools.pairwise(EDGES):
        s = (q >= lo) & (q < hi)
        x = np.abs(r[s])
        print(
            f"  {lo:>4}-{hi:<4} share {s.mean():.3f} median|r| {np.median(x):.3f}"
            f" q90|r| {np.quantile(x, 0.9):.3f} q99 {np.quantile(x, 0.99):.2f}"
            f" P>5 {np.mean(x > 5):.4f} P>10 {np.mean(x > 10):.5f} mean {r[s].mean():+.3f}"
        )


if __name__ == "__main__":
    sim = collect([f"run_{i}.dl1.h5" for i in range(117, 125)])
    gen = collect(["gen_v12_s8.dl1.h5", "gen_v12_s9.dl1.h5"])
    os.makedirs("tcal", exist_ok=True)
    np.savez("tcal/fit_pixels.npz", qs=sim[0], rs=sim[1], qg=gen[0], rg=gen[1])
    describe("sim 117-124", *sim)
    describe("v12 s8+s9", *gen)
