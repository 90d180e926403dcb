"""Train on the fixed-time file with the time transform of another model (the clean test).

usage: python train_kept.py TIME_TRANSFORM_MODEL [ctapipe-genshower-train arguments]

``ctapipe-genshower-train`` as given, except that the peak-time transform it fits is replaced
by ``TIME_TRANSFORM_MODEL``'s (here L5's, fitted on the original 16-run file), so that only
the night-sky pixels' targets differ from L5's run, not the network's time units. A
prototype: the package has no such option.
"""

import os
import sys

from ctapipe.core import run_tool

from ctapipe_genshower.checkpoint import load_generator_modules
from ctapipe_genshower.tools.train import TrainTool
from ctapipe_genshower.training import loop


def main(model, argv):
    kept = load_generator_modules(model).transforms["time"]
    fit = loop.Trainer._fit_transforms

    def fit_keeping_time(self):
        transforms = fit(self)
        transforms["time"] = kept
        return transforms

    loop.Trainer._fit_transforms = fit_keeping_time
    return run_tool(TrainTool(), argv=argv, cwd=os.getcwd(), raises=False)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
