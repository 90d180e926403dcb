"""Time a source's own event loop (no ctapipe processing), on 2 torch threads.

The time includes the source's construction: the toy simulates its showers there.

usage: python source_loop.py toy|plain|refined N  ->  events, seconds, ms per event

``toy``: the toy simulator on ``examples/protons.toymc.yaml`` (its 100,000 showers; ``N`` is
the largest number of events read); ``plain``: the bundled model without its refiner,
``refined``: with it (256 events per batch), each on ``N`` thrown showers.
"""

import sys
import time
from pathlib import Path

import torch
from ctapipe.io import EventSource
from traitlets.config import Config

REPO = Path(__file__).resolve().parents[2]

torch.set_num_threads(2)
which, n = sys.argv[1], int(sys.argv[2])
start = time.perf_counter()
if which == "toy":
    source = EventSource(REPO / "examples/protons.toymc.yaml", max_events=n)
else:
    refined = which == "refined"
    settings = {"n_showers": n, "refine": refined, "events_per_batch": 256 if refined else None}
    source = EventSource("DiffusionEventSource", config=Config({"DiffusionEventSource": settings}))
n_events = sum(1 for _ in source)
elapsed = time.perf_counter() - start
per_event = 1000 * elapsed / n_events
print(f"{which}: {n_events} events in {elapsed:.2f} s, {per_event:.1f} ms per event")
