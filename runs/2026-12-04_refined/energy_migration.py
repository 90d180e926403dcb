"""Why the student's background IRF disagrees: its peak-time spread drives the energy regressor.

Applies the IRF chain's energy regressor (``energy.pkl``, trained on toy gammas) to the
student's generated protons and to the simulated ones, then again to the generated protons
with ``timing_deviation`` and ``peak_time_std`` scaled to the simulation's medians.

    python energy_migration.py IRF_DIR

(``IRF_DIR`` holds energy.pkl, proton_generated.dl1.h5 and proton_test.dl1.h5.)
"""

import sys
from pathlib import Path

import numpy as np
from ctapipe.io import TableLoader
from ctapipe.reco import EnergyRegressor

irf = Path(sys.argv[1])
regressor = EnergyRegressor.read(irf / "energy.pkl")  # the user's own file: trusted
key = next(iter(regressor._models))


def median_log_energy(table):
    out = regressor.predict_table(key, table)
    out = out[next(iter(out))] if isinstance(out, dict) else out
    column = next(c for c in out.colnames if c.endswith("energy"))
    return np.nanmedian(np.log10(np.asarray(getattr(out[column], "value", out[column]))))


tables = {}
for name in ("proton_generated", "proton_test"):
    with TableLoader(irf / f"{name}.dl1.h5") as loader:
        t = loader.read_telescope_events([1], dl1_parameters=True, simulated=True)
    tables[name] = t[np.asarray(t["hillas_intensity"]) >= 250]
gen, sim = tables["proton_generated"], tables["proton_test"]
for label, t in (("generated", gen), ("simulated", sim)):
    print(
        f"{label}: {len(t)} events, median log10 E_reco/TeV {median_log_energy(t):.3f},"
        f" median timing_deviation {np.median(t['timing_deviation']):.2f} ns,"
        f" median peak_time_std {np.median(t['peak_time_std']):.2f} ns"
    )
scaled = gen.copy()
for column in ("timing_deviation", "peak_time_std"):
    scaled[column] = scaled[column] * (np.median(sim[column]) / np.median(gen[column]))
    print(f"generated, {column} scaled to the simulation's median: {median_log_energy(scaled):.3f}")
