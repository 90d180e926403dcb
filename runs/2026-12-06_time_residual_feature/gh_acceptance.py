"""Do the refiners disfavour gamma-like images? Relative acceptance by gammaness.

python gh_acceptance.py DL1 DL2 V7_MODEL V11_MODEL: the selected images of a DL1 file (their
conditions read back as training reads them), their gammaness from the IRF chain's classifier
(``DL2``, made by ``../2026-12-04_gh_tail/gh_tail.sh``), and each refiner's acceptance
probability divided by its mean over the file, for gammaness >= 0.5 and >= 0.7 vs the rest.
"""

import sys

import numpy as np
from ctapipe.io import read_table

from ctapipe_genshower.data.dl1 import DL1TrainingReader
from ctapipe_genshower.generator import ShowerGenerator
from ctapipe_genshower.io.reselection import ImageReselection

GH_TABLE = "/dl2/event/telescope/particle_type/ExtraTreesClassifier/tel_001"


def main(dl1, dl2, *models):
    arrays = DL1TrainingReader(input_files=[dl1]).read()
    params = read_table(dl1, "/dl1/event/telescope/parameters/tel_001")
    event_ids = np.asarray(params["event_id"])[np.asarray(params["hillas_intensity"]) >= 250]
    assert len(event_ids) == len(arrays.conditions)  # the same selection, in file order
    table = read_table(dl2, GH_TABLE)
    by_event = dict(
        zip(
            np.asarray(table["event_id"]),
            np.asarray(table["ExtraTreesClassifier_tel_prediction"]),
            strict=True,
        )
    )
    gammaness = np.array([by_event.get(e, np.nan) for e in event_ids])
    relative = {}
    for path in models:
        generator = ShowerGenerator.from_file(path)
        reselection = ImageReselection(
            generator.subarray, 1, generator.selection, refiner=generator.refiner
        )
        acceptance = reselection(
            arrays.image, arrays.peak_time, np.asarray(arrays.conditions, dtype=np.float64)
        )
        relative[path] = acceptance / acceptance.mean()
    print(f"{dl1}: {len(event_ids)} selected images")
    for cut in (0.5, 0.7):
        like = gammaness >= cut
        print(f"  gammaness >= {cut}: {like.sum()} images")
        for path, r in relative.items():
            print(f"    {path}: {r[like].mean():.3f} (the others {r[~like].mean():.3f})")


if __name__ == "__main__":
    main(*sys.argv[1:])
