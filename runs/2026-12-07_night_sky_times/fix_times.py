"""A training file whose night-sky pixels all have one peak time.

usage: python fix_times.py INPUT.train.safetensors OUTPUT.train.safetensors

Every pixel at or below 5 p.e. in the DL1 image (the tailcuts cleaning's boundary threshold:
never in a cleaned image) gets the same peak time, the median time of the bright pixels
(>= 10 p.e.) of the first 20,000 events: the centre of the time transform the training fits,
where its asinh is linear. Everything else (images, the other times, conditions, meta) is
copied. A prototype of a model that does not learn the night-sky pixels' random times.
"""

import sys

import numpy as np

from ctapipe_genshower.data import TrainingFile
from ctapipe_genshower.data.training_file import TrainingFileWriter

THRESHOLD = 5.0  # p.e.
BRIGHT = 10.0  # p.e., the time transform's bright pixels (transforms.SIGNAL_CHARGE)


def main(source, output):
    data = TrainingFile(source)
    first = data.read(0, 20_000)
    t0 = float(np.median(first["peak_time"][first["image"] >= BRIGHT]))
    n_fixed = n_pixels = 0
    with TrainingFileWriter(output, meta=data.meta) as writer:
        for chunk in data.iter_chunks(8192):
            night_sky = chunk["image"] <= THRESHOLD
            chunk["peak_time"] = np.where(night_sky, np.float32(t0), chunk["peak_time"])
            writer.append(chunk)
            n_fixed += int(night_sky.sum())
            n_pixels += night_sky.size
    print(f"{len(data)} events; {n_fixed / n_pixels:.4f} of the pixels at {t0:.3f} ns")


if __name__ == "__main__":
    main(*sys.argv[1:])
