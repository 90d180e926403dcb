"""ctapipe-genshower: diffusion-model proton images as a ctapipe simulation component.

Importing this package must stay cheap: every ctapipe tool imports the ``ctapipe_io``
entry points at start-up, so nothing here (or in the EventSource modules) imports torch.
"""

try:
    from ._version import __version__
except ImportError:  # pragma: no cover - only for a source tree without a build
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
