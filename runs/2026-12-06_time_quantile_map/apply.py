"""Map the cleaned pixels' time residuals of a generated DL1 file onto the simulation's
(quantile map per charge bin) and drop its parameters, for ctapipe-process to recompute.

    python apply.py GENERATED.dl1.h5 OUTPUT.images.h5
"""

import itertools
import os
import shutil
import sys

import numpy as np
import tables

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from residuals import fit_columns, image_residuals, load

EDGES = np.array([0, 7, 10, 15, 25, 50, 100, np.inf])
LEVELS = np.concatenate(
    [[5e-4, 1e-3, 2e-3, 5e-3], np.linspace(0.01, 0.99, 99), [0.995, 0.998, 0.999, 0.9995]]
)


def quantile_tables(qs, rs, qg, rg):
    """Residual quantiles per charge bin: simulation, generated."""
    sim, gen = [], []
    for lo, hi in itertools.pairwise(EDGES):
        sim.append(np.quantile(rs[(qs >= lo) & (qs < hi)], LEVELS))
        gen.append(np.quantile(rg[(qg >= lo) & (qg < hi)], LEVELS))
    return np.array(sim), np.array(gen)


def mapped(q, r, sim, gen):
    """``F_sim^-1(F_gen(r))`` in each pixel's charge bin, scaled beyond the outer levels."""
    out = r.copy()
    bins = np.clip(np.searchsorted(EDGES, q, side="right") - 1, 0, len(EDGES) - 2)
    for k in range(len(EDGES) - 1):
        s = bins == k
        x, g, si = r[s], gen[k], sim[k]
        y = np.interp(x, g, si)
        low, high = x < g[0], x > g[-1]
        y[low] = x[low] * si[0] / g[0] if g[0] < 0 else si[0]
        y[high] = x[high] * si[-1] / g[-1] if g[-1] > 0 else si[-1]
        out[s] = y
    return out


def main(source, destination):
    fit = np.load("tcal/fit_pixels.npz")
    sim, gen = quantile_tables(fit["qs"], fit["rs"], fit["qg"], fit["rg"])
    table, pix_x, pix_y = load(source)
    columns = fit_columns(table)
    shutil.copy(source, destination)
    n_mapped = 0
    with tables.open_file(destination, "r+") as h5:
        images = h5.get_node("/dl1/event/telescope/images/tel_001")
        row_of = {event_id: i for i, event_id in enumerate(images.col("event_id"))}
        for i in range(len(table)):
            mask, r = image_residuals(table, i, pix_x, pix_y, columns)
            if r is None:
                continue
            peak_time = np.array(table["peak_time"][i], dtype=np.float32)
            charge = np.asarray(table["image"][i])[mask]
            peak_time[mask] += mapped(charge, r, sim, gen) - r
            row = row_of[table["event_id"][i]]
            images.modify_column(row, row + 1, column=peak_time[None], colname="peak_time")
            n_mapped += 1
        h5.remove_node("/dl1/event/telescope/parameters", recursive=True)
    print("mapped", n_mapped, "images")


if __name__ == "__main__":
    main(*sys.argv[1:3])
