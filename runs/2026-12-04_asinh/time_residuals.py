"""Peak-time residuals of cleaned pixels around each image's linear time profile, by charge.

For every image: the cleaned pixels (``image_mask`` of the DL1 file), the charge-weighted
principal axis, a charge-weighted straight-line fit of peak time along it; the residuals are
binned in pixel charge. Prints a table (robust sigma = 1.4826 MAD, and rms) and plots the
robust sigma per file.

Usage: python time_residuals.py OUT.png LABEL=FILE.dl1.h5 [LABEL=FILE.dl1.h5 ...]
"""

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import tables
from ctapipe.instrument import SubarrayDescription

BINS = np.array([5, 7, 10, 15, 25, 50, 100, 1000])
N_EVENTS = 1700


def residuals(path):
    geom = SubarrayDescription.from_hdf(path).tel[1].camera.geometry
    x, y = geom.pix_x.to_value("m"), geom.pix_y.to_value("m")
    with tables.open_file(path) as f:
        images = f.root.dl1.event.telescope.images.tel_001.read(stop=N_EVENTS)
    charges, resid = [], []
    for event in images:
        mask = event["image_mask"]
        if mask.sum() < 5:
            continue
        q, t, px, py = event["image"][mask], event["peak_time"][mask], x[mask], y[mask]
        cx, cy = np.average(px, weights=q), np.average(py, weights=q)
        axis = np.linalg.eigh(np.cov(np.vstack([px - cx, py - cy]), aweights=q))[1][:, 1]
        design = np.column_stack([(px - cx) * axis[0] + (py - cy) * axis[1], np.ones(len(q))])
        w = np.sqrt(q)[:, None]
        coef = np.linalg.lstsq(design * w, t * w[:, 0], rcond=None)[0]
        charges.append(q)
        resid.append(t - design @ coef)
    return np.concatenate(charges), np.concatenate(resid)


def main(out, specs):
    fig, ax = plt.subplots(figsize=(6, 4))
    centres = np.sqrt(BINS[:-1] * BINS[1:])
    print(
        "charge (p.e.) | "
        + " | ".join(f"{s.split('=')[0]}: n, robust sigma, rms (ns)" for s in specs)
    )
    table = {}
    for spec in specs:
        label, path = spec.split("=", 1)
        q, r = residuals(path)
        index = np.digitize(q, BINS) - 1
        rows = []
        for k in range(len(BINS) - 1):
            rk = r[index == k]
            mad = 1.4826 * np.median(np.abs(rk - np.median(rk))) if len(rk) else np.nan
            rows.append((len(rk), mad, np.sqrt(np.mean(rk**2)) if len(rk) else np.nan))
        table[label] = rows
        ax.plot(centres, [row[1] for row in rows], "o-", label=label)
    for k in range(len(BINS) - 1):
        cells = [
            f"{n} {mad:.3f} {rms:.3f}" for n, mad, rms in (table[s.split("=")[0]][k] for s in specs)
        ]
        print(f"{BINS[k]:g}-{BINS[k + 1]:g} | " + " | ".join(cells))
    ax.set(xscale="log", xlabel="pixel charge (p.e.)", ylabel="robust sigma of time residual (ns)")
    ax.set_ylim(bottom=0)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
