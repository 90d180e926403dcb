"""Shared fixtures. Data files are made once per session (session-scoped) and kept small."""

from pathlib import Path

import pytest

SHARED_SIMTEL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "simtel"


@pytest.fixture(scope="session")
def simtel_dir():
    """The real sim_telarray files beside the project (``../shared/data/simtel``)."""
    if not SHARED_SIMTEL.is_dir():
        pytest.skip(f"real sim_telarray files not found at {SHARED_SIMTEL} (needs ../shared)")
    return SHARED_SIMTEL


# Fixtures owned by the subpackages' tests, kept in their own files.
pytest_plugins = ["fixtures_toymc", "fixtures_model"]
