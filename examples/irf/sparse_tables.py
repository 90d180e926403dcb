"""How sparse the background tables of a proton DL2 file are, and how many showers would fill them.

The numbers of docs/irf.md, "Sparse background tables":

    python examples/irf/sparse_tables.py WORK/proton_generated.dl2.h5

reads the file with the quality criteria of ``irf_mono.yaml`` (no G/H cut) and prints, for
three binnings, the empty and low-statistics bins of the 2D and 3D tables and the showers
``N = min_events / (efficiency * q10(f_b))`` for ``min_events`` in 90 % of the populated bins
(``f_b``: a bin's share of the selected events; populated: non-empty in this file; for the
3D tables ``f_b`` comes from every event rotated 200 times around the pointing, which
assumes an azimuthally symmetric detector and only removes Poisson noise).
"""

import sys
from pathlib import Path

import astropy.units as u
import numpy as np
import yaml
from ctapipe.irf.irfs import BackgroundRate2dMaker
from traitlets.config import Config

from ctapipe_genshower.irf import DL2SampleReader, bin_occupancy, table_counts

HERE = Path(__file__).resolve().parent
MIN_EVENTS = 10
N_ROTATIONS = 200


def load_config(*files):
    config = {}
    for path in files:
        for section, values in yaml.safe_load(Path(path).read_text()).items():
            config.setdefault(section, {}).update(values)
    return Config(config)


def rotated_counts(events, energy_bins, lonlat_bins, rng):
    """Expected events per 3D bin from every event rotated around the pointing."""
    lon = events["reco_fov_lon"].to_value(u.deg)
    lat = events["reco_fov_lat"].to_value(u.deg)
    r = np.hypot(lon, lat)[:, np.newaxis]
    phi = rng.uniform(0, 2 * np.pi, (len(events), N_ROTATIONS))
    energy = np.repeat(events["reco_energy"].to_value(u.TeV)[:, np.newaxis], N_ROTATIONS, axis=1)
    counts, _ = np.histogramdd(
        [energy.ravel(), (r * np.cos(phi)).ravel(), (r * np.sin(phi)).ravel()],
        bins=[
            energy_bins.to_value(u.TeV),
            lonlat_bins.to_value(u.deg),
            lonlat_bins.to_value(u.deg),
        ],
    )
    return counts / N_ROTATIONS


def report(name, events, n_showers, energy_bins, offset_bins, lonlat_bins, rng):
    print(
        f"== {name}: {len(energy_bins) - 1} energy bins "
        f"{energy_bins[0]:.3g}-{energy_bins[-1]:.3g}, {len(offset_bins) - 1} offset bins to "
        f"{offset_bins[-1]:.3g}, {len(lonlat_bins) - 1}^2 lon/lat bins to +-{lonlat_bins[-1]:.3g}"
    )
    counts = table_counts(events, energy_bins, offset_bins, lonlat_bins)
    expected = {
        "BACKGROUND": counts["BACKGROUND"].astype(float),
        "BACKGROUND_3D": rotated_counts(events, energy_bins, lonlat_bins, rng),
    }
    for table, n in counts.items():
        occ = bin_occupancy(n, MIN_EVENTS)
        populated = n > 0
        if not populated.any():
            print(f"  {table}: all {n.size} bins empty")
            continue
        q10 = np.quantile(expected[table][populated], 0.1)
        needed = MIN_EVENTS / q10 * n_showers
        print(
            f"  {table}: {n.size} bins, {occ['n_empty']} empty ({occ['n_empty'] / n.size:.0%}), "
            f"{occ['n_low']} with 1-{MIN_EVENTS - 1} events; {MIN_EVENTS} events in 90 % of the "
            f"{populated.sum()} populated bins: {needed:.3g} showers "
            f"(the tool's warning: x{occ['scale']:.3g} = {occ['scale'] * n_showers:.3g})"
        )


def main(path):
    config = load_config(HERE / "irf_mono.yaml")
    sample = DL2SampleReader(config=config).read(path)
    events, n = sample.events, sample.n_showers
    print(
        f"{path}: {n} thrown showers, {sample.n_raw_events} events "
        f"({sample.n_raw_events / n:.3%}), {len(events)} after the quality cuts "
        f"({len(events) / n:.3%})"
    )
    rng = np.random.default_rng(0)
    default = BackgroundRate2dMaker()
    lonlat_5 = np.linspace(-5, 5, 11) * u.deg
    report(
        "tool defaults", events, n, default.reco_energy_bins, default.fov_offset_bins, lonlat_5, rng
    )
    example = BackgroundRate2dMaker(
        config=load_config(HERE / "irf_mono.yaml", HERE / "background_compare.yaml")
    )
    lonlat_25 = np.linspace(-2.5, 2.5, 11) * u.deg
    e_bins, o_bins = example.reco_energy_bins, example.fov_offset_bins
    report("example", events, n, e_bins, o_bins, lonlat_25, rng)
    coarse = (
        np.geomspace(0.1, 100, 7) * u.TeV,
        np.linspace(0, 2.5, 3) * u.deg,
        np.linspace(-2.5, 2.5, 5) * u.deg,
    )
    report("coarser", events, n, *coarse, rng)


if __name__ == "__main__":
    main(sys.argv[1])
