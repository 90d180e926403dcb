"""Shared fixtures. Data files are made once per session (session-scoped) and kept small."""

import os
from pathlib import Path

import pytest

SHARED_SIMTEL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "simtel"


@pytest.fixture(scope="session")
def simtel_dir():
    """The real sim_telarray files beside the project (``../shared/data/simtel``)."""
    if not SHARED_SIMTEL.is_dir():
        pytest.skip(f"real sim_telarray files not found at {SHARED_SIMTEL} (needs ../shared)")
    return SHARED_SIMTEL


def pytest_configure(config):
    """Under pytest-xdist (the README's ``-n 2``), one torch thread per worker: two workers
    of two threads each oversubscribe two cores, and a waiting OpenMP thread spins."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = "1"  # the tools the tests start in subprocesses
        import torch

        torch.set_num_threads(1)


# Fixtures owned by the subpackages' tests, kept in their own files.
pytest_plugins = ["fixtures_toymc", "fixtures_model"]
