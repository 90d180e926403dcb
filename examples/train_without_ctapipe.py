"""Train the bundled default's recipe on a machine with PyTorch but without ctapipe (a GPU node).

The training file is made where ctapipe is installed (``ctapipe-genshower-train --prepare-only``)
and copied over; this script needs only torch, numpy and safetensors besides the package
itself (``pip install --no-deps -e .`` on the GPU node)::

    # where ctapipe is
    ctapipe-genshower-train -i 'protons_*.dl1.h5' --prepare-only \\
        --prepared-file protons.train.safetensors
    # on the GPU node
    python examples/train_without_ctapipe.py protons.train.safetensors model.safetensors \\
        --device cuda --steps 60000 --batch-size 128
    # continue a finished model (new learning-rate cycle), or fine-tune it on new data
    python examples/train_without_ctapipe.py protons.train.safetensors longer.safetensors \\
        --device cuda --init-model model.safetensors --steps 20000 --lr 2.5e-4
    # distil it into a 4-step student, on 200,000 images the teacher generates itself
    python examples/train_without_ctapipe.py protons.train.safetensors student.safetensors \\
        --device cuda --init-model model.safetensors --distill-steps 4 --teacher-images 200000 \\
        --steps 20000 --batch-size 256 --lr 1e-4

It prints the training throughput (images/s) at the end, the number to scale a GPU budget
with (``docs/training.md``). Resume an interrupted run with ``--resume``.
"""

import argparse
import sys
import time

import numpy as np

from ctapipe_genshower.data.arrays import TrainingArrays
from ctapipe_genshower.data.training_file import TrainingFile
from ctapipe_genshower.fit import train
from ctapipe_genshower.model.config import PRESETS
from ctapipe_genshower.training.config import TEACHER_SOLVERS, TrainConfig
from ctapipe_genshower.training.dataset import split_dataset

#: The bundled default's recipe (docs/model_card.md; docs/ablation.md for why no geometry
#: channels and no min-SNR weighting, and for the asinh+linear time transform); the command
#: line overrides it. On 2 CPU cores the default was trained in three pieces (21,500 steps:
#: 4500, then 9000 with --init-model and the learning rate restarted at 2.5e-4, both with the
#: linear time transform, then 8000 in the asinh+linear form); on a GPU train it in one run
#: with the final form (not yet measured from scratch).
RECIPE = {
    "model": "small-asinh-linear-time",
    "min_snr_gamma": 0.0,
    "learning_rate": 5e-4,
    "batch_size": 32,
    "ema_decay": 0.999,
    "warmup_steps": 200,
    "seed": 1,
    "steps": 21_500,
}


def teacher_images(train_set, model, n_images, seed, device, batch_size=2048):
    """``n_images`` images the teacher (a model file) generates for shower conditions drawn
    from ``train_set`` (with replacement; fresh sizes and image noise for each).

    Distilling on them teaches the student the teacher's map where the teacher's own
    sampling paths go, and a GPU makes them faster than a training file could be copied
    there. The training selection is not re-applied (it needs ctapipe): the ~30 % of
    first draws a re-selection would redraw stay in.
    """
    from ctapipe_genshower.generator import ShowerGenerator

    teacher = ShowerGenerator.from_file(model, device=device)
    rng = np.random.default_rng(seed)
    n, chunk = len(train_set), 8192
    known = np.concatenate(
        [train_set.read(i, min(i + chunk, n))["conditions"] for i in range(0, n, chunk)]
    )
    conditions = known[rng.integers(0, n, n_images)].astype(np.float64)
    seeds = rng.integers(0, 2**62, n_images)
    images = teacher.generate(conditions, seeds, batch_size=batch_size)
    return TrainingArrays(
        image=images["image"],
        peak_time=images["peak_time"],
        conditions=conditions,
        meta=dict(train_set.meta),
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("training_file", help="prepared training file (.safetensors)")
    parser.add_argument("output", help="model file to write (.safetensors)")
    parser.add_argument("--model", default=RECIPE["model"], choices=sorted(PRESETS))
    parser.add_argument("--steps", type=int, default=RECIPE["steps"])
    parser.add_argument("--batch-size", type=int, default=RECIPE["batch_size"])
    parser.add_argument("--lr", type=float, default=RECIPE["learning_rate"])
    parser.add_argument("--min-snr-gamma", type=float, default=RECIPE["min_snr_gamma"])
    parser.add_argument("--ema-decay", type=float, default=RECIPE["ema_decay"])
    parser.add_argument("--seed", type=int, default=RECIPE["seed"])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--shower-steps", type=int, default=TrainConfig.shower_steps)
    parser.add_argument("--validation-fraction", type=float, default=0.1)
    parser.add_argument("--checkpoint-interval", type=int, default=1000)
    parser.add_argument(
        "--validation-interval", type=int, default=0, help="steps (0: once per epoch)"
    )
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--init-model", help="start from this model file's weights")
    parser.add_argument(
        "--distill-steps",
        type=int,
        default=0,
        help="distil --init-model (the teacher) into a student of this many DDIM steps",
    )
    parser.add_argument("--teacher-substeps", type=int, default=TrainConfig.teacher_substeps)
    parser.add_argument(
        "--teacher-solver", default=TrainConfig.teacher_solver, choices=TEACHER_SOLVERS
    )
    parser.add_argument(
        "--teacher-images",
        type=int,
        default=0,
        help="distil on this many images generated by the teacher instead of the training "
        "images (their shower conditions are drawn from the training file)",
    )
    args = parser.parse_args(argv)
    if args.teacher_images and not (args.distill_steps and args.init_model):
        parser.error("--teacher-images needs --distill-steps and --init-model (the teacher)")

    try:
        config = TrainConfig(
            steps=args.steps,
            batch_size=args.batch_size,
            learning_rate=args.lr,
            min_snr_gamma=args.min_snr_gamma,
            ema_decay=args.ema_decay,
            warmup_steps=min(RECIPE["warmup_steps"], args.steps),
            seed=args.seed,
            device=args.device,
            checkpoint_interval=args.checkpoint_interval,
            validation_interval=args.validation_interval,
            shower_steps=args.shower_steps,
            init_model=args.init_model,
            distill_steps=args.distill_steps,
            teacher_substeps=args.teacher_substeps,
            teacher_solver=args.teacher_solver,
        )
        dataset = TrainingFile(args.training_file)
        train_set, validation = split_dataset(dataset, args.validation_fraction)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    t0 = time.perf_counter()
    if args.teacher_images:
        train_set = teacher_images(
            train_set, args.init_model, args.teacher_images, args.seed, config.device
        )
        print(
            f"the teacher generated {len(train_set)} images in {time.perf_counter() - t0:.0f} s",
            flush=True,
        )
    logged = []  # (step, time) of the running-loss records

    def record(rec):
        if rec["kind"] == "train":
            logged.append((rec["step"], time.perf_counter()))
            print(f"step {rec['step']:>7d}  loss {rec['loss']:.4f}", flush=True)

    result = train(
        train_set,
        args.output,
        PRESETS[args.model],
        config,
        validation=validation,
        resume=args.resume,
        callback=record,
    )
    seconds = time.perf_counter() - t0
    print(f"wrote {args.output}: step {result.step}, validation loss {result.val_loss}")
    if len(logged) > 1:  # the steady rate, between the first and the last loss record
        (first, t_first), (last, t_last) = logged[0], logged[-1]
        rate, what = (last - first) * args.batch_size / (t_last - t_first), f"steps {first}-{last}"
    else:
        rate, what = result.step * args.batch_size / seconds, "start-up included"
    print(
        f"{seconds:.0f} s in all; {rate:.1f} training images/s ({what}; validation and "
        "checkpoints included)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
