"""The refiner's ratio of the recorded draws by size: quantiles, clipped draws, clipped mass.

usage: python cap_by_size.py DRAWS.npy [LOG_CAP]

``clipped mass``: the share of the estimated target mass, ``E[max(r - r_max, 0)] / E[r]``
over the draws of a size range, that the cap leaves under-represented (if the ratio's
extremes were right). LOG_CAP: the model's (``ctapipe-genshower-info``), 2.716 for v14.
"""

import itertools
import sys

import numpy as np

log_r, intensity, size = np.load(sys.argv[1]).T
log_cap = float(sys.argv[2]) if len(sys.argv) > 2 else 2.716
print(f"{len(log_r)} draws; log r quantiles 0.5 / 0.99 / 0.995 of all draws:", end=" ")
print(" / ".join(f"{q:.2f}" for q in np.quantile(log_r, [0.5, 0.99, 0.995])))
correlation = np.corrcoef(np.log(size), np.log(intensity))[0, 1]
print(f"log cap {log_cap}; corr(log size, log hillas_intensity) {correlation:.3f}")
edges = [0, 300, 400, 500, 700, 1000, 1500, 3000, np.inf]
for label, values in (("size (p.e., drawn)", size), ("hillas_intensity (p.e.)", intensity)):
    print(f"\nby {label}:")
    print("| range | draws | log r q0.99 | q0.995 | clipped draws | clipped mass | mean r |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for lo, hi in itertools.pairwise(edges):
        m = (values >= lo) & (values < hi)
        if m.sum() < 100:
            continue
        r = np.exp(log_r[m])
        clipped_mass = np.maximum(r - np.exp(log_cap), 0).sum() / r.sum()
        print(
            f"| {lo:.0f}-{hi:.0f} | {m.sum()} | {np.quantile(log_r[m], 0.99):.2f} |"
            f" {np.quantile(log_r[m], 0.995):.2f} | {np.mean(log_r[m] > log_cap):.4f} |"
            f" {clipped_mass:.3f} | {r.mean():.2f} |"
        )
