"""Generator throughput: images/s versus sampler steps and batch size (CPU, and CUDA if present).

Prints the pixel network's parameter count and FLOPs per image (one network evaluation,
``torch.utils.flop_counter``); one generated image costs ``network_evaluations(solver,
n_steps)`` evaluations (the NFE column).

    python benchmarks/bench_generator.py                       # untrained "small" preset
    python benchmarks/bench_generator.py --model model.safetensors --steps 5 10 20 --batch 16 64
    python benchmarks/bench_generator.py --solver dpmpp-2m --steps 4 8 --batch 64
    python benchmarks/bench_generator.py --steps 4 --batch 32 --variants plain channels-last compile

``--noise``: ``cpu`` draws each event's noise from its own CPU generator (the default on
the CPU), ``device`` from counter-based streams on the device (the default on CUDA,
``ctapipe_genshower.model.noise``); ``both`` times each.

``--variants``: the same network run plainly, in channels-last memory format, compiled with
``torch.compile`` (inductor; CPU needs a C++ compiler), under bf16 autocast, channels-last
under bf16 autocast, compiled under bf16 autocast, or compiled in channels-last under bf16
autocast; each is printed with its ratio to the first.

The generator runs channels-last by default (``ShowerGenerator(channels_last=True)``), plus
bf16 with ``--bf16``.

``--generate N``: also time ``ShowerGenerator.generate`` on N events of the model's own
showers (sizes from the shower-level model, sampling, decoding to camera pixels; no
re-selection, which needs ctapipe), in batches of each ``--batch``, with the generator's
defaults or, with ``--generate-variants``, the memory format, bf16 and compilation of the
variants named.
"""

import argparse
import copy
import itertools
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from ctapipe_genshower.data.arrays import CONDITION_COLUMNS
from ctapipe_genshower.model.config import PRESETS
from ctapipe_genshower.model.networks import UNet
from ctapipe_genshower.model.noise import CounterStreams
from ctapipe_genshower.model.samplers import SOLVERS, event_generators, network_evaluations, sample

VARIANTS = [
    "plain",
    "channels-last",
    "compile",
    "bf16",
    "channels-last-bf16",
    "compile-bf16",
    "compile-channels-last-bf16",
]


def generator_options(name):
    """``ShowerGenerator`` keyword arguments of a variant (``{}``: its defaults)."""
    if name == "default":
        return {}
    return {
        "channels_last": "channels-last" in name,
        "bf16": "bf16" in name,
        "compile": "compile" in name,
    }


def load(model, preset, device):
    if model:
        from ctapipe_genshower.generator import ShowerGenerator

        # the network as stored: the variants choose the memory format
        gen = ShowerGenerator.from_file(model, device=device, channels_last=False)
        return gen.pixel_net, gen.transforms["grid"].padded_shape
    cfg = PRESETS[preset].unet
    net = UNet(cfg).to(device).eval()
    size = -(-49 // cfg.pad_to) * cfg.pad_to
    return net, (size, size)


def flops_per_image(net, shape, device):
    x = torch.zeros(1, 2, *shape, device=device)
    mask = torch.ones(1, 1, *shape, device=device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(
            x,
            torch.zeros(1, device=device),
            torch.zeros(1, net.config.cond_dim, device=device),
            mask,
        )
    return counter.get_total_flops()


def variant(net, name):
    """``(callable net, memory format, bf16)`` of a benchmark variant."""
    if "compile" in name:  # each compiled variant starts from no cached graphs
        torch._dynamo.reset()
    if name == "plain":
        return net, torch.contiguous_format, False
    if name == "channels-last":
        return copy.deepcopy(net).to(memory_format=torch.channels_last), torch.channels_last, False
    if name == "compile":
        return torch.compile(copy.deepcopy(net)), torch.contiguous_format, False
    if name == "bf16":
        return net, torch.contiguous_format, True
    if name == "channels-last-bf16":
        return copy.deepcopy(net).to(memory_format=torch.channels_last), torch.channels_last, True
    if name == "compile-bf16":
        return torch.compile(copy.deepcopy(net)), torch.contiguous_format, True
    if name == "compile-channels-last-bf16":
        net = copy.deepcopy(net).to(memory_format=torch.channels_last)
        return torch.compile(net), torch.channels_last, True
    raise ValueError(f"unknown variant {name!r}")


def streams(seeds, device, noise):
    if noise == "device":
        return CounterStreams(seeds, device)
    return event_generators(seeds)


def bench(net, shape, device, solver, n_steps, batch, repeats, name="plain", noise="cpu"):
    mask = torch.ones(1, 1, *shape, device=device)
    cond = torch.zeros(batch, net.config.cond_dim, device=device)
    run, memory_format, bf16 = variant(net, name)

    def denoise(x, t, c):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            return run(x.contiguous(memory_format=memory_format), t, c, mask).float()

    sample(
        solver,
        denoise,
        cond,
        streams(range(batch), device, noise),
        (2, *shape),
        n_steps=1,
        mask=mask,
        device=device,
    )
    times = []
    for r in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        sample(
            solver,
            denoise,
            cond,
            streams(range(r * batch, (r + 1) * batch), device, noise),
            (2, *shape),
            n_steps=n_steps,
            mask=mask,
            device=device,
        )
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return batch / np.median(times)


def bench_generate(gen, device, n_events, n_steps, solver, batch):
    """Images/s of ``ShowerGenerator.generate``: the model's showers, sizes, sampling and
    decoding, as a user's script calls it (conditions uniform in the model's trained domain:
    log energy, impact and field of view)."""
    lo, hi = np.array([gen.domain[name] for name in CONDITION_COLUMNS]).T
    rng = np.random.default_rng(1)
    conditions = lo + (hi - lo) * rng.uniform(size=(n_events, len(lo)))
    warm = min(n_events, batch)
    gen.generate(conditions[:warm], np.arange(warm), n_steps, solver=solver, batch_size=batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    gen.generate(conditions, np.arange(n_events), n_steps, solver=solver, batch_size=batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n_events / (time.perf_counter() - t0)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="checkpoint file (default: an untrained preset)")
    parser.add_argument("--preset", default="small", choices=sorted(PRESETS))
    parser.add_argument("--solver", default="ddim", choices=list(SOLVERS))
    parser.add_argument("--steps", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--devices", nargs="+", default=["cpu", "cuda"])
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["plain"],
        choices=VARIANTS,
        help="ways to run the network, each timed and compared with the first",
    )
    parser.add_argument(
        "--generate-variants",
        nargs="+",
        default=["default"],
        choices=["default", *VARIANTS],
        help="settings of the --generate runs (default: the generator's own)",
    )
    parser.add_argument(
        "--noise",
        choices=["auto", "cpu", "device", "both"],
        default="auto",
        help="where the image noise is drawn (auto: on CUDA on the device, else on the CPU)",
    )
    parser.add_argument(
        "--generate",
        type=int,
        default=0,
        metavar="N",
        help="also time ShowerGenerator.generate on N events (needs --model)",
    )
    args = parser.parse_args()
    if args.generate and not args.model:
        parser.error("--generate needs --model")

    for name in args.devices:
        if name == "cuda" and not torch.cuda.is_available():
            print("cuda: not available, skipped")
            continue
        device = torch.device(name)
        net, shape = load(args.model, args.preset, device)
        n_params = sum(p.numel() for p in net.parameters())
        flops = flops_per_image(net, shape, device)
        label = (
            torch.cuda.get_device_name()
            if device.type == "cuda"
            else f"cpu ({torch.get_num_threads()} threads)"
        )
        print(
            f"device {label}; grid {shape}; parameters {n_params:,}; "
            f"{flops / 1e9:.3f} GFLOP per network evaluation"
        )
        print(f"solver {args.solver}")
        if args.noise == "both":
            noises = ["cpu", "device"]
        elif args.noise == "auto":
            noises = ["device" if device.type == "cuda" else "cpu"]
        else:
            noises = [args.noise]
        print(
            f"{'noise':>6} {'variant':>18} {'steps':>6} {'NFE':>4} {'batch':>6} {'images/s':>10} "
            f"{'GFLOP/s':>9} {'ratio':>6}"
        )
        nfe = {n: network_evaluations(args.solver, n) for n in args.steps}
        with torch.inference_mode():
            for n_steps, batch in itertools.product(args.steps, args.batch):
                first = None
                for noise, name in itertools.product(noises, args.variants):
                    rate = bench(
                        net, shape, device, args.solver, n_steps, batch, args.repeats, name, noise
                    )
                    first = rate if first is None else first
                    print(
                        f"{noise:>6} {name:>18} {n_steps:>6} {nfe[n_steps]:>4} {batch:>6} "
                        f"{rate:>10.2f} {rate * nfe[n_steps] * flops / 1e9:>9.1f} "
                        f"{rate / first:>6.2f}"
                    )
        runs = itertools.product(noises, args.generate_variants) if args.generate else ()
        for noise, name in runs:
            from ctapipe_genshower.generator import ShowerGenerator

            gen = ShowerGenerator.from_file(
                args.model, device=device, device_noise=noise == "device", **generator_options(name)
            )
            for n_steps, batch in itertools.product(args.steps, args.batch):
                rate = bench_generate(gen, device, args.generate, n_steps, args.solver, batch)
                print(
                    f"ShowerGenerator.generate ({name}), {noise} noise: {args.generate} events, "
                    f"{n_steps} steps, batch {batch}: {rate:.1f} images/s"
                )


if __name__ == "__main__":
    main()
