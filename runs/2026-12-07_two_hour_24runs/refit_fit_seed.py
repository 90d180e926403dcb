"""The 24-run refiner refitted from the same pairs files with another classifier-fit seed.

usage: python refit_fit_seed.py FIT_SEED REFINE_TOOL_ARGS...

Kept as the record of what was run: the tool has since had ``--fit-seed``, which does the same.

``ctapipe-genshower-refine --seed`` sets both the pairs and the fit, and a pairs file is read
only with the seed it was made with; ``refine_model`` takes the fit's own seed in its
``fit_options`` (its ``seed`` entry overrides the pairs seed there), which this wrapper sets.
The pairs are the pairs files' (made with the tool's seed, 0); the split into fit and
held-out images, the classifier's initial weights and batch order, and with the split the
held-out images of the marginal calibration, follow FIT_SEED.
"""

import sys

import ctapipe_genshower.refine as refine
from ctapipe_genshower.tools.refine import RefineTool

fit_seed = int(sys.argv[1])
refine_model = refine.refine_model


def refine_model_with_fit_seed(*args, fit_options=None, **kwargs):
    return refine_model(*args, fit_options={**(fit_options or {}), "seed": fit_seed}, **kwargs)


refine.refine_model = refine_model_with_fit_seed
RefineTool().run(sys.argv[2:])
