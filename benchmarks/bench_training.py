"""Training throughput: optimizer steps/s and images/s of the pixel model, per precision.

Runs the real training loop (``ctapipe_genshower.fit.train``: data streaming, loss, AdamW,
EMA) for ``--steps`` steps of a network preset on a prepared training file, once per
``--mixed-precision`` value, and prints the steps/s after the first ``--skip`` steps and
their ratio to the first variant. The shower-level model is fitted for 10 steps only.

    python benchmarks/bench_training.py -i train.training.safetensors
    python benchmarks/bench_training.py -i train.training.safetensors \\
        --model small-asinh-linear-time --variants no bf16 --steps 60 --threads 2

``bf16`` on the CPU is fast only where the CPU has bf16 instructions (AVX512-BF16, AMX);
elsewhere it is emulated and slower. The loss values of the variants agree to bf16 rounding.
"""

import argparse
import tempfile
import time
from pathlib import Path

import torch

from ctapipe_genshower.data import TrainingFile
from ctapipe_genshower.fit import train
from ctapipe_genshower.model.config import PRESETS
from ctapipe_genshower.training.config import MIXED_PRECISION, TrainConfig


def bench(dataset, preset, precision, args):
    """Steps/s of one run (after ``args.skip`` steps) and its last logged loss."""
    marks = {}

    def callback(record):
        if record.get("kind") == "train":
            marks[record["step"]] = (time.perf_counter(), record["loss"])

    config = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=5e-4,
        warmup_steps=10,
        log_interval=1,
        validation_interval=10 * args.steps,  # one validation, after the last step
        validation_events=32,
        checkpoint_interval=10 * args.steps,
        shower_steps=10,
        calibration_events=1000,
        fit_events=2000,
        mixed_precision=precision,
        device=args.device,
        seed=1,
    )
    with tempfile.TemporaryDirectory() as tmp:
        train(dataset, Path(tmp) / "model.safetensors", PRESETS[preset], config, callback=callback)
    (t0, _), (t1, loss) = marks[args.skip], marks[args.steps]
    return (args.steps - args.skip) / (t1 - t0), loss


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-i", "--input", required=True, help="prepared training file")
    parser.add_argument("--model", default="small", choices=sorted(PRESETS))
    parser.add_argument("--variants", nargs="+", default=["no", "bf16"], choices=MIXED_PRECISION)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--skip", type=int, default=10, help="steps not timed (warm-up)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if not 0 < args.skip < args.steps:
        parser.error("need 0 < --skip < --steps")
    if args.threads:
        torch.set_num_threads(args.threads)
    dataset = TrainingFile(args.input)
    print(
        f"{args.model}, batch {args.batch_size}, {args.steps} steps ({args.skip} not timed), "
        f"device {args.device}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    print(f"{'mixed precision':>16} {'steps/s':>9} {'images/s':>9} {'ratio':>6} {'loss':>8}")
    first = None
    for precision in args.variants:
        rate, loss = bench(dataset, args.model, precision, args)
        first = first or rate
        print(
            f"{precision:>16} {rate:9.3f} {rate * args.batch_size:9.1f} "
            f"{rate / first:6.2f} {loss:8.4f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
