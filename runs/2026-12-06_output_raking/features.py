"""Refiner feature columns of the selected images of DL1 files, cached as npz.

python features.py OUT_DIR FILE.dl1.h5 [...]: for each file, its images with
``hillas_intensity >= 250`` (the training selection) re-parameterised by the generator's own
``ImageReselection.parameters`` (ctapipe's default ``ImageProcessor`` and the largest time
residual), the five shower conditions, and ``n_islands`` etc. as the refiner reads them;
written to OUT_DIR/<file stem>.npz.
"""

import sys
import time
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.table import join
from ctapipe.instrument import SubarrayDescription
from ctapipe.io import read_table

from ctapipe_genshower.data.conditions import conditions_from_truth
from ctapipe_genshower.data.dl1 import source_position_in_telescope_frame
from ctapipe_genshower.io.reselection import ImageReselection
from ctapipe_genshower.model.density_ratio import (
    REFINER_FEATURES,
    TIME_RESIDUAL_FEATURE,
    refiner_features,
)

SELECTION = [("size", "hillas_intensity >= 250")]
FEATURES = (*REFINER_FEATURES, TIME_RESIDUAL_FEATURE)


def main(out_dir, *files):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for path in files:
        target = out / (Path(path).name.split(".")[0] + ".npz")
        if target.exists():
            continue
        t0 = time.perf_counter()
        subarray = SubarrayDescription.from_hdf(path)
        tel_id = next(iter(subarray.tel))
        params = read_table(path, f"/dl1/event/telescope/parameters/tel_{tel_id:03d}")
        images = read_table(path, f"/dl1/event/telescope/images/tel_{tel_id:03d}")
        showers = read_table(path, "/simulation/event/subarray/shower")
        keep = np.asarray(params["hillas_intensity"]) >= 250
        images = images[keep]
        images = join(images, showers, keys=["obs_id", "event_id"], join_type="left")
        reselection = ImageReselection(subarray, tel_id, SELECTION)
        table, _ = reselection.parameters(
            np.asarray(images["image"]), np.asarray(images["peak_time"])
        )
        passed = np.asarray(table["hillas_intensity"]) >= 250
        # the fixed pointing of these files (alt 70 deg, az 0 deg)
        fov_lon, fov_lat = source_position_in_telescope_frame(
            images["true_alt"].quantity, images["true_az"].quantity, 70 * u.deg, 0 * u.deg
        )
        conditions = conditions_from_truth(
            images["true_energy"].quantity,
            images["true_core_x"].quantity,
            images["true_core_y"].quantity,
            fov_lon,
            fov_lat,
            subarray.positions[tel_id],
        )
        x = refiner_features({n: table[n] for n in table.colnames}, conditions, FEATURES)
        np.savez(target, x=x[passed], obs_id=np.asarray(images["obs_id"])[passed])
        print(
            f"{path}: {passed.sum()} of {len(passed)} images, {time.perf_counter() - t0:.0f} s",
            flush=True,
        )


if __name__ == "__main__":
    main(*sys.argv[1:])
