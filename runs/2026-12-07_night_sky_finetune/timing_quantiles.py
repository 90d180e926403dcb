"""Quantiles of the selected images' ``timing_deviation`` (ctapipe's timing fit), per file.

usage: python timing_quantiles.py FILE.dl1.h5 [FILE.dl1.h5 ...]

Where the W1 distance of ``timing_deviation`` comes from: the bulk of the images (q10, q50)
or their tail (q90, q99). Images with size > 250 p.e. (the training selection).
"""

import sys

import numpy as np
from ctapipe.io import TableLoader

LEVELS = (0.1, 0.5, 0.9, 0.99)

print("| file | images | " + " | ".join(f"q{round(100 * q)}" for q in LEVELS) + " |")
print("|" + " --- |" * (len(LEVELS) + 2))
for path in sys.argv[1:]:
    with TableLoader(path) as loader:
        events = loader.read_telescope_events(dl1_parameters=True)
    events = events[events["hillas_intensity"] > 250]
    deviation = np.asarray(events["timing_deviation"], dtype=float)
    deviation = deviation[np.isfinite(deviation)]
    cells = " | ".join(f"{q:.3f}" for q in np.quantile(deviation, LEVELS))
    print(f"| {path.rsplit('/', 1)[-1]} | {deviation.size} | {cells} |")
