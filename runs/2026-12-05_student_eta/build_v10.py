"""Write the v10 model file from the refit made with the patched sampler (``refit.sh``).

The refit ran before the refine tool had ``--eta``; the tool now reproduces it bit for bit
(checked on 150 images: the same pairs and refiner weights). This writes what
``ctapipe-genshower-refine --eta=1 --eta=1 --eta=0 --eta-channels=0`` would have written:
the student with the refit's refiner, the refiner's sampling record and the model's
default sampler set to that eta.

python build_v10.py RAW_REFIT STUDENT OUTPUT
"""

import sys
from dataclasses import replace

from ctapipe_genshower.checkpoint import load_generator_modules, read_metadata, save_refined
from ctapipe_genshower.model.config import ModelConfig

ETA, ETA_CHANNELS = (1.0, 1.0, 0.0), (0,)


def main(raw, student, output):
    refiner = load_generator_modules(raw).refiner
    refiner.info["sampling"] = {
        **refiner.info["sampling"],
        "eta": list(ETA),
        "eta_channels": list(ETA_CHANNELS),
    }
    record = read_metadata(raw)["provenance"]["refinement"]
    config = ModelConfig.from_dict(read_metadata(student)["config"]["model"])
    save_refined(
        student,
        output,
        refiner,
        provenance={"training_file": record["training_file"], "n_events": record["n_events"]},
        model_config=replace(config, default_eta=ETA, eta_channels=ETA_CHANNELS),
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
