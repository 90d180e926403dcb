"""The generative model: what a k-diffusion or EDM reader expects to find here.

``config`` (the network sizes and ``PRESETS``; standard library only) · ``networks``
(nn.Modules) · ``diffusion`` (cosine schedule, v-prediction loss) · ``samplers`` (DDIM as
functions) · ``noise`` (per-event noise streams drawn on the device) · ``seed_streams``
(numpy's ``SeedSequence`` for many events at once) · ``denoiser``
(network + grid mask + pixel condition, shared by training and generation) · ``geometry``
(per-pixel geometry channels from the shower conditions) · ``transforms`` (normalisation and
its JSON form) · ``shower_model`` (selection probability, stochastic size). Training lives
in ``ctapipe_genshower.training``.

Everything but ``config`` and ``seed_streams`` imports torch, so the names below are loaded on
first use: ``import ctapipe_genshower.model.config`` stays cheap enough for a Tool's option
list.
"""

from importlib import import_module

#: public name -> submodule that defines it
_EXPORTS = {
    "PRESETS": "config",
    "MLPConfig": "config",
    "ModelConfig": "config",
    "UNetConfig": "config",
    "MLP": "networks",
    "UNet": "networks",
    "Denoiser": "denoiser",
    "GeometryMaps": "geometry",
    "ddim_sample": "samplers",
    "event_generators": "samplers",
    "CounterStreams": "noise",
    "ShowerModel": "shower_model",
    "ThrownSampler": "shower_model",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_EXPORTS])
