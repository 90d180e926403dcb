"""Peak-time residuals of cleaned pixels from each image's linear time fit, by pixel charge.

python time_residuals.py SIMULATED.dl1.h5 GENERATED.dl1.h5 [...]: the first 1794 selected
images (``hillas_intensity >= 250``) of each file; the fit is ctapipe's (time against the
longitudinal coordinate on the Hillas axis, weights sqrt(charge)), recomputed here to keep the
residuals. Also the charge of pixels outside the cleaning mask by distance to it.
"""

import sys

import numpy as np
from ctapipe.image import camera_to_shower_coordinates
from ctapipe.instrument import SubarrayDescription
from ctapipe.io import read_table
from scipy.spatial import cKDTree

N_IMAGES = 1794
CHARGE_EDGES = np.array([0, 7, 10, 15, 25, 50, np.inf])
DISTANCE_EDGES = np.array([0, 0.06, 0.12, 0.25, 0.5, np.inf])  # m from the nearest cleaned pixel


def selected(path):
    p = read_table(path, "/dl1/event/telescope/parameters/tel_001")
    im = read_table(path, "/dl1/event/telescope/images/tel_001")
    assert (np.asarray(p["event_id"]) == np.asarray(im["event_id"])).all()
    sel = np.asarray(p["hillas_intensity"]) >= 250
    return p[sel][:N_IMAGES], im[sel][:N_IMAGES]


def main(paths):
    geom = SubarrayDescription.from_hdf(paths[0]).tel[1].camera.geometry
    px, py = geom.pix_x.to_value("m"), geom.pix_y.to_value("m")
    xy = np.c_[px, py]
    for path in paths:
        params, images = selected(path)
        res, charge, worst = [], [], []
        far = np.zeros((len(DISTANCE_EDGES) - 1, 2))
        for row, image in zip(params, images, strict=True):
            m = np.asarray(image["image_mask"])
            q, t = np.asarray(image["image"]), np.asarray(image["peak_time"])
            cog = np.average(xy[m], axis=0, weights=q[m])
            longi, _ = camera_to_shower_coordinates(
                px[m], py[m], cog[0], cog[1], np.deg2rad(float(row["hillas_psi"]))
            )
            fit = np.polyfit(longi, t[m], 1, w=np.sqrt(q[m]))
            r = np.abs(t[m] - np.polyval(fit, longi))
            res.append(r), charge.append(q[m]), worst.append(r.max())
            d, _ = cKDTree(xy[m]).query(xy[~m])
            b = np.digitize(d, DISTANCE_EDGES) - 1
            far[:, 0] += np.bincount(b, minlength=len(far))[: len(far)]
            far[:, 1] += np.bincount(b, weights=q[~m] > 4, minlength=len(far))[: len(far)]
        res, charge, worst = np.concatenate(res), np.concatenate(charge), np.asarray(worst)
        b = np.digitize(charge, CHARGE_EDGES) - 1
        dev = np.asarray(params["timing_deviation"], dtype=float)
        print(f"{path.split('/')[-1]}: {len(params)} images")
        print(
            "  cleaned pixels by charge: p.e. range, share, rms residual,"
            " P(|r| > 5 ns), P(|r| > 10 ns)"
        )
        for k in range(len(CHARGE_EDGES) - 1):
            rk = res[b == k]
            print(
                f"    {CHARGE_EDGES[k]:g}-{CHARGE_EDGES[k + 1]:g}: {np.mean(b == k):.2f}"
                f" {np.sqrt(np.mean(rk**2)):.2f} ns {np.mean(rk > 5):.4f} {np.mean(rk > 10):.4f}"
            )
        clean = worst <= 8
        print(
            f"  images with a pixel > 8 ns off the fit: {np.mean(~clean):.3f} (> 15 ns"
            f" {np.mean(worst > 15):.3f}); timing_deviation of the others: median"
            f" {np.nanmedian(dev[clean]):.3f}, 90 % {np.nanquantile(dev[clean], 0.9):.3f}"
        )
        print(
            "  pixels outside the mask above 4 p.e., by distance to it (m): "
            + ", ".join(
                f"<{DISTANCE_EDGES[k + 1]:g} {far[k, 1] / far[k, 0]:.4f}" for k in range(len(far))
            )
        )


if __name__ == "__main__":
    main(sys.argv[1:])
