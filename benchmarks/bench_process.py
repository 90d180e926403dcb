"""End-to-end ``ctapipe-process`` throughput: generated protons vs the toy simulator.

Runs ctapipe's ProcessorTool (DL1 images + parameters, default cleaning and Hillas) twice in
this process, on the CPU:

1. on a generator model (default: the bundled one) at its default sampler steps with
   ``--n-showers`` thrown showers;
2. on the toy simulator (a ``*.toymc.yaml`` settings file) with ``max_events`` set to the number
   of events of run 1, i.e. the same number of events through the same processing.

The model's events are *selected* events (trigger and training selection, e.g. size > 250 p.e.),
the toy's are triggered events; the table therefore also gives the toy's rate of events that
pass the model's selection (evaluated on the toy output's DL1 parameters), the fair comparison
for "selected events per second". Timings include tool set-up (torch import, model loading,
the run plan) and writing the output.

Usage::

    python benchmarks/bench_process.py [--model M.safetensors] [--n-showers 20000]
        [--toy-settings examples/protons.toymc.yaml] [--n-steps N] [--solver ddim|dpmpp-2m|heun]
        [--batch-size N] [--events-per-batch N] [--threads 2] [--bf16] [--no-channels-last]
"""

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from ctapipe.core import run_tool
from ctapipe.io import read_table
from ctapipe.tools.process import ProcessorTool

from ctapipe_genshower.checkpoint import read_metadata
from ctapipe_genshower.io.diffusion import default_model_path

REPO = Path(__file__).resolve().parents[1]


def run_process(input_url, output, *options):
    argv = [
        f"--input={input_url}",
        f"--output={output}",
        "--write-images",
        "--write-parameters",
        "--log-level=WARN",
        *options,
    ]
    start = time.perf_counter()
    code = run_tool(ProcessorTool(), argv=argv, cwd=output.parent, raises=True)
    elapsed = time.perf_counter() - start
    if code != 0:
        raise RuntimeError(f"ctapipe-process failed on {input_url} (exit code {code})")
    n_events = len(read_table(output, "/dl1/event/subarray/trigger"))
    n_thrown = int(read_table(output, "/configuration/simulation/run")["n_showers"].sum())
    return elapsed, n_events, n_thrown


def passes_selection(output, selection):
    """Number of events passing the model's selection (``[name, expression]`` pairs)."""
    params = read_table(output, "/dl1/event/telescope/parameters/tel_001")
    columns = {name: np.asarray(params[name]) for name in params.colnames}
    mask = np.ones(len(params), dtype=bool)
    for _, expression in selection:
        names = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", expression))
        namespace = {k: v for k, v in columns.items() if k in names}
        namespace["np"] = np
        with np.errstate(invalid="ignore"):
            mask &= np.asarray(eval(expression, {"__builtins__": {}}, namespace), dtype=bool)
    return int(mask.sum())


def default_toy_settings():
    candidates = sorted(REPO.glob("examples/*proton*.toymc.yaml")) or sorted(
        REPO.glob("examples/*.toymc.yaml")
    )
    return candidates[0] if candidates else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=default_model_path())
    parser.add_argument("--n-showers", type=int, default=20_000)
    parser.add_argument("--n-steps", type=int, default=None, help="default: the model's")
    parser.add_argument("--solver", default="ddim", help="ddim, dpmpp-2m or heun")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="default: the source's (32 on the CPU)"
    )
    parser.add_argument(
        "--events-per-batch", type=int, default=None, help="default: the source's (batch size)"
    )
    parser.add_argument("--toy-settings", type=Path, default=default_toy_settings())
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast of the pixel network")
    parser.add_argument(
        "--no-channels-last",
        action="store_true",
        help="the network's default memory format instead of channels-last",
    )
    args = parser.parse_args(argv)

    if not args.model.is_file():
        sys.exit(f"model not found: {args.model} (pass --model)")
    args.model = args.model.resolve()  # the tool runs in a temporary directory
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    meta = read_metadata(args.model)
    steps = args.n_steps or meta["config"]["model"]["default_n_steps"]
    selection = meta["training_meta"].get("selection") or []

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_out = tmp / "generated.dl1.h5"
        elapsed, n_events, n_thrown = run_process(
            args.model,
            model_out,
            f"--DiffusionEventSource.n_showers={args.n_showers}",
            f"--DiffusionEventSource.n_steps={steps}",
            f"--DiffusionEventSource.solver={args.solver}",
            *([f"--DiffusionEventSource.batch_size={args.batch_size}"] if args.batch_size else []),
            *(
                [f"--DiffusionEventSource.events_per_batch={args.events_per_batch}"]
                if args.events_per_batch
                else []
            ),
            "--DiffusionEventSource.device=cpu",
            f"--DiffusionEventSource.bf16={args.bf16}",
            f"--DiffusionEventSource.channels_last={not args.no_channels_last}",
        )
        variant = ("bf16, " if args.bf16 else "") + (
            "contiguous" if args.no_channels_last else "channels-last"
        )
        variant += f", batch {args.batch_size or 'default'}"
        if args.events_per_batch:
            variant += f", {args.events_per_batch} events per batch"
        rows.append(
            (
                f"diffusion ({args.model.name}, {args.solver} {steps} steps, {variant})",
                n_thrown,
                n_events,
                n_events,
                elapsed,
            )
        )

        if args.toy_settings is None:
            print("no *.toymc.yaml settings found: toy comparison skipped (--toy-settings)")
        else:
            toy_out = tmp / "toy.dl1.h5"
            elapsed, n_toy, n_thrown = run_process(
                args.toy_settings,
                toy_out,
                f"--EventSource.max_events={n_events}",
                # as many showers as the model threw, so the toy reaches the same events
                f"--ToyShowerEventSource.n_showers={args.n_showers}",
            )
            n_selected = passes_selection(toy_out, selection)
            rows.append((f"toy ({args.toy_settings.name})", n_thrown, n_toy, n_selected, elapsed))

    print(
        f"\nctapipe-process throughput on CPU ({torch.get_num_threads()} torch threads),"
        " DL1 images + parameters"
    )
    print("selection: " + (", ".join(expr for _, expr in selection) or "none"))
    header = ("source", "thrown", "events", "selected", "wall s", "events/s", "selected/s")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name, thrown, events, selected, elapsed in rows:
        print(
            f"| {name} | {thrown} | {events} | {selected} | {elapsed:.1f}"
            f" | {events / elapsed:.2f} | {selected / elapsed:.2f} |"
        )


if __name__ == "__main__":
    main()
