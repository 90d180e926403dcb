"""``SubarrayDescription`` <-> plain JSON, for model and training files.

A model file is shared between users, so nothing in it may be able to run code. An HDF5
image of the subarray (what ``SubarrayDescription.to_hdf`` writes) cannot be decoded
safely: PyTables unpickles object attributes of every file it opens. The instrument is
therefore stored as the tables ctapipe itself writes for a subarray (layout, optics,
camera geometry and readout), each as plain JSON columns of numbers and strings, and
rebuilt in code with ctapipe's constructors (``CameraGeometry.from_table``,
``CameraReadout.from_table``, ``OpticsDescription``, ``TelescopeDescription``), the way
``SubarrayDescription.from_hdf`` rebuilds it. Decoding checks every type on the way, so a
hostile file can at most be refused with a ``ValueError``.
"""

import astropy.units as u
import numpy as np
from astropy.coordinates import EarthLocation
from astropy.table import Table

__all__ = ["SUBARRAY_FORMAT_VERSION", "subarray_from_dict", "subarray_to_dict"]

#: Version of the dictionary layout below.
SUBARRAY_FORMAT_VERSION = 1

# numpy dtype kinds a stored column may have: bool, int, unsigned, float, unicode
_ALLOWED_KINDS = "biufU"
_PLAIN = (str, int, float, bool)


def _column_to_dict(column):
    values = np.asarray(column)
    unit = getattr(column, "unit", None)
    return {
        "dtype": values.dtype.str,
        "unit": None if unit is None else unit.to_string(),
        "values": values.tolist(),
    }


def _table_to_dict(table):
    meta = {}
    for key, value in table.meta.items():
        value = value.item() if isinstance(value, np.generic) else value
        if isinstance(value, _PLAIN):
            meta[str(key)] = value
    return {
        "columns": {name: _column_to_dict(table[name]) for name in table.colnames},
        "meta": meta,
    }


def _check(condition, message):
    if not condition:
        raise ValueError(f"invalid subarray description: {message}")


def _table_from_dict(data, what):
    _check(isinstance(data, dict), f"{what} is not a table")
    columns, meta = data.get("columns"), data.get("meta", {})
    _check(isinstance(columns, dict) and columns, f"{what} has no columns")
    _check(isinstance(meta, dict), f"{what} meta is not a mapping")
    for key, value in meta.items():
        _check(isinstance(value, _PLAIN), f"{what} meta {key!r} is not a plain value")
    table = Table(meta=dict(meta))
    for name, column in columns.items():
        _check(isinstance(column, dict), f"{what} column {name!r} is not a column")
        dtype = column.get("dtype")
        try:
            dtype = np.dtype(dtype)
        except TypeError:
            _check(False, f"{what} column {name!r} has dtype {dtype!r}")
        _check(dtype.kind in _ALLOWED_KINDS, f"{what} column {name!r} has dtype {dtype}")
        values = column.get("values")
        _check(isinstance(values, list), f"{what} column {name!r} has no values")
        try:
            values = np.array(values, dtype=dtype)
        except (TypeError, ValueError):
            _check(False, f"{what} column {name!r} does not hold {dtype} values")
        unit = column.get("unit")
        _check(unit is None or isinstance(unit, str), f"{what} column {name!r} unit")
        try:
            table[name] = values if unit is None else u.Quantity(values, u.Unit(unit))
        except ValueError as err:
            _check(False, f"{what} column {name!r}: {err}")
    return table


def subarray_to_dict(subarray):
    """A JSON-able dictionary of ``subarray`` (the tables ``SubarrayDescription.to_hdf`` writes).

    Parameters
    ----------
    subarray : ctapipe.instrument.SubarrayDescription

    Returns
    -------
    dict
        ``format_version``, ``name``, ``layout``, ``optics``, and ``cameras`` (a list of
        ``{"geometry": table, "readout": table}`` indexed by the layout's ``camera_index``).
    """
    return {
        "format_version": SUBARRAY_FORMAT_VERSION,
        "name": subarray.name,
        "layout": _table_to_dict(subarray.to_table(kind="subarray", meta_convention="hdf")),
        "optics": _table_to_dict(subarray.to_table(kind="optics")),
        "cameras": [
            {
                "geometry": _table_to_dict(camera.geometry.to_table()),
                "readout": _table_to_dict(camera.readout.to_table()),
            }
            for camera in subarray.camera_types
        ],
    }


def subarray_from_dict(data):
    """Rebuild a ``SubarrayDescription`` from :func:`subarray_to_dict` output.

    Raises
    ------
    ValueError
        When ``data`` is not a valid description (wrong types, missing columns, units).
    """
    from ctapipe.coordinates import CameraFrame
    from ctapipe.instrument import (
        CameraDescription,
        CameraGeometry,
        CameraReadout,
        OpticsDescription,
        SubarrayDescription,
        TelescopeDescription,
    )

    _check(isinstance(data, dict), "not a mapping")
    version = data.get("format_version")
    _check(version == SUBARRAY_FORMAT_VERSION, f"format_version {version!r} is not supported")
    name = data.get("name")
    _check(isinstance(name, str), "name is not a string")
    cameras_data = data.get("cameras")
    _check(isinstance(cameras_data, list) and cameras_data, "no cameras")

    try:
        layout = _table_from_dict(data.get("layout"), "layout")
        optics_table = _table_from_dict(data.get("optics"), "optics")
        cameras = []
        for i, camera in enumerate(cameras_data):
            _check(isinstance(camera, dict), f"camera {i} is not a mapping")
            geometry = CameraGeometry.from_table(
                _table_from_dict(camera.get("geometry"), f"camera {i} geometry")
            )
            readout = CameraReadout.from_table(
                _table_from_dict(camera.get("readout"), f"camera {i} readout")
            )
            cameras.append((geometry, readout))
        optics = [
            OpticsDescription(
                name=str(row["optics_name"]),
                size_type=str(row["size_type"]),
                reflector_shape=str(row["reflector_shape"]),
                n_mirrors=int(row["n_mirrors"]),
                equivalent_focal_length=u.Quantity(row["equivalent_focal_length"], u.m),
                effective_focal_length=u.Quantity(row["effective_focal_length"], u.m),
                mirror_area=u.Quantity(row["mirror_area"], u.m**2),
                n_mirror_tiles=int(row["n_mirror_tiles"]),
            )
            for row in optics_table
        ]
        telescopes, positions = {}, {}
        for row in layout:
            tel_id = int(row["tel_id"])
            camera_index, optics_index = int(row["camera_index"]), int(row["optics_index"])
            _check(0 <= camera_index < len(cameras), f"tel {tel_id}: camera index")
            _check(0 <= optics_index < len(optics), f"tel {tel_id}: optics index")
            geometry, readout = cameras[camera_index]
            tel_optics = optics[optics_index]
            # each telescope gets its own camera frame, as SubarrayDescription.from_hdf does
            geometry = CameraGeometry(
                name=geometry.name,
                pix_id=geometry.pix_id,
                pix_x=geometry.pix_x,
                pix_y=geometry.pix_y,
                pix_area=geometry.pix_area,
                pix_type=geometry.pix_type,
                pix_rotation=geometry.pix_rotation,
                cam_rotation=geometry.cam_rotation,
                frame=CameraFrame(focal_length=tel_optics.effective_focal_length),
            )
            telescopes[tel_id] = TelescopeDescription(
                name=str(row["name"]),
                optics=tel_optics,
                camera=CameraDescription(name=geometry.name, geometry=geometry, readout=readout),
            )
            positions[tel_id] = u.Quantity(
                [row["pos_x"], row["pos_y"], row["pos_z"]], layout["pos_x"].unit or u.m
            )
        meta = layout.meta
        reference_location = EarthLocation(
            x=float(meta["reference_itrs_x"]) * u.m,
            y=float(meta["reference_itrs_y"]) * u.m,
            z=float(meta["reference_itrs_z"]) * u.m,
        )
    except (KeyError, TypeError, u.UnitsError) as err:
        raise ValueError(f"invalid subarray description: {type(err).__name__}: {err}") from None
    return SubarrayDescription(
        name=name,
        tel_positions=positions,
        tel_descriptions=telescopes,
        reference_location=reference_location,
    )
