"""What the extra islands of generated images are: per image of 250-630 p.e. with two or more
islands, the pixels and charge of its islands after the brightest, and their distance to the
brightest island's charge centroid.

python islands.py FILE.dl1.h5 [...]
"""

import sys

import numpy as np
from ctapipe.image.morphology import number_of_islands
from ctapipe.instrument import SubarrayDescription
from ctapipe.io import read_table


def secondary_islands(path):
    geom = SubarrayDescription.from_hdf(path).tel[1].camera.geometry
    px, py = geom.pix_x.to_value("m"), geom.pix_y.to_value("m")
    params = read_table(path, "/dl1/event/telescope/parameters/tel_001")
    images = read_table(path, "/dl1/event/telescope/images/tel_001")
    size = np.asarray(params["hillas_intensity"])
    keep = (size >= 250) & (size < 630)
    n_images, rows = int(keep.sum()), []
    for image in images[keep]:
        mask = np.asarray(image["image_mask"])
        q = np.asarray(image["image"])
        n, labels = number_of_islands(geom, mask)
        if n < 2:
            continue
        charge = np.array([q[labels == k].sum() for k in range(1, n + 1)])
        main = np.argmax(charge) + 1
        m = labels == main
        cx, cy = np.average(px[m], weights=q[m]), np.average(py[m], weights=q[m])
        for k in range(1, n + 1):
            if k == main:
                continue
            sel = labels == k
            d = np.min(np.hypot(px[sel] - cx, py[sel] - cy))
            rows.append((sel.sum(), q[sel].sum(), q[sel].max(), d))
    return n_images, np.array(rows)


for path in sys.argv[1:]:
    n, r = secondary_islands(path)
    print(
        f"{path}: {n} images of 250-630 p.e., {len(r)} extra islands ({len(r) / n:.3f} per image)"
    )
    if len(r):
        for k in (1, 2, 3):
            sel = r[:, 0] == k if k < 3 else r[:, 0] >= 3
            print(
                f"  {k}{'+' if k == 3 else ''} pixels: {sel.sum() / n:.4f} per image,"
                f" median charge {np.median(r[sel, 1]) if sel.any() else np.nan:.1f} p.e.,"
                f" median distance {np.median(r[sel, 3]) if sel.any() else np.nan:.2f} m"
            )
