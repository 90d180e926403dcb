"""Each channel's validation loss of trained teachers, as their training measured it.

usage: python channel_losses.py TRAINING_FILE MODEL [MODEL ...] > channel_losses.md

The validation loss of ``ctapipe-genshower-train`` (the EMA weights in the model file; the
first 2,048 of the last 10 % of the training file's events, fixed times and noise from the
seed 1, bf16 autocast like the teachers' runs), split into the charge and peak-time channels,
unweighted, so teachers trained with other learning rates or channel weights compare. Each
channel's loss is also split into the pixels above 5 p.e. in the DL1 image (the shower's,
the ones the cleaning can keep) and the others (night-sky noise).
"""

import sys
import tempfile
from pathlib import Path

import torch

from ctapipe_genshower.checkpoint import load_generator_modules, read_metadata
from ctapipe_genshower.data import TrainingFile
from ctapipe_genshower.model.config import ModelConfig
from ctapipe_genshower.training.config import TrainConfig
from ctapipe_genshower.training.dataset import read_checked, split_dataset
from ctapipe_genshower.training.loop import Trainer
from ctapipe_genshower.training.stream import encode_batch

THRESHOLD = 5.0  # p.e., the training's shower-pixel threshold


def channel_losses(training_file, model):
    """The model's validation losses: ``loss`` (weighted), ``charge``, ``time``, and each
    channel on the shower pixels and the others; ``shower_fraction`` of the pixels."""
    train_set, validation = split_dataset(TrainingFile(training_file), 0.1)
    config = ModelConfig.from_dict(read_metadata(model)["config"]["model"])
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(
            train_set,
            Path(tmp) / "unused.state.safetensors",
            model_config=config,
            train_config=TrainConfig(seed=1, batch_size=32, mixed_precision="bf16"),
            validation=validation,
            initial=load_generator_modules(model),
        )
        trainer.setup(resume=False)
        loss, _, (charge, time) = trainer.validate()
        # the same images, times and noise as the validation loss (cached by validate)
        x, cond, t, eps = trainer._val
        _, _, size = encode_batch(read_checked(validation, 0, len(x)), trainer.transforms)
        pe = trainer.transforms["image"].inverse(x[:, 0].flatten(1), size, clip=False)
        shower = (pe.view_as(x[:, 0]) > THRESHOLD)[:, None].float()
        sums = {name: torch.zeros(2, dtype=torch.float64) for name in ("shower", "noise")}
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            for i in range(0, len(x), 32):
                d = slice(i, i + 32)
                for name, w in (("shower", shower[d]), ("noise", 1 - shower[d])):
                    # the mean over the pixels of one kind, weighted back to their sum
                    part = trainer.ema_denoiser.loss(
                        x[d], cond[d], t=t[d], eps=eps[d], pixel_weight=w, per_channel=True
                    )
                    n = float((w * trainer.ema_denoiser.mask).sum())
                    sums[name] += part.double() * n
    counts = {"shower": float((shower * trainer.ema_denoiser.mask).sum())}
    counts["noise"] = float(trainer.ema_denoiser.mask.sum()) * len(x) - counts["shower"]
    result = {"loss": loss, "charge": charge, "time": time}
    for name in ("shower", "noise"):
        mean = (sums[name] / counts[name]).tolist()
        result[f"charge_{name}"], result[f"time_{name}"] = mean
    result["shower_fraction"] = counts["shower"] / (counts["shower"] + counts["noise"])
    return result


if __name__ == "__main__":
    training_file, models = sys.argv[1], sys.argv[2:]
    columns = ["loss", "charge", "time", "charge_shower", "time_shower", "charge_noise"]
    columns += ["time_noise", "shower_fraction"]
    print("| model | channel weights | " + " | ".join(columns) + " |")
    print("| --- " * (len(columns) + 2) + "|")
    for model in models:
        weights = ModelConfig.from_dict(read_metadata(model)["config"]["model"]).channel_weights
        r = channel_losses(training_file, model)
        w = ", ".join(f"{x:g}" for x in weights)
        print(f"| {Path(model).stem} | {w} | " + " | ".join(f"{r[c]:.4f}" for c in columns) + " |")
