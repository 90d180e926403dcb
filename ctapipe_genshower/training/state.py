"""The training-state file ``--resume`` continues from (safetensors + JSON, no pickle).

Conventionally beside the model file (``model.safetensors`` -> ``model.state.safetensors``,
``ctapipe_genshower.fit.state_path_for``). Tensors: the
raw, EMA and shower-model weights (``net.*``, ``ema.*``, ``shower.*``), the AdamW state
(``optim.<param>.<key>``) and the diffusion-noise generator (``rng.noise``). Metadata
(strings): ``format``, ``format_version``, ``step``, and JSON ``shower_done``, ``config``,
``transforms``, ``domain``, ``optimizer`` (param groups and non-tensor state). The model
file the EventSource reads never holds optimizer state.
"""

import json

import torch

from ..atomic import atomic_output

__all__ = [
    "STATE_FORMAT",
    "STATE_FORMAT_VERSION",
    "StateFileError",
    "check_resumable",
    "load_module",
    "load_optimizer",
    "module_tensors",
    "optimizer_tensors",
    "read_state_metadata",
    "read_state_tensors",
    "restore_state",
    "state_tensors",
    "write_state",
]

STATE_FORMAT = "ctapipe-genshower-training-state"
STATE_FORMAT_VERSION = "1"
_JSON_KEYS = ("shower_done", "config", "transforms", "domain", "optimizer")


class StateFileError(ValueError):
    """A training-state file that cannot be resumed from (corrupt, other format/version)."""


# -- modules and optimizer as flat tensor dicts ------------------------------------------
def module_tensors(module, prefix):
    """``{prefix.name: tensor}`` of a module's state dict."""
    return {f"{prefix}.{k}": v for k, v in module.state_dict().items()}


def load_module(module, tensors, prefix):
    """Load the ``prefix.*`` entries of ``tensors`` into ``module``."""
    sub = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
    module.load_state_dict(sub)


def optimizer_tensors(optimizer, prefix):
    """``(tensors, info)``: the optimizer's tensor state and its JSON-able rest."""
    tensors, scalars = {}, {}
    sd = optimizer.state_dict()
    for idx, state in sd["state"].items():
        for key, value in state.items():
            name = f"{prefix}.{idx}.{key}"
            if torch.is_tensor(value):
                tensors[name] = value
            else:
                scalars[name] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def load_optimizer(optimizer, tensors, info, prefix):
    """Inverse of :func:`optimizer_tensors`."""
    state = {}
    for name, value in list(tensors.items()) + list(info["scalars"].items()):
        if not name.startswith(prefix + "."):
            continue
        _, idx, key = name.split(".", 2)
        state.setdefault(int(idx), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": info["param_groups"]})


# -- a run's state ------------------------------------------------------------------------
def state_tensors(modules, optimizer, noise):
    """``(tensors, optimizer_info)`` of a run: its modules, optimizer and noise generator.

    Parameters
    ----------
    modules : dict
        ``{prefix: nn.Module}``, e.g. ``{"net": ..., "ema": ..., "shower": ...}``.
    optimizer : torch.optim.Optimizer
    noise : torch.Generator
    """
    tensors = {}
    for prefix, module in modules.items():
        tensors.update(module_tensors(module, prefix))
    opt_tensors, opt_info = optimizer_tensors(optimizer, "optim")
    tensors.update(opt_tensors)
    tensors["rng.noise"] = noise.get_state()
    return tensors, opt_info


def restore_state(tensors, optimizer_info, modules, optimizer, noise):
    """Inverse of :func:`state_tensors`: load everything back in place."""
    for prefix, module in modules.items():
        load_module(module, tensors, prefix)
    load_optimizer(optimizer, tensors, optimizer_info, "optim")
    noise.set_state(tensors["rng.noise"])


def check_resumable(path, saved, now):
    """Refuse to resume when model or training settings or the number of processes changed.

    ``saved`` and ``now`` are ``{"model", "train", "world_size"}`` config dicts.
    """
    from ..model.config import ModelConfig
    from .config import TrainConfig

    # a setting added since the state was written counts as unchanged at its default
    defaults = {"model": ModelConfig().to_dict(), "train": TrainConfig().to_dict()}
    for key in ("model", "train"):
        old = {**defaults[key], **saved[key]}
        diff = sorted(k for k in {*saved[key], *now[key]} if old.get(k) != now[key].get(k))
        if diff:
            raise ValueError(f"cannot resume {path}: {key} settings differ ({', '.join(diff)})")
    if saved["world_size"] != now["world_size"]:
        raise ValueError(
            f"cannot resume {path}: it was written with {saved['world_size']} "
            f"processes, now {now['world_size']}"
        )


# -- the file ------------------------------------------------------------------------------
def write_state(path, tensors, step, **fields):
    """Write the state file atomically.

    Parameters
    ----------
    path : path-like
    tensors : dict of torch.Tensor
    step : int
        Optimizer steps done.
    **fields
        ``shower_done``, ``config``, ``transforms``, ``domain``, ``optimizer`` (JSON-able).
    """
    from safetensors.torch import save_file

    metadata = {"format": STATE_FORMAT, "format_version": STATE_FORMAT_VERSION, "step": str(step)}
    metadata.update({key: json.dumps(fields[key]) for key in _JSON_KEYS})
    with atomic_output(path) as tmp:
        save_file(
            {k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp, metadata=metadata
        )


def read_state_metadata(path):
    """Metadata of a state file: ``step`` (int) and the decoded JSON fields.

    Raises
    ------
    StateFileError
        For a corrupt file or another format or version.
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
    except (SafetensorError, OSError) as err:
        raise StateFileError(f"{path}: not a readable safetensors file ({err})") from None
    if raw.get("format") != STATE_FORMAT:
        raise StateFileError(f"{path}: not a {STATE_FORMAT} file (format {raw.get('format')!r})")
    if raw.get("format_version") != STATE_FORMAT_VERSION:
        raise StateFileError(
            f"{path}: {STATE_FORMAT} format_version {raw.get('format_version')!r} is not "
            f"supported (this version reads {STATE_FORMAT_VERSION!r})"
        )
    try:
        meta = {key: json.loads(raw[key]) for key in _JSON_KEYS}
        meta["step"] = int(raw["step"])
    except (KeyError, ValueError):
        raise StateFileError(f"{path}: incomplete or corrupt training-state metadata") from None
    return meta


def read_state_tensors(path):
    """The tensors of a state file, on the CPU."""
    from safetensors.torch import load_file

    return load_file(str(path), device="cpu")
