"""Peak-time spread of generated images for the training file's showers: sampler vs model.

400 showers of the training file (toy runs 101-108), one image each from the student, the
bundled teacher with three samplers and the signal model; medians of the cleaned images'
peak-time parameters::

    python time_spread.py 400 train8.training.safetensors default_model.safetensors \
        student4.safetensors signal_12000.safetensors > time_spread.txt
"""

import sys
import time

import numpy as np

from ctapipe_genshower.data.training_file import TrainingFile
from ctapipe_genshower.generator import ShowerGenerator
from ctapipe_genshower.io.reselection import ImageReselection

N = int(sys.argv[1])
training_file, teacher, student, signal = sys.argv[2:6]
tf = TrainingFile(training_file)
idx = np.sort(np.random.default_rng(3).choice(len(tf), N, replace=False))
arr = tf.take(idx)
cond = np.asarray(arr["conditions"], float)
runs = [
    ("simulated", None, None, None),
    ("student4 ddim4", student, "ddim", 4),
    ("teacher ddim20", teacher, "ddim", 20),
    ("teacher dpmpp16", teacher, "dpmpp-2m", 16),
    ("teacher ddim50", teacher, "ddim", 50),
    ("signal ddim20", signal, "ddim", 20),
]
sel = None
for name, model, solver, steps in runs:
    t0 = time.time()
    if model is None:
        gen = ShowerGenerator.from_file(teacher, device="cpu")
        sel = ImageReselection(gen.subarray, 1, gen.selection)
        p, _ = sel.parameters(arr["image"], arr["peak_time"])
        ok = np.ones(N, bool)
    else:
        gen = ShowerGenerator.from_file(model, device="cpu")
        out = gen.generate(
            cond,
            idx + 5_000_000,
            n_steps=steps,
            solver=solver,
            batch_size=64,
            accept=sel,
            max_redraws=10,
        )
        p, _ = sel.parameters(out["image"], out["peak_time"])
        ok = out["accepted"]
    v = {
        k: np.asarray(getattr(p[k], "value", p[k]))[ok]
        for k in ("peak_time_std", "timing_deviation", "timing_slope", "hillas_intensity")
    }
    median = {k: np.median(np.abs(x) if k == "timing_slope" else x) for k, x in v.items()}
    print(
        f"{name:16s} n={ok.sum():4d} median peak_time_std {median['peak_time_std']:.3f}"
        f" timing_deviation {median['timing_deviation']:.3f}"
        f" |timing_slope| {median['timing_slope']:.2f} size {median['hillas_intensity']:.0f}"
        f"  ({time.time() - t0:.0f}s)",
        flush=True,
    )
