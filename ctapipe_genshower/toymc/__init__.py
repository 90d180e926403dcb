"""Toy air-shower and camera simulator, the project's reference "simulation".

A physically motivated stand-in for CORSIKA + sim_telarray (see ``docs/toymc.md``):
shower development, Cherenkov light and camera response in :class:`ToyShowerSimulator`.
Pure simulation: the ctapipe EventSource serving it (``ctapipe-process -i
<name>.toymc.yaml``) is :class:`ctapipe_genshower.io.toymc.ToyShowerEventSource`.
numpy/scipy/ctapipe only; nothing here imports torch.
"""

from .settings import SETTINGS_SUFFIX, read_settings, write_settings
from .simulator import PRIMARY_IDS, ToyShowerSimulator, ToySimulationResult

__all__ = [
    "PRIMARY_IDS",
    "SETTINGS_SUFFIX",
    "ToyShowerSimulator",
    "ToySimulationResult",
    "read_settings",
    "write_settings",
]
