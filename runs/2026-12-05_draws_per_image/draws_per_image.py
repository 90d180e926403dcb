"""Is the refiner's ratio better with several generated images per simulated image?

Held-out comparison on the 4-step student of the bundled default (no refiner) and the
`train8` training file. 12,000 of its images (seed 0) are split into A (4,000 fit images),
B (4,000 more fit images) and T (4,000 test images, never fitted). Arms, each fitted with
the refine tool's classifier settings (4 x 128, weight decay 0.1, batch 256, 60 epochs,
calibrated, seed 0):

* A, 1 draw per image        4,000 simulated vs  4,000 generated
* A, 4 draws per image       4,000 simulated vs 16,000 generated
* A + B, 1 draw per image    8,000 simulated vs  8,000 generated  (twice the simulation)

Score: the balanced cross-entropy and AUC of each fitted (calibrated) log-ratio on T's
pairs (one generated image per test image), the same rows for every arm.

usage: python draws_per_image.py STUDENT TRAINING_FILE > draws_per_image.txt
"""

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from ctapipe_genshower.data.training_file import TrainingFile, TrainingFileWriter
from ctapipe_genshower.generator import ShowerGenerator
from ctapipe_genshower.refine import paired_features
from ctapipe_genshower.training.density_ratio import fit_density_ratio

#: images per part (a smoke test runs it smaller)
N = int(os.environ.get("N_PER_PART", 4000))
FIT = {"width": 128, "depth": 4, "weight_decay": 0.1, "batch_size": 256, "epochs": 60}


def subset(source, indices, path):
    with TrainingFileWriter(path, meta=source.meta) as writer:
        for start in range(0, len(indices), 1024):
            writer.append(source.take(indices[start : start + 1024]))
    return path


def test_scores(refiner, sim, gen):
    log_r_sim = refiner.log_ratio_of_features(sim)
    log_r_gen = refiner.log_ratio_of_features(gen)
    bce = 0.5 * np.mean(np.logaddexp(0, -log_r_sim)) + 0.5 * np.mean(np.logaddexp(0, log_r_gen))
    labels = np.r_[np.ones(len(sim)), np.zeros(len(gen))]
    return bce, roc_auc_score(labels, np.r_[log_r_sim, log_r_gen])


def main(student, training_file):
    generator = ShowerGenerator.from_file(student, device="cpu")
    source = TrainingFile(training_file)
    chosen = np.random.default_rng(0).choice(len(source), size=3 * N, replace=False)
    parts = {name: np.sort(chosen[i * N : (i + 1) * N]) for i, name in enumerate("ABT")}
    features = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, draws, seed in (("A", 4, 1), ("A1", 1, 1), ("B", 1, 2), ("T", 1, 3)):
            path = subset(source, parts[name[0]], Path(tmp) / f"{name[0]}.safetensors")
            t0 = time.perf_counter()
            sim, gen, stats = paired_features(
                generator, path, None, seed=seed, draws_per_image=draws, progress=False
            )
            features[name] = sim, gen
            print(
                f"# {name}: {len(sim)} simulated, {len(gen)} generated, "
                f"{stats['draws_per_event']:.2f} draws/image, {time.perf_counter() - t0:.0f} s",
                flush=True,
            )
    arms = {
        "A, 1 draw per image": features["A1"],
        "A, 4 draws per image": features["A"],
        "A + B, 1 draw per image": (
            np.concatenate([features["A1"][0], features["B"][0]]),
            np.concatenate([features["A1"][1], features["B"][1]]),
        ),
    }
    print("| arm | simulated | generated | test BCE | test AUC | temperature |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, (sim, gen) in arms.items():
        refiner = fit_density_ratio(sim, gen, seed=0, **FIT)
        bce, auc = test_scores(refiner, *features["T"])
        print(
            f"| {name} | {len(sim)} | {len(gen)} | {bce:.4f} | {auc:.3f} | "
            f"{refiner.temperature:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main(*sys.argv[1:3])
