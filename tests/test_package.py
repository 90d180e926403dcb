"""The package is a well-behaved ctapipe plugin."""

import subprocess
import sys
from importlib.metadata import entry_points


def _modules_after(code):
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print(sorted(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout


def test_import_does_not_import_torch():
    # every ctapipe tool imports the ctapipe_io plugins at start-up; torch would cost seconds
    code = (
        "import ctapipe_genshower, ctapipe_genshower.io.diffusion, ctapipe_genshower.io.toymc,"
        " ctapipe_genshower.toymc"
    )
    assert "'torch'" not in _modules_after(code)


def test_ctapipe_plugin_discovery_does_not_import_torch():
    code = (
        "from ctapipe.core.plugins import detect_and_import_io_plugins\n"
        "from ctapipe.io import EventSource\n"
        "detect_and_import_io_plugins()\n"
        "names = [c.__name__ for c in EventSource.non_abstract_subclasses().values()]\n"
        "assert 'DiffusionEventSource' in names and 'ToyShowerEventSource' in names, names\n"
        "assert 'SimulatedRunEventSource' not in names, names  # the abstract base is not tried"
    )
    assert "'torch'" not in _modules_after(code)


def test_entry_points_registered():
    io = {ep.name: ep.value for ep in entry_points(group="ctapipe_io")}
    assert io["DiffusionEventSource"] == "ctapipe_genshower.io.diffusion:DiffusionEventSource"
    assert io["ToyShowerEventSource"] == "ctapipe_genshower.io.toymc:ToyShowerEventSource"
    scripts = {ep.name for ep in entry_points(group="console_scripts")}
    for name in ("train", "generate", "info", "validate", "background"):
        assert f"ctapipe-genshower-{name}" in scripts
