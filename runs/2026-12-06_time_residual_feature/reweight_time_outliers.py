"""How much of `timing_deviation`'s W1 is images with one pixel far off the time profile.

python reweight_time_outliers.py SIMULATED.dl1.h5 GENERATED.dl1.h5: all selected images
(``hillas_intensity >= 250``) of each file; per image the largest residual of a cleaned pixel
from the linear time fit of ``../2026-12-05_student_eta/time_residuals.py``; the shares of
images above 4-15 ns; then the W1 of ``timing_deviation`` with the generated images reweighted
so that their share above a threshold is the simulation's.
"""

import sys

import numpy as np
from ctapipe.image import camera_to_shower_coordinates
from ctapipe.instrument import SubarrayDescription
from ctapipe.io import read_table
from scipy.stats import wasserstein_distance


def load(path):
    """``timing_deviation`` and the largest time residual of each selected image."""
    params = read_table(path, "/dl1/event/telescope/parameters/tel_001")
    images = read_table(path, "/dl1/event/telescope/images/tel_001")
    selected = np.asarray(params["hillas_intensity"]) >= 250
    params, images = params[selected], images[selected]
    geom = SubarrayDescription.from_hdf(path).tel[1].camera.geometry
    px, py = geom.pix_x.to_value("m"), geom.pix_y.to_value("m")
    worst = []
    for row, image in zip(params, images, strict=True):
        m = np.asarray(image["image_mask"])
        q, t = np.asarray(image["image"]), np.asarray(image["peak_time"])
        cx, cy = np.average(px[m], weights=q[m]), np.average(py[m], weights=q[m])
        longi, _ = camera_to_shower_coordinates(
            px[m], py[m], cx, cy, np.deg2rad(float(row["hillas_psi"]))
        )
        fit = np.polyfit(longi, t[m], 1, w=np.sqrt(q[m]))
        worst.append(np.abs(t[m] - np.polyval(fit, longi)).max())
    return np.asarray(params["timing_deviation"], float), np.asarray(worst)


def main(simulated, generated):
    dev_sim, worst_sim = load(simulated)
    dev_gen, worst_gen = load(generated)
    print("images with a pixel more than X ns off: X, simulated, generated")
    for x in (4, 6, 8, 10, 15):
        print(f"  {x} {np.mean(worst_sim > x):.4f} {np.mean(worst_gen > x):.4f}")
    ok_sim, ok_gen = np.isfinite(dev_sim), np.isfinite(dev_gen)
    print(f"W1 of timing_deviation: {wasserstein_distance(dev_sim[ok_sim], dev_gen[ok_gen]):.4f}")
    for x in (6, 8, 10):
        p_sim, p_gen = np.mean(worst_sim > x), np.mean(worst_gen > x)
        weight = np.where(worst_gen > x, p_sim / p_gen, (1 - p_sim) / (1 - p_gen))
        w1 = wasserstein_distance(dev_sim[ok_sim], dev_gen[ok_gen], v_weights=weight[ok_gen])
        print(f"  reweighted to the simulation's share above {x} ns: {w1:.4f}")
    print(f"mean timing_deviation: {np.nanmean(dev_sim):.4f} / {np.nanmean(dev_gen):.4f}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
