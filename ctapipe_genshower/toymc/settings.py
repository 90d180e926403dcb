"""``<name>.toymc.yaml``: the settings file of a toy simulation run.

A YAML mapping of ``ToyShowerEventSource`` traits (``primary``, ``n_showers``, ``seed``,
``obs_id``, the thrown spectrum, scatter radius, viewcone and pointing), plus an optional
``ToyShowerSimulator`` mapping of physics/detector traits (e.g. ``trigger_threshold``).
Quantities are strings with units (``"100 TeV"``, ``"5 deg"``).
"""

from pathlib import Path

__all__ = ["SETTINGS_SUFFIX", "is_settings_file", "read_settings", "write_settings"]

SETTINGS_SUFFIX = ".toymc.yaml"
#: Files larger than this are not settings files (keeps ``is_compatible`` cheap).
_MAX_SIZE = 1 << 20


def is_settings_file(path):
    """True for a readable ``*.toymc.yaml`` file holding a YAML mapping."""
    try:
        path = Path(path)
        if not path.name.endswith(SETTINGS_SUFFIX) or not path.is_file():
            return False
        if path.stat().st_size > _MAX_SIZE:
            return False
        return isinstance(_load(path), dict)
    except Exception:
        return False


def _load(path):
    import yaml

    with open(path) as f:
        return yaml.safe_load(f)


def read_settings(path):
    """Read a settings file; a clear ``ValueError`` for anything but a YAML mapping."""
    import yaml

    path = Path(path)
    try:
        data = _load(path)
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"Cannot read toy simulation settings {path}: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"Toy simulation settings {path} must be a YAML mapping")
    return data


def _plain(value):
    """YAML-friendly form: quantities as ``"value unit"`` strings."""
    if hasattr(value, "unit") and hasattr(value, "value"):
        return f"{value.value} {value.unit.to_string()}".strip()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def write_settings(path, settings):
    """Write a settings mapping (quantities allowed) to ``path``."""
    import yaml

    path = Path(path)
    if not path.name.endswith(SETTINGS_SUFFIX):
        raise ValueError(f"Settings file name must end with {SETTINGS_SUFFIX}: {path}")
    with open(path, "w") as f:
        yaml.safe_dump(_plain(dict(settings)), f, sort_keys=False)
    return path
