"""Session fixtures with tiny trained generator checkpoints (made once per test session)."""
