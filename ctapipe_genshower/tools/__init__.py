"""Thin ctapipe Tools, one per ``ctapipe-genshower-*`` command (see ``[project.scripts]``)."""
