"""Record every draw of a refined generation: its acceptance (0: failed the selection).

usage: python record_selection.py N_SHOWERS SEED OUT  ->  OUT.dl1.h5, OUT.npy, a summary line

``OUT.npy`` holds one row per draw: the answer of the re-selection (0 for an image failing
the training selection, else the refiner's acceptance probability), ``hillas_intensity`` of
the cleaned image and the size the image was drawn for. It patches the re-selection's
``__call__`` and the private ``ShowerGenerator._accept`` in this process (a study script).
"""

import sys
from pathlib import Path

import numpy as np
from ctapipe.core import run_tool
from ctapipe.io import read_table

from ctapipe_genshower import generator
from ctapipe_genshower.io import reselection
from ctapipe_genshower.tools.generate import GenerateTool

answers, sizes = [], []
select = reselection.ImageReselection.__call__
accept = generator.ShowerGenerator._accept


def recording_select(self, images, peak_times, conditions=None):
    answer = select(self, images, peak_times, conditions)
    table, _ = self.mask_parameters(images, peak_times)
    answers.append(np.c_[np.asarray(answer, float), table["hillas_intensity"].value])
    return answer


def recording_accept(accept_function, drawn, conditions, uniforms):
    sizes.append(np.asarray(drawn["size"]))
    return accept(accept_function, drawn, conditions, uniforms)


reselection.ImageReselection.__call__ = recording_select
generator.ShowerGenerator._accept = staticmethod(recording_accept)
# absolute: ctapipe's run_tool runs the tool in a temporary directory
n_showers, seed, out = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]).resolve()
argv = [
    f"--DiffusionEventSource.n_showers={n_showers}",
    f"--DiffusionEventSource.seed={seed}",
    f"--output={out}.dl1.h5",
    "--overwrite",
    "--no-progress",
]
run_tool(GenerateTool(), argv, raises=True)
# the re-selection's first call is its own warm-up on an empty image, not a draw
draws = np.c_[np.concatenate(answers[1:]), np.concatenate(sizes)]
np.save(f"{out}.npy", draws)
n_events = len(read_table(f"{out}.dl1.h5", "/dl1/event/subarray/trigger"))
passed = np.count_nonzero(draws[:, 0] > 0)
print(
    f"{n_events} events, {len(draws)} draws ({len(draws) / n_events:.1f} per event),"
    f" {1 - passed / len(draws):.1%} failing the selection,"
    f" {passed / n_events:.1f} judged by the refiner per event"
)
