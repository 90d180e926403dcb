"""Throughput of the toy simulator: thrown showers/s and triggered images/s.

Runs the ``ToyShowerEventSource`` of a settings file (default: the example proton run) over
``--n-showers`` showers without writing, and, with ``--process``, ``ctapipe-process`` with
images and parameters for the same run (the DL1 writing and image parameters cost extra).

    python benchmarks/bench_toymc.py [--settings examples/protons.toymc.yaml] [--n-showers 20000]
"""

import argparse
import tempfile
import time
from pathlib import Path

from ctapipe.core import run_tool
from ctapipe.tools.process import ProcessorTool
from traitlets.config import Config

from ctapipe_genshower.io.toymc import ToyShowerEventSource

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "protons.toymc.yaml"


def bench_source(settings, n_showers):
    config = Config({"ToyShowerEventSource": {"n_showers": n_showers}})
    start = time.perf_counter()
    with ToyShowerEventSource(settings, config=config) as source:
        n_triggered = sum(1 for _ in source)
    return n_triggered, time.perf_counter() - start


def bench_process(settings, n_showers):
    with tempfile.TemporaryDirectory() as tmp:
        argv = [
            f"--input={settings}",
            f"--output={Path(tmp) / 'bench.dl1.h5'}",
            "--write-images",
            "--write-parameters",
            f"--ToyShowerEventSource.n_showers={n_showers}",
            "--log-level=WARN",
        ]
        start = time.perf_counter()
        run_tool(ProcessorTool(), argv=argv, cwd=tmp, raises=True)
        return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", type=Path, default=EXAMPLE)
    parser.add_argument("--n-showers", type=int, default=20_000)
    parser.add_argument("--process", action="store_true", help="also time ctapipe-process")
    args = parser.parse_args()

    n_triggered, seconds = bench_source(args.settings, args.n_showers)
    thrown_rate = args.n_showers / seconds
    triggered_rate = n_triggered / seconds
    print(f"settings: {args.settings}")
    print(f"source only: {args.n_showers} thrown, {n_triggered} triggered in {seconds:.1f} s")
    print(f"  thrown showers/s:   {thrown_rate:10.0f}")
    print(f"  triggered images/s: {triggered_rate:10.1f}")
    if n_triggered:
        print(f"  100k triggered images: {1e5 / triggered_rate / 60:.1f} min (one process)")
    if args.process:
        seconds = bench_process(args.settings, args.n_showers)
        print(f"ctapipe-process (images + parameters): {seconds:.1f} s")
        print(f"  thrown showers/s:   {args.n_showers / seconds:10.0f}")
        print(f"  triggered images/s: {n_triggered / seconds:10.1f}")
        if n_triggered:
            print(f"  100k triggered images: {1e5 * seconds / n_triggered / 60:.1f} min")


if __name__ == "__main__":
    main()
