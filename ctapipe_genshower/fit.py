"""Train a generator and write its model file: the training loop wired to the file format.

``training/`` knows nothing of the model file and ``checkpoint.py`` nothing of training;
this module puts them together, so both keep their imports pointing down
(``fit -> checkpoint -> training -> model``)::

    from ctapipe_genshower.fit import train
    from ctapipe_genshower.training.dataset import split_dataset

    train_set, validation = split_dataset(TrainingFile("data.train.safetensors"), 0.1)
    result = train(train_set, "model.safetensors", validation=validation)
"""

from dataclasses import replace
from functools import partial
from pathlib import Path

from .checkpoint import file_sha256, load_generator_modules, save_generator

__all__ = ["sibling_path", "state_path_for", "train"]


def sibling_path(output, suffix):
    """A file beside the model file: ``model.safetensors`` -> ``model<suffix>``.

    Any other name gets the suffix appended.
    """
    output = Path(output)
    name = output.name
    if name.endswith(".safetensors"):
        name = name[: -len(".safetensors")]
    return output.with_name(name + suffix)


def state_path_for(output):
    """The training-state file of a model file: ``m.safetensors`` -> ``m.state.safetensors``."""
    return sibling_path(output, ".state.safetensors")


def train(
    dataset,
    output,
    model_config=None,
    train_config=None,
    validation=None,
    state_path=None,
    resume=False,
    callback=None,
    provenance=None,
):
    """Train the shower-level and pixel models; write the model file and the training state.

    Parameters
    ----------
    dataset : dataset or TrainingArrays
        Training events (``len``, ``meta``, ``read(start, stop)``).
    output : path-like
        Model file to write (periodically and at the end; atomically).
    model_config : ModelConfig, optional
        Default ``PRESETS["small"]``.
    train_config : TrainConfig, optional
    validation : dataset or TrainingArrays, optional
        Events for the validation loss (see ``training.dataset.split_dataset``).
    state_path : path-like, optional
        Training-state file, default ``state_path_for(output)``
        (``model.safetensors`` -> ``model.state.safetensors``).
    resume : bool
        Continue from ``state_path``; model and training settings must be unchanged.
    callback : callable, optional
        Gets the loop's records (see :func:`ctapipe_genshower.training.loop.train`).
    provenance : dict, optional
        Extra provenance stored in the model file (e.g. the tool's command line).
        ``train_config.init_model`` (a new run) starts from that generator file's weights
        and normalisations, with its sha256 added to the provenance; a distillation
        (``train_config.distill_steps``) reads it as the teacher, also when resumed.

    Returns
    -------
    TrainResult
    """
    # here, not at the top: the file names above serve the Tool without importing torch
    from .training.loop import train as train_loop

    initial = None
    init_model = None if train_config is None else train_config.init_model
    distill = train_config is not None and train_config.distill_steps
    # a resumed distillation needs its teacher again
    if init_model and (not resume or distill):
        initial = load_generator_modules(init_model)
        provenance = {**(provenance or {}), "init_model_sha256": file_sha256(init_model)}
    result = train_loop(
        dataset,
        state_path_for(output) if state_path is None else state_path,
        model_config=model_config,
        train_config=train_config,
        validation=validation,
        save_model=partial(save_generator, Path(output)),
        resume=resume,
        callback=callback,
        provenance=provenance,
        initial=initial,
    )
    return replace(result, output=str(output))
