"""Record every draw the refiner judges in a generation of the bundled default.

usage: python record_draws.py N_SHOWERS SEED OUT  ->  OUT.dl1.h5, OUT.npy

``OUT.npy`` holds one row per draw that passed the training selection: ``log r`` (the
refiner's log density ratio, before the cap), ``hillas_intensity`` and the draw's size (the
size the image was drawn for; within an event it stays fixed from the first passing draw).
"""

import sys

import numpy as np
from ctapipe.core import run_tool

from ctapipe_genshower import generator
from ctapipe_genshower.model import density_ratio
from ctapipe_genshower.tools.generate import GenerateTool

rows, current = [], {}
acceptance = density_ratio.DensityRatio.acceptance
accept = generator.ShowerGenerator._accept


def recording_acceptance(self, columns, conditions):
    current["log_r"] = self.log_ratio(columns, conditions)
    current["intensity"] = np.asarray(columns["hillas_intensity"])
    return acceptance(self, columns, conditions)


def recording_accept(accept_function, drawn, conditions, uniforms):
    current.clear()
    kept, probability = accept(accept_function, drawn, conditions, uniforms)
    if "log_r" in current:  # the refiner saw the draws that passed the selection
        judged = probability > 0
        assert len(current["log_r"]) == np.count_nonzero(judged)
        rows.append(np.c_[current["log_r"], current["intensity"], drawn["size"][judged]])
    return kept, probability


density_ratio.DensityRatio.acceptance = recording_acceptance
generator.ShowerGenerator._accept = staticmethod(recording_accept)
n_showers, seed, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
argv = [
    f"--DiffusionEventSource.n_showers={n_showers}",
    f"--DiffusionEventSource.seed={seed}",
    f"--output={out}.dl1.h5",
    "--overwrite",
    "--no-progress",
]
run_tool(GenerateTool(), argv, raises=True)
np.save(f"{out}.npy", np.concatenate(rows))
