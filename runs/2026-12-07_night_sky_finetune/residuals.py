"""Where the cleaned pixels' times sit around each image's time plane, by charge.

usage: python residuals.py FILE.dl1.h5 [FILE.dl1.h5 ...]

For every image that passes the training selection (size > 250 p.e.), a charge-weighted
least-squares plane t = a + b x + c y is fitted to the times of its cleaned pixels (the
file's ``image_mask``); the table gives, per charge bin of those pixels, the standard
deviation and the 90 % range of their residuals (ns): what ``timing_deviation`` sums up.
"""

import itertools
import sys

import numpy as np
from ctapipe.io import TableLoader

BINS = (5, 7, 10, 20, 50, np.inf)


def residuals(path):
    """Per charge bin, the residuals of all cleaned pixels of the selected images."""
    with TableLoader(path) as loader:
        events = loader.read_telescope_events(dl1_images=True, dl1_parameters=True)
        camera = loader.subarray.tel[1].camera.geometry
    x, y = camera.pix_x.to_value("m"), camera.pix_y.to_value("m")
    selected = events[events["hillas_intensity"] > 250]
    out = [[] for _ in BINS[:-1]]
    for image, time, mask in zip(
        selected["image"], selected["peak_time"], selected["image_mask"], strict=True
    ):
        if mask.sum() < 4:
            continue
        q, t = image[mask], time[mask]
        design = np.column_stack([np.ones(q.size), x[mask], y[mask]])
        w = np.sqrt(q)
        coef, *_ = np.linalg.lstsq(design * w[:, None], t * w, rcond=None)
        residual = t - design @ coef
        for i, (lo, hi) in enumerate(itertools.pairwise(BINS)):
            out[i].append(residual[(q > lo) & (q <= hi)])
    return len(selected), [np.concatenate(r) for r in out]


print(
    "| file | images | "
    + " | ".join(f"{lo}-{hi} p.e." for lo, hi in itertools.pairwise(BINS))
    + " |"
)
print("|" + " --- |" * (len(BINS) + 1))
for path in sys.argv[1:]:
    n, per_bin = residuals(path)
    cells = [
        f"{np.std(r):.3f} ({np.subtract(*np.percentile(r, [95, 5])):.2f}, {r.size})"
        for r in per_bin
    ]
    print(f"| {path.rsplit('/', 1)[-1]} | {n} | " + " | ".join(cells) + " |")
