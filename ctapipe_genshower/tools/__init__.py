"""Thin ctapipe Tools, one per ``ctapipe-genshower-*`` command (see ``[project.scripts]``)."""

from ctapipe.core import ToolConfigurationError

__all__ = ["refuse_extra_arguments"]


def refuse_extra_arguments(tool, hint):
    """Refuse command-line words that no option took (exit 2 with one line).

    traitlets keeps them in ``tool.extra_args`` and would otherwise ignore them, so that
    ``ctapipe-genshower-info other.safetensors`` printed the bundled model's card.

    Parameters
    ----------
    tool : ctapipe.core.Tool
    hint : str
        How the tool takes what such words usually mean (e.g. ``"give the model with
        --model"``).
    """
    if tool.extra_args:
        raise ToolConfigurationError(f"Unexpected arguments {' '.join(tool.extra_args)} ({hint})")
