"""What a higher cap would cost in one size range: the cap that leaves a given clipped mass.

usage: python cap_cost.py DRAWS.npy [LOG_CAP]
"""

import sys

import numpy as np

log_r, _, size = np.load(sys.argv[1]).T
log_cap = float(sys.argv[2]) if len(sys.argv) > 2 else 2.716
caps = np.linspace(log_cap, 8.0, 531)
for lo, hi in ((300, 500), (500, 1500), (1500, np.inf)):
    r = np.exp(log_r[(size >= lo) & (size < hi)])

    def clipped_mass(cap, r=r):
        return np.maximum(r - np.exp(cap), 0).sum() / r.sum()

    def acceptance(cap, r=r):
        return np.minimum(r, np.exp(cap)).mean() / np.exp(cap)

    top = np.sort(r)[::-1]
    print(
        f"size {lo}-{hi} p.e.: {len(r)} draws, the 10 largest ratios hold"
        f" {top[:10].sum() / r.sum():.3f} of the mass, largest log r {np.log(top[0]):.2f};"
        f" clipped mass at the cap {clipped_mass(log_cap):.3f}"
    )
    for target in (0.30, 0.15):
        masses = np.array([clipped_mass(c) for c in caps])
        cap = caps[np.argmax(masses <= target)]
        draws = acceptance(log_cap) / acceptance(cap)
        print(
            f"  clipped mass {target}: log cap {cap:.2f}, {draws:.1f}x the draws,"
            f" clipped draws {np.mean(np.log(r) > cap):.4f}"
        )
