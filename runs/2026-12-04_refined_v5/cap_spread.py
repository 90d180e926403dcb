"""Spread of the refiner's log ratio within one shower (draws at its simulated size) vs
between showers: what a per-shower cap could gain over the global cap.

``python cap_spread.py MODEL TRAINING_FILE N_SHOWERS DRAWS`` (output: ``cap_spread.txt``).
The "per-shower cap" line caps each shower at the largest ratio of its own draws: an
optimistic bound that a real cap (a quantile of the shower's ratio) would not reach.
"""

import sys

import numpy as np

from ctapipe_genshower.data.training_file import TrainingFile
from ctapipe_genshower.generator import ShowerGenerator
from ctapipe_genshower.io.reselection import ImageReselection
from ctapipe_genshower.refine import _columns

model, train = sys.argv[1], sys.argv[2]
n_showers, k = int(sys.argv[3]), int(sys.argv[4])
gen = ShowerGenerator.from_file(model)
ref = gen.refiner
tf = TrainingFile(train)
rng = np.random.default_rng(11)
idx = np.sort(rng.choice(len(tf), n_showers, replace=False))
arrays = tf.take(idx)
cond = np.asarray(arrays["conditions"], float)
size = gen.simulated_size(arrays)
sel = ImageReselection(gen.subarray, gen.training_meta["tel_ids"][0], gen.selection)
c_rep = np.repeat(cond, k, axis=0)
s_rep = np.repeat(size, k)
seeds = rng.integers(0, 2**62, size=len(c_rep))
out = gen.generate(c_rep, seeds, size=s_rep, batch_size=64)
table, finite = sel.parameters(out["image"], out["peak_time"])
passed = np.asarray(sel.query.get_table_mask(table), bool) & finite
lr = ref.log_ratio(_columns(table, ref.features), c_rep)
lr = np.where(passed, lr, np.nan).reshape(n_showers, k)
a = np.minimum(np.exp(lr - ref.log_cap), 1.0)
ok = np.sum(np.isfinite(lr), axis=1) >= k // 2
lr, a = lr[ok], a[ok]
mean_c = np.nanmean(lr, axis=1)
within = np.nanmean(np.nanvar(lr, axis=1))
print(f"showers {ok.sum()} of {n_showers}, draws per shower {k}, pass {np.mean(passed):.3f}")
print(
    f"log r: total var {np.nanvar(lr):.3f}, between-shower var of the mean"
    f" {np.var(mean_c):.3f}, mean within {within:.3f}"
)
acc_c = np.nanmean(a, axis=1)
print(
    f"global cap: mean acceptance {np.nanmean(a):.4f},"
    f" mean draws per event {np.mean(1 / np.maximum(acc_c, 1e-6)):.1f}"
)
# a per-shower cap at the shower's own largest ratio among its k draws (optimistic: k draws)
amax = np.exp(lr - np.nanmax(lr, axis=1, keepdims=True))
print(
    f"per-shower cap (max of {k} draws):"
    f" mean draws per event {np.mean(1 / np.nanmean(amax, axis=1)):.1f}"
)
