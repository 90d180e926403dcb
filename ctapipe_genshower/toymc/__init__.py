"""Toy air-shower and camera simulator, the project's reference "simulation".

A physically motivated stand-in for CORSIKA + sim_telarray (see ``docs/toymc.md``):
shower development, Cherenkov light and camera response in :class:`ToyShowerSimulator`,
served as a ctapipe EventSource (``ctapipe-process -i <name>.toymc.yaml``) by
:class:`ToyShowerEventSource`. numpy/scipy/ctapipe only; nothing here imports torch.
"""

from .settings import SETTINGS_SUFFIX, read_settings, write_settings
from .simulator import PRIMARY_IDS, ToyShowerSimulator, ToySimulationResult
from .source import ToyShowerEventSource

__all__ = [
    "PRIMARY_IDS",
    "SETTINGS_SUFFIX",
    "ToyShowerEventSource",
    "ToyShowerSimulator",
    "ToySimulationResult",
    "read_settings",
    "write_settings",
]
