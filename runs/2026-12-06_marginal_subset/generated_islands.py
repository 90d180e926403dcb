"""Island count and peak-time spread of generated and simulated images, per image size.

(1) Mean ``morphology_n_islands`` and ``timing_deviation`` per ``hillas_intensity`` bin of
selected images (``hillas_intensity >= 250``): toy runs against generated files.
(2) For the images of each size range with two or more islands: the mean number of pixels
per island other than the brightest, the charge fraction they carry, and the median of
their brightest pixel (from the written image masks and ctapipe's ``number_of_islands``).

    python generated_islands.py --toy TOY.dl1.h5 [...] --generated GEN.dl1.h5 [...]
"""

import argparse
import warnings

import numpy as np
from astropy.table import join, vstack
from ctapipe.image import number_of_islands
from ctapipe.instrument import SubarrayDescription
from ctapipe.io import read_table

PARAMETERS = "/dl1/event/telescope/parameters/tel_001"
IMAGES = "/dl1/event/telescope/images/tel_001"
SHOWERS = "/simulation/event/subarray/shower"
INTENSITY_BINS = [(2.39, 2.5), (2.5, 2.7), (2.7, 3.0), (3.0, 3.5), (3.5, 5.0)]  # log10 p.e.
SIZE_RANGES = [(250, 500), (500, 1000), (1000, np.inf)]  # p.e.


def selected(path):
    table = join(read_table(path, PARAMETERS), read_table(path, SHOWERS), ["obs_id", "event_id"])
    return table[table["hillas_intensity"] >= 250]


def per_bin(table):
    log_size = np.log10(np.asarray(table["hillas_intensity"], dtype=float))
    islands = np.asarray(table["morphology_n_islands"], dtype=float)
    spread = np.asarray(table["timing_deviation"], dtype=float)
    cells = []
    for lo, hi in INTENSITY_BINS:
        m = (log_size >= lo) & (log_size < hi)
        cells.append(f"n={m.sum():5d} {islands[m].mean():.3f} {np.nanmean(spread[m]):.3f}")
    return " | ".join(cells)


def island_anatomy(path, max_events=6000):
    geometry = SubarrayDescription.from_hdf(path).tel[1].camera.geometry
    images = read_table(path, IMAGES)
    parameters = read_table(path, PARAMETERS)
    keep = np.asarray(parameters["hillas_intensity"]) >= 250
    rows = []
    for image_row, size in zip(
        images[keep][:max_events], parameters["hillas_intensity"][keep][:max_events], strict=True
    ):
        image = np.asarray(image_row["image"])
        n, labels = number_of_islands(geometry, np.asarray(image_row["image_mask"]))
        if n < 2:
            rows.append((size, n, np.nan, np.nan, np.nan))
            continue
        pixels = np.bincount(labels)[1:]
        charges = np.bincount(labels, weights=image)[1:]
        others = [k for k in range(n) if k != np.argmax(charges)]
        rows.append(
            (
                size,
                n,
                pixels[others].mean(),
                charges[others].sum() / charges.sum(),
                max(image[labels == k + 1].max() for k in others),
            )
        )
    rows = np.array(rows, dtype=float)
    lines = []
    for lo, hi in SIZE_RANGES:
        m = (rows[:, 0] >= lo) & (rows[:, 0] < hi)
        multi = m & (rows[:, 1] >= 2)
        lines.append(
            f"  [{lo}, {hi}) p.e.: n={m.sum():4d}, 2+ islands {multi.sum() / m.sum():.3f},"
            f" pixels per other island {rows[multi, 2].mean():.1f}, their charge fraction"
            f" {rows[multi, 3].mean():.3f}, their brightest pixel (median)"
            f" {np.median(rows[multi, 4]):.1f} p.e."
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--toy", nargs="+", required=True)
    parser.add_argument("--generated", nargs="+", required=True)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print("(1) per log10 hillas_intensity bin " + str(INTENSITY_BINS))
    print("    (events, mean islands, mean timing_deviation)")
    print(f"toy ({len(args.toy)} runs): " + per_bin(vstack([selected(p) for p in args.toy])))
    for path in args.generated:
        print(f"{path}: " + per_bin(selected(path)))
    print("\n(2) images with two or more islands")
    for path in [*args.toy[:2], *args.generated]:
        print(path)
        print(island_anatomy(path))


if __name__ == "__main__":
    main()
