"""Session fixtures with small toy-simulator DL1 files (made once per test session).

* ``toy_settings_path``: a function ``(name, **settings) -> Path`` writing
  ``<name>.toymc.yaml`` (small proton defaults, overridden by ``settings``) into a session
  temporary folder;
* ``toy_proton_dl1_path`` / ``toy_gamma_dl1_path``: ``ctapipe-process --write-images
  --write-parameters`` on small proton / gamma runs (a few hundred triggered events each).
"""

import pytest
from ctapipe.core import run_tool
from ctapipe.tools.process import ProcessorTool

from ctapipe_genshower.toymc.settings import write_settings

#: A small diffuse proton run: ~250 triggered events, about a quarter above 250 p.e.
SMALL_PROTON_SETTINGS = {
    "primary": "proton",
    "n_showers": 1300,
    "seed": 1,
    "obs_id": 1,
    "energy_min": "0.3 TeV",
    "energy_max": "30 TeV",
    "spectral_index": -2.0,
    "max_scatter_radius": "400 m",
    "min_viewcone": "0 deg",
    "max_viewcone": "2 deg",
    "pointing_alt": "70 deg",
    "pointing_az": "0 deg",
}

#: A small point-like gamma run: ~120 triggered events.
SMALL_GAMMA_SETTINGS = {
    **SMALL_PROTON_SETTINGS,
    "primary": "gamma",
    "n_showers": 300,
    "obs_id": 1001,
    "energy_min": "0.1 TeV",
    "energy_max": "10 TeV",
    "max_scatter_radius": "300 m",
    "max_viewcone": "0 deg",
}


def write_toy_settings(directory, name="run", **settings):
    """Write ``<directory>/<name>.toymc.yaml``: small proton settings updated by ``settings``."""
    return write_settings(directory / f"{name}.toymc.yaml", {**SMALL_PROTON_SETTINGS, **settings})


def process_toy(settings_path, output, extra_argv=()):
    """``ctapipe-process`` a settings file into ``output`` with images and parameters."""
    argv = [
        f"--input={settings_path}",
        f"--output={output}",
        "--write-images",
        "--write-parameters",
        *extra_argv,
    ]
    assert run_tool(ProcessorTool(), argv=argv, cwd=output.parent, raises=True) == 0
    return output


@pytest.fixture(scope="session")
def toy_settings_path(tmp_path_factory):
    """Function ``(name="run", **settings) -> Path`` writing a small toy settings file."""
    directory = tmp_path_factory.mktemp("toy_settings")

    def make(name="run", **settings):
        return write_toy_settings(directory, name, **settings)

    return make


@pytest.fixture(scope="session")
def toy_proton_dl1_path(tmp_path_factory):
    """DL1 file (images + parameters) of a small toy proton run."""
    directory = tmp_path_factory.mktemp("toy_proton_dl1")
    settings = write_settings(directory / "protons.toymc.yaml", SMALL_PROTON_SETTINGS)
    return process_toy(settings, directory / "protons.dl1.h5")


@pytest.fixture(scope="session")
def toy_gamma_dl1_path(tmp_path_factory):
    """DL1 file (images + parameters) of a small toy gamma run."""
    directory = tmp_path_factory.mktemp("toy_gamma_dl1")
    settings = write_settings(directory / "gammas.toymc.yaml", SMALL_GAMMA_SETTINGS)
    return process_toy(settings, directory / "gammas.dl1.h5")
