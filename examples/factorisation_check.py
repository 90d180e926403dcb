"""Is the signal/noise factorisation lossless? A toy run's true images through a learned response.

Writes a copy of a simulated DL1 file whose images are the file's own true images passed through
the pixel response learned from a training file (DL1 peak times kept in signal pixels, noise
times drawn), to be compared with an independent simulated run by ctapipe-genshower-validate:

    python examples/factorisation_check.py train.training.safetensors run_202.dl1.h5 check.dl1.h5
    ctapipe-genshower-validate --generated check.dl1.h5 --reference run_201.dl1.h5 -o check

(docs/ablation.md: at the MC-vs-MC floor for the toy.)
"""

import shutil
import sys

import numpy as np
import tables

from ctapipe_genshower.data import TrainingFile
from ctapipe_genshower.model.pixel_response import PixelResponse


def main(training_file, simulated, output, n_fit=20_000):
    pairs = TrainingFile(training_file).read(0, n_fit)
    if "true_image" not in pairs:
        sys.exit(f"{training_file} holds no true images")
    response = PixelResponse.fit(pairs["true_image"], pairs["image"], pairs["peak_time"])
    shutil.copy(simulated, output)
    with tables.open_file(output, "r+") as h5:
        for dl1 in h5.root.dl1.event.telescope.images:
            true = h5.root.simulation.event.telescope.images[dl1._v_name]
            if not np.array_equal(dl1.col("event_id"), true.col("event_id")):
                sys.exit(f"{simulated}: DL1 and true images of {dl1._v_name} differ in events")
            for start in range(0, dl1.nrows, 2000):
                stop = min(dl1.nrows, start + 2000)
                rows = dl1.read(start, stop)
                signal = true.read(start, stop, field="true_image")
                rngs = [np.random.default_rng([99, int(e)]) for e in rows["event_id"]]
                rows["image"], rows["peak_time"] = response.apply(signal, rows["peak_time"], rngs)
                dl1.modify_rows(start, stop, rows=rows)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
