"""Peak-time spread of generated images for the training file's showers, model by model.

N showers of the training file, one selected image each from every model (DDIM at the given
steps, redraws on); medians of the cleaned images' peak-time parameters::

    python time_spread.py 400 train8.training.safetensors \
        teacher=default_model.safetensors:20 asinh=asinh.safetensors:20 > time_spread.txt
"""

import sys
import time

import numpy as np

from ctapipe_genshower.data.training_file import TrainingFile
from ctapipe_genshower.generator import ShowerGenerator
from ctapipe_genshower.io.reselection import ImageReselection

N = int(sys.argv[1])
tf = TrainingFile(sys.argv[2])
models = [spec.split("=", 1) for spec in sys.argv[3:]]
idx = np.sort(np.random.default_rng(3).choice(len(tf), N, replace=False))
arr = tf.take(idx)
cond = np.asarray(arr["conditions"], float)
first = ShowerGenerator.from_file(models[0][1].rsplit(":", 1)[0], device="cpu")
sel = ImageReselection(first.subarray, 1, first.selection)


def report(name, params, ok, seconds):
    v = {
        k: np.asarray(getattr(params[k], "value", params[k]))[ok]
        for k in ("peak_time_std", "timing_deviation", "timing_slope", "hillas_intensity")
    }
    median = {k: np.median(np.abs(x) if k == "timing_slope" else x) for k, x in v.items()}
    print(
        f"{name:16s} n={ok.sum():4d} median peak_time_std {median['peak_time_std']:.3f}"
        f" timing_deviation {median['timing_deviation']:.3f}"
        f" |timing_slope| {median['timing_slope']:.2f} size {median['hillas_intensity']:.0f}"
        f"  ({seconds:.0f}s)",
        flush=True,
    )


params, _ = sel.parameters(arr["image"], arr["peak_time"])
report("simulated", params, np.ones(N, bool), 0)
for name, spec in models:
    path, steps = spec.rsplit(":", 1)
    t0 = time.time()
    gen = ShowerGenerator.from_file(path, device="cpu")
    out = gen.generate(
        cond, idx + 5_000_000, n_steps=int(steps), batch_size=64, accept=sel, max_redraws=10
    )
    params, _ = sel.parameters(out["image"], out["peak_time"])
    report(f"{name} ddim{steps}", params, out["accepted"], time.time() - t0)
