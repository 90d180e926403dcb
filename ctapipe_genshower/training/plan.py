"""The plan of a training run: settings, data and resume state checked before it starts.

A run that would fail after minutes of work (a training file without the thrown
distribution, fewer events than one batch, a state file of other settings) is refused
here, in one line, before anything is written::

    from ctapipe_genshower.data import TrainingFile
    from ctapipe_genshower.training.plan import plan_training

    plan = plan_training(TrainingFile("lst.train.safetensors"), {"steps": 2000})
    plan.train_set, plan.validation, plan.train_config, plan.start_step

Standard library and numpy only at import (``training.state`` and torch only for a
resumed run), so a command line can plan without paying for torch.
"""

from dataclasses import dataclass
from typing import Any

from ..model.config import PRESETS
from .config import TrainConfig
from .dataset import check_training_meta, split_dataset

__all__ = ["TrainingPlan", "check_settings", "plan_training", "resume_step"]


@dataclass(frozen=True)
class TrainingPlan:
    """What a checked training run trains on, with which settings, from which step.

    Attributes
    ----------
    dataset : dataset
        All events of the training data (``len``, ``meta``, ``read(start, stop)``).
    train_set : dataset
        The events trained on (all but the validation events).
    validation : dataset or None
        The last events, for the validation loss; None for a validation fraction of 0.
    train_config : TrainConfig
        The settings with the run length resolved (``epochs`` turned into ``steps``).
    start_step : int
        0 for a new run, the step of the state file for a resumed one.
    """

    dataset: Any
    train_set: Any
    validation: Any
    train_config: TrainConfig
    start_step: int = 0


def check_settings(settings, epochs=None):
    """Refuse impossible settings (``steps=0``, ``batch_size=0``, ...) before any data.

    Parameters
    ----------
    settings : dict
        ``TrainConfig`` field values; missing fields keep their defaults.
    epochs : float, optional
        Run length in passes over the data, instead of ``settings["steps"]``.

    Returns
    -------
    TrainConfig
        The settings as they are (the run length is resolved by :func:`plan_training`).

    Raises
    ------
    ValueError
        ``Invalid training setting: <which and why>``.
    """
    try:
        config = TrainConfig(**settings)
    except ValueError as err:
        raise ValueError(f"Invalid training setting: {err}") from None
    if epochs is not None and not epochs > 0:
        raise ValueError(f"Invalid training setting: epochs must be > 0, got {epochs}")
    return config


def plan_training(
    dataset,
    settings,
    epochs=None,
    validation_fraction=0.1,
    world_size=1,
    model_config=None,
    state_path=None,
    resume=False,
):
    """Check training data and settings together and resolve the run.

    Parameters
    ----------
    dataset : dataset
        Training events, e.g. an opened ``data.TrainingFile`` (its ``path`` starts the
        error messages about the data).
    settings : dict
        ``TrainConfig`` field values (e.g. a Tool's options).
    epochs : float, optional
        Train this many passes over the training events instead of ``settings["steps"]``.
    validation_fraction : float
        Fraction of the events, the last ones, kept for the validation loss, in [0, 1).
    world_size : int
        Processes, each taking one batch per step.
    model_config : ModelConfig, optional
        The network settings, compared with the state file's; default
        ``PRESETS["small"]``. Used with ``resume`` only.
    state_path : path-like, optional
        Training-state file to resume from (needed with ``resume``).
    resume : bool
        Continue from ``state_path``: its settings must be these.

    Returns
    -------
    TrainingPlan

    Raises
    ------
    ValueError
        One line: unusable data (``<path>: ...``: incomplete meta, no events, no thrown
        distribution, fewer events than one batch per process) or a state file that
        cannot be resumed (see :func:`resume_step`).
    """
    prefix = f"{dataset.path}: " if getattr(dataset, "path", None) is not None else ""
    try:
        check_training_meta(dataset)
        if dataset.meta["thrown"] is None:
            raise ValueError(
                "the simulation settings are not a thrown distribution (power law "
                "between two energies, disc, cone), so the shower-level model cannot "
                "be trained; see meta['simulation_config']"
            )
        train_set, validation = split_dataset(dataset, validation_fraction)
        config = TrainConfig.from_settings(
            settings, epochs=epochs, n_events=len(train_set), world_size=world_size
        )
        if len(train_set) // world_size < config.batch_size:
            raise ValueError(
                f"{len(train_set)} training events (after the validation split) are "
                f"fewer than one batch of {config.batch_size} per process"
            )
    except ValueError as err:
        raise ValueError(f"{prefix}{err}") from None
    start_step = 0
    if resume:
        start_step = resume_step(state_path, model_config, config, world_size)
    return TrainingPlan(dataset, train_set, validation, config, start_step)


def resume_step(state_path, model_config, train_config, world_size=1):
    """The step a training-state file holds, if a run of these settings can resume it.

    Parameters
    ----------
    state_path : path-like
        The training-state file (``fit.state_path_for(output)``).
    model_config : ModelConfig or None
        Network settings of the run; None for ``PRESETS["small"]``.
    train_config : TrainConfig
        Training settings of the run (run length resolved).
    world_size : int
        Processes of the run.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        ``cannot resume: ...`` for an unreadable state file, ``cannot resume <path>: ...``
        for one of other settings or another number of processes.
    """
    from .state import StateFileError, check_resumable, read_state_metadata

    model_config = PRESETS["small"] if model_config is None else model_config
    if train_config.distill_steps:
        model_config = model_config.distilled(train_config.distill_steps)
    try:
        state = read_state_metadata(state_path)
    except StateFileError as err:
        raise ValueError(f"cannot resume: {err}") from None
    now = {
        "model": model_config.to_dict(),
        "train": train_config.to_dict(),
        "world_size": world_size,
    }
    check_resumable(state_path, state["config"], now)
    return state["step"]
