"""cProfile of ShowerGenerator.generate on CUDA (the 4-step student, compiled, channels-last,
bf16, device noise): where the time goes outside the network."""

import cProfile
import pstats
import sys

import numpy as np
import torch

from ctapipe_genshower.data.arrays import CONDITION_COLUMNS
from ctapipe_genshower.generator import ShowerGenerator

model, n_events, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
gen = ShowerGenerator.from_file(model, device="cuda", device_noise=True, bf16=True, compile=True)
lo, hi = np.array([gen.domain[name] for name in CONDITION_COLUMNS]).T
rng = np.random.default_rng(1)
conditions = lo + (hi - lo) * rng.uniform(size=(n_events, len(lo)))
gen.generate(conditions[:batch], np.arange(batch), 4, batch_size=batch)  # compile, warm up
torch.cuda.synchronize()
profile = cProfile.Profile()
profile.enable()
gen.generate(conditions, np.arange(n_events), 4, batch_size=batch)
torch.cuda.synchronize()
profile.disable()
stats = pstats.Stats(profile)
stats.sort_stats("tottime").print_stats(25)
stats.sort_stats("cumulative").print_stats(30)
