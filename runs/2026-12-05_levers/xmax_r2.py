"""How much of the image shape does the depth of the shower (x_max, h_first_int) explain
beyond the shower conditions and the size? (The fidelity issue's lever 4.)

For the selected events of a toy run (``hillas_intensity >= 250``), each image parameter is
regressed (gradient-boosted trees, 4-fold cross-validated R^2) on log10 E, core x/y, true
alt/az and log10 size, then with ``true_x_max`` or ``true_h_first_int`` added.

    python xmax_r2.py run_201.dl1.h5
"""

import sys

import numpy as np
from ctapipe.io import TableLoader
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.model_selection import cross_val_score

PARAMETERS = [
    "hillas_length",
    "hillas_width",
    "hillas_skewness",
    "hillas_kurtosis",
    "timing_slope",
    "timing_deviation",
    "concentration_cog",
    "morphology_n_islands",
    "hillas_r",
]

with TableLoader(sys.argv[1], dl1_parameters=True, simulated=True, instrument=False) as loader:
    table = loader.read_telescope_events()
table = table[table["hillas_intensity"] >= 250]


def column(name):
    return np.asarray(table[name], float)


base = np.column_stack(
    [np.log10(column("true_energy"))]
    + [column(c) for c in ("true_core_x", "true_core_y", "true_alt", "true_az")]
    + [np.log10(column("hillas_intensity"))]
)
designs = {
    "conditions + size": base,
    "+ x_max": np.column_stack([base, column("true_x_max")]),
    "+ h_first_int": np.column_stack([base, column("true_h_first_int")]),
}
print(f"{len(table)} selected events; cross-validated R^2 (4 folds)")
print(f"| parameter | {' | '.join(designs)} |")
print(f"| --- |{' --- |' * len(designs)}")
for name in PARAMETERS:
    y = column(name)
    ok = np.isfinite(y)
    r2 = [
        cross_val_score(
            HistGradientBoostingRegressor(max_iter=150, random_state=0),
            x[ok],
            y[ok],
            cv=4,
            scoring="r2",
        ).mean()
        for x in designs.values()
    ]
    print(f"| {name} | {' | '.join(f'{r:.3f}' for r in r2)} |")
