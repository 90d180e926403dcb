"""The refiner's classifier settings at 156,000 image pairs: held-out loss and what the
rejection keeps.

Refits v14's classifier (same pairs files, features, seed and split) with more epochs and a
wider MLP, without the marginal calibration, and prints for each: the held-out balanced
cross-entropy after the temperature, AUC, best epoch, acceptance at the cap, fit time, and
the emulated W1 / floor of every parameter (``emulation.py``: the held-out generated images
weighted as the rejection keeps them, every group of like size giving its own events).

    python fit_study.py MODEL PAIRS [PAIRS ...]
"""

import sys
import time

import numpy as np
from emulation import group_weights, held_out, w1
from safetensors.numpy import load_file

from ctapipe_genshower.generator import ShowerGenerator
from ctapipe_genshower.refine import pair_columns
from ctapipe_genshower.training.density_ratio import fit_density_ratio

VARIANTS = {
    "v14 settings": {},
    "120 epochs": {"epochs": 120},
    "4 x 256": {"width": 256},
    "4 x 256, 120 epochs": {"width": 256, "epochs": 120},
}


def classifier_options(refiner):
    """The fit options of ``refiner``'s classifier, without its marginal calibration."""
    skip = ("marginal_calibration", "marginal_parameters")
    return {k: v for k, v in refiner.info["fit_options"].items() if k not in skip}


def main(model, *pairs_files, variants=VARIANTS):
    base = ShowerGenerator.from_file(model).refiner
    options = classifier_options(base)
    columns = pair_columns(base.features)
    files = [load_file(path) for path in pairs_files]
    simulated = np.concatenate([f["simulated"] for f in files])[:, columns]
    generated = np.concatenate([f["generated"] for f in files])[:, columns]
    sim, gen, partner = held_out(pairs_files, columns)
    groups = np.floor(partner / 0.05).astype(int)
    names = [name for name, _ in base.features]
    half = len(sim) // 2
    floor = [w1(sim[:half, k], sim[half:, k]) for k in range(len(names))]
    rows = {}
    for tag, change in variants.items():
        start = time.perf_counter()
        refiner = fit_density_ratio(
            simulated, generated, features=base.features, seed=0, **{**options, **change}
        )
        seconds = time.perf_counter() - start
        info = refiner.info
        log_r = refiner.log_ratio_of_features(gen)
        weights, _ = group_weights(np.exp(log_r), groups, "rejection", refiner.log_cap)
        ratios = [w1(sim[:, k], gen[:, k], weights) / floor[k] for k in range(len(names))]
        rows[tag] = ratios
        print(
            f"{tag:22s} loss {info['validation_loss_calibrated']:.4f}"
            f" AUC {info['auc_validation']:.4f} best epoch {info['best_epoch']}"
            f" T {info['temperature']:.3f} acceptance {info['acceptance']:.4f}"
            f" ({seconds:.0f} s)",
            flush=True,
        )
    print(f"\n{'W1 / floor':30s}" + "".join(f"{tag:>22s}" for tag in rows))
    for k, name in enumerate(names):
        label = name + ":" + base.features[k][1]
        print(f"{label:30s}" + "".join(f"{rows[tag][k]:22.2f}" for tag in rows))


if __name__ == "__main__":
    main(*sys.argv[1:])
