"""Session fixtures with small toy-simulator DL1 files (made once per test session)."""
