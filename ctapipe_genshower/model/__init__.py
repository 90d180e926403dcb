"""The generative model (torch + numpy only; runs on machines without ctapipe).

``networks`` (nn.Modules) · ``diffusion`` (schedule, v-prediction loss) · ``samplers``
(DDIM as functions) · ``transforms`` (normalisation) · ``shower_model`` (selection
probability, stochastic size) · ``training`` (loop, EMA, DDP, resume).

Importing this package imports torch; keep it out of ``ctapipe_genshower/__init__.py``
and the EventSource modules.
"""

from .networks import MLP, MLPConfig, UNet, UNetConfig
from .samplers import ddim_sample, event_generators
from .shower_model import ShowerModel, ThrownSampler
from .training import PRESETS, ModelConfig, TrainConfig, TrainResult, split_source, train

__all__ = [
    "MLP",
    "PRESETS",
    "MLPConfig",
    "ModelConfig",
    "ShowerModel",
    "ThrownSampler",
    "TrainConfig",
    "TrainResult",
    "UNet",
    "UNetConfig",
    "ddim_sample",
    "event_generators",
    "split_source",
    "train",
]
