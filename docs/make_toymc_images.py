"""Example toy-simulator images for docs/toymc.md (ctapipe CameraDisplay -> docs/images/).

python docs/make_toymc_images.py
"""

from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.table import QTable
from ctapipe.visualization import CameraDisplay
from matplotlib.figure import Figure

from ctapipe_genshower.instrument import single_telescope_subarray
from ctapipe_genshower.thrown import fov_to_altaz
from ctapipe_genshower.toymc import ToyShowerSimulator

OUT = Path(__file__).resolve().parent / "images"
POINTING = (70 * u.deg, 0 * u.deg)


def showers(energy, core_x, core_y, fov_lon=0.0, fov_lat=0.0):
    n = len(energy)
    alt, az = fov_to_altaz(np.full(n, fov_lon) * u.deg, np.full(n, fov_lat) * u.deg, *POINTING)
    return QTable(
        {
            "true_energy": np.asarray(energy) * u.TeV,
            "true_core_x": np.asarray(core_x, dtype=float) * u.m,
            "true_core_y": np.asarray(core_y, dtype=float) * u.m,
            "true_alt": alt,
            "true_az": az,
        }
    )


def first_triggered(simulator, table, primary, seed, want=None):
    """Simulate until each requested shower triggered; return its image and peak time."""
    rng = np.random.default_rng(seed)
    while True:
        result = simulator.simulate(table, rng, primary, POINTING)
        ok = result.triggered if want is None else result.triggered & want(result)
        if ok.all():
            return result


def plot(simulator, result, titles, path, quantity="image"):
    geometry = simulator.geometry
    n = len(titles)
    fig = Figure(figsize=(4.2 * n, 4.0), layout="constrained")
    axes = fig.subplots(1, n)
    for i, (ax, title) in enumerate(zip(axes, titles, strict=True)):
        values = getattr(result, quantity)[i]
        if quantity == "peak_time":
            # only pixels with signal; noise pixels have random times
            signal = result.image[i] > 3
            values = np.where(signal, values, np.median(values[signal]))
        display = CameraDisplay(geometry, image=values, ax=ax, cmap="inferno")
        display.add_colorbar(
            ax=ax, label="charge [p.e.]" if quantity == "image" else "peak time [ns]"
        )
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("")
        ax.set_ylabel("")
    fig.savefig(path, dpi=80)
    print("wrote", path)


def main():
    OUT.mkdir(exist_ok=True)
    simulator = ToyShowerSimulator(single_telescope_subarray())

    energies, impacts = [0.5, 2.0, 10.0], [60.0, 120.0, 220.0]
    gammas = first_triggered(simulator, showers(energies, impacts, [0, 0, 0]), "gamma", 1)
    titles = [f"gamma {e:g} TeV, core {r:g} m" for e, r in zip(energies, impacts, strict=True)]
    plot(simulator, gammas, titles, OUT / "toymc_gammas.png")
    plot(simulator, gammas, titles, OUT / "toymc_gamma_times.png", quantity="peak_time")

    energies, impacts = [1.0, 3.0, 10.0], [80.0, 150.0, 250.0]
    protons = first_triggered(
        simulator, showers(energies, impacts, [30, -60, 0], fov_lon=0.6, fov_lat=-0.4), "proton", 2
    )
    titles = [f"proton {e:g} TeV, core {r:g} m" for e, r in zip(energies, impacts, strict=True)]
    plot(simulator, protons, titles, OUT / "toymc_protons.png")

    simulator.muon_probability = 1.0
    simulator.muon_max_impact = 20 * u.m
    muons = first_triggered(
        simulator,
        showers([0.05, 0.05, 0.3], [0, 0, 200], [0, 0, 0]),
        "proton",
        3,
        want=lambda r: r.n_muons > 0,
    )
    titles = ["proton 0.05 TeV + muon", "proton 0.05 TeV + muon", "proton 0.3 TeV + muon"]
    plot(simulator, muons, titles, OUT / "toymc_muons.png")


if __name__ == "__main__":
    main()
