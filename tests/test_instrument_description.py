"""The plain-JSON subarray description of model and training files."""

import json

import astropy.units as u
import numpy as np
import pytest
from ctapipe.io import EventSource

from ctapipe_genshower.instrument import single_telescope_subarray
from ctapipe_genshower.instrument.description import subarray_from_dict, subarray_to_dict


def _roundtrip(subarray):
    return subarray_from_dict(json.loads(json.dumps(subarray_to_dict(subarray))))


def test_roundtrip_toy_subarray():
    subarray = single_telescope_subarray(tel_id=3, position=[10.0, -5.0, 1.0] * u.m)
    back = _roundtrip(subarray)
    assert back == subarray
    assert back.name == subarray.name
    tel, tel_back = subarray.tel[3], back.tel[3]
    assert tel_back.optics.effective_focal_length == tel.optics.effective_focal_length
    assert tel_back.camera.geometry.frame.focal_length == tel.optics.effective_focal_length
    assert np.array_equal(tel_back.camera.geometry.pix_area, tel.camera.geometry.pix_area)
    assert tel_back.camera.readout == tel.camera.readout


@pytest.mark.simtel
def test_roundtrip_simtel_subarrays(simtel_dir):
    for path in sorted(simtel_dir.glob("*.simtel.zst")):
        with EventSource(path, max_events=1) as source:
            subarray = source.subarray
        back = _roundtrip(subarray)
        assert back == subarray, path.name
        for tel_id in subarray.tel_ids:
            assert back.tel[tel_id].name == subarray.tel[tel_id].name


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: d.update(format_version=99), "format_version"),
        (lambda d: d["layout"]["meta"].update(SUBARRAY={"py/object": "os.system"}), "plain"),
        (lambda d: d["cameras"][0]["geometry"]["columns"]["pix_x"].update(dtype="|O"), "dtype"),
        (lambda d: d["cameras"][0]["geometry"]["columns"]["pix_x"].update(values="x"), "values"),
        (lambda d: d["cameras"][0]["geometry"]["columns"]["pix_x"].update(unit="bogus"), "pix_x"),
        (lambda d: d["optics"]["columns"].pop("mirror_area"), "mirror_area"),
        (lambda d: d.update(cameras=[]), "no cameras"),
    ],
)
def test_damaged_descriptions_are_refused(damage, message):
    data = json.loads(json.dumps(subarray_to_dict(single_telescope_subarray())))
    damage(data)
    with pytest.raises(ValueError, match=message):
        subarray_from_dict(data)
