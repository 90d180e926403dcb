"""Simulated vs generated images of the same showers, with all their ctapipe parameters.

The model's image for each of ``N`` showers of a training file (seed 1e6 + index, redraws for
the selection as the source makes them), then both parameterised; written as an ``.npz``
(``real_*``, ``gen_*`` columns, ``conditions``)::

    python paired_sample.py student4.safetensors pairs.npz 40000 train8.training.safetensors
"""

import sys
import time

import numpy as np

from ctapipe_genshower.data.training_file import TrainingFile
from ctapipe_genshower.generator import ShowerGenerator
from ctapipe_genshower.io.reselection import ImageReselection

model, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
tf = TrainingFile(sys.argv[4])
rng = np.random.default_rng(0)
idx = np.sort(rng.choice(len(tf), size=min(n, len(tf)), replace=False))
arr = tf.take(idx)
gen = ShowerGenerator.from_file(model, device="cpu")
sel = ImageReselection(gen.subarray, gen.training_meta["tel_ids"][0], gen.selection)
t0 = time.time()
real, _ = sel.parameters(arr["image"], arr["peak_time"])
print("real params", time.time() - t0, flush=True)
cond = arr["conditions"]
res = {}
for start in range(0, len(idx), 2048):
    sl = slice(start, start + 2048)
    o = gen.generate(cond[sl], idx[sl] + 1_000_000, batch_size=64, accept=sel, max_redraws=10)
    p, _ = sel.parameters(o["image"], o["peak_time"])
    for k, v in p.items():
        res.setdefault(k, []).append(np.asarray(v.value if hasattr(v, "value") else v))
    res.setdefault("n_draws", []).append(o["n_draws"])
    res.setdefault("accepted", []).append(o["accepted"])
    print(start, time.time() - t0, flush=True)
np.savez(
    out,
    conditions=cond,
    idx=idx,
    **{"real_" + k: np.asarray(v.value if hasattr(v, "value") else v) for k, v in real.items()},
    **{"gen_" + k: np.concatenate(v) for k, v in res.items()},
)
print("done", time.time() - t0)
