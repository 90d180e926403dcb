"""Generator throughput: images/s versus sampler steps and batch size (CPU, and CUDA if present).

Prints the pixel network's parameter count and FLOPs per image (one network evaluation,
``torch.utils.flop_counter``); one generated image costs ``network_evaluations(solver,
n_steps)`` evaluations (the NFE column).

    python benchmarks/bench_generator.py                       # untrained "small" preset
    python benchmarks/bench_generator.py --model model.safetensors --steps 5 10 20 --batch 16 64
    python benchmarks/bench_generator.py --solver dpmpp-2m --steps 4 8 --batch 64
    python benchmarks/bench_generator.py --steps 4 --batch 32 --variants plain channels-last compile

``--variants``: the same network run plainly, in channels-last memory format, compiled with
``torch.compile`` (inductor; CPU needs a C++ compiler), under bf16 autocast, or channels-last
under bf16 autocast; each is printed with its ratio to the first. The generator runs
channels-last by default (``ShowerGenerator(channels_last=True)``), plus bf16 with ``--bf16``.
"""

import argparse
import copy
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from ctapipe_genshower.model.config import PRESETS
from ctapipe_genshower.model.networks import UNet
from ctapipe_genshower.model.samplers import SOLVERS, event_generators, network_evaluations, sample


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
    raise ValueError(f"unknown variant {name!r}")


def bench(net, shape, device, solver, n_steps, batch, repeats, name="plain"):
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
        event_generators(range(batch)),
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
            event_generators(range(r * batch, (r + 1) * batch)),
            (2, *shape),
            n_steps=n_steps,
            mask=mask,
            device=device,
        )
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return batch / np.median(times)


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
        choices=["plain", "channels-last", "compile", "bf16", "channels-last-bf16"],
        help="ways to run the network, each timed and compared with the first",
    )
    args = parser.parse_args()

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
        print(
            f"{'variant':>18} {'steps':>6} {'NFE':>4} {'batch':>6} {'images/s':>10} "
            f"{'GFLOP/s':>9} {'ratio':>6}"
        )
        with torch.inference_mode():
            for n_steps in args.steps:
                for batch in args.batch:
                    first = None
                    for name in args.variants:
                        rate = bench(
                            net, shape, device, args.solver, n_steps, batch, args.repeats, name
                        )
                        first = rate if first is None else first
                        nfe = network_evaluations(args.solver, n_steps)
                        print(
                            f"{name:>18} {n_steps:>6} {nfe:>4} {batch:>6} {rate:>10.2f} "
                            f"{rate * nfe * flops / 1e9:>9.1f} {rate / first:>6.2f}"
                        )


if __name__ == "__main__":
    main()
