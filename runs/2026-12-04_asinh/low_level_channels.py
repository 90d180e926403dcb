"""What the low-level (CNN) test reads: the same CNN on three views of the same images.

Selected images (``hillas_intensity >= 250``, first 1790) of a generated file and a toy run;
the CNN of ``ctapipe-genshower-validate`` on (1) the size-normalised charges only, (2) plus
the peak times of the cleaned pixels (others 0), (3) plus every pixel's peak time (what the
report uses)::

    python low_level_channels.py gen_asinh_1M.dl1.h5 run_201.dl1.h5
"""

import sys

import numpy as np
import tables
from ctapipe.instrument import SubarrayDescription

from ctapipe_genshower.validation.image_classifier import (
    image_classifier_two_sample_test,
    images_to_grid,
)


def load(path):
    geom = SubarrayDescription.from_hdf(path).tel[1].camera.geometry
    with tables.open_file(path) as f:
        images = f.root.dl1.event.telescope.images.tel_001.read()
        params = f.root.dl1.event.telescope.parameters.tel_001.read()
    return geom, images[params["hillas_intensity"] >= 250][:1790]


geom, generated = load(sys.argv[1])
_, reference = load(sys.argv[2])
views = {
    "charge only": lambda e: images_to_grid(geom, e["image"]),
    "charge + times of cleaned pixels": lambda e: images_to_grid(
        geom, e["image"], np.where(e["image_mask"], e["peak_time"], np.nan)
    ),
    "charge + all times": lambda e: images_to_grid(geom, e["image"], e["peak_time"]),
}
for label, view in views.items():
    result = image_classifier_two_sample_test(
        np.nan_to_num(view(generated)), np.nan_to_num(view(reference)), seed=0
    )
    print(
        f"{sys.argv[1]}: {label}: AUC {result['auc']:.3f} +- {result['auc_error']:.3f}", flush=True
    )
