"""Selected events per thrown shower, generated vs toy, per true-energy bin.

Usage: python selected_rate.py GENERATED.dl1.h5 TOY.dl1.h5
"""

import sys

import numpy as np
from astropy.table import join
from ctapipe.io import read_table


def selected_energies(path):
    p = read_table(path, "/dl1/event/telescope/parameters/tel_001")
    s = read_table(path, "/simulation/event/subarray/shower")
    t = join(
        p["obs_id", "event_id", "hillas_intensity"],
        s["obs_id", "event_id", "true_energy"],
        keys=["obs_id", "event_id"],
    )
    n_thrown = int(read_table(path, "/configuration/simulation/run")["n_showers"].sum())
    e = np.asarray(t["true_energy"])[np.asarray(t["hillas_intensity"]) >= 250]
    return e, n_thrown


gen, n_gen = selected_energies(sys.argv[1])
ref, n_ref = selected_energies(sys.argv[2])
edges = 10 ** np.arange(-1, 2.01, 0.5)
expected = len(ref) * n_gen / n_ref
print(f"overall: {len(gen)} vs {expected:.0f} expected, ratio {len(gen) / expected:.3f}")
hg, _ = np.histogram(gen, edges)
hr, _ = np.histogram(ref, edges)
for lo, hi, a, b in zip(edges[:-1], edges[1:], hg, hr, strict=False):
    exp = b * n_gen / n_ref
    r = a / exp
    err = r * np.sqrt(1 / max(a, 1) + 1 / max(b, 1))
    print(f"{lo:.2f}-{hi:.2f} TeV: {a} vs {exp:.0f}: {r:.2f} +- {err:.2f}")
