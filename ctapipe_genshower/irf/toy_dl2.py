"""Small DL2 files from an analytic detector response, written with ctapipe's DataWriter.

For tests and documentation of the IRF code without running the full toy chain: showers
are thrown with a ``ThrownDistribution``, kept with a smooth trigger probability
``(1 - exp(-E / 0.5 TeV)) * exp(-r**2 / (2 * (300 m)**2))`` and given a reconstructed
energy (log-normal, 20 %), direction (Gaussian, 0.2 deg per axis) and a uniform G/H score.
The files have the layout ``ctapipe-apply-models`` writes for a mono analysis with prefixes
``ExtraTreesRegressor`` (energy), ``disp`` (geometry) and ``ExtraTreesClassifier``.
"""

from types import SimpleNamespace

import astropy.units as u
import numpy as np
from ctapipe.containers import (
    ArrayEventContainer,
    CoordinateFrameType,
    ObservationBlockContainer,
    ParticleClassificationContainer,
    ReconstructedEnergyContainer,
    ReconstructedGeometryContainer,
    SchedulingBlockContainer,
    SimulatedEventContainer,
    SimulatedShowerContainer,
    TelescopePointingContainer,
    TelescopeTriggerContainer,
)
from ctapipe.core import Provenance
from ctapipe.io import DataWriter

from ..instrument import single_telescope_subarray
from ..thrown import fov_to_altaz

__all__ = ["trigger_probability", "write_toy_dl2"]


def trigger_probability(true_energy, core_distance):
    """The analytic detection probability used by ``write_toy_dl2``."""
    e = true_energy.to_value(u.TeV)
    r = core_distance.to_value(u.m)
    return (1 - np.exp(-e / 0.5)) * np.exp(-(r**2) / (2 * 300.0**2))


def write_toy_dl2(path, thrown, n_showers, seed=0, obs_id=1, write_distribution=True):
    """Throw ``n_showers`` with ``thrown`` and write the detected ones as a DL2 file.

    Returns
    -------
    int
        Number of events written.
    """
    rng = np.random.default_rng([seed, obs_id])
    showers = thrown.sample(n_showers, rng)
    core_distance = np.hypot(showers["true_core_x"], showers["true_core_y"])
    keep = rng.uniform(size=n_showers) < trigger_probability(showers["true_energy"], core_distance)
    detected = showers[keep]
    n = len(detected)
    reco_energy = detected["true_energy"] * np.exp(rng.normal(0, 0.2, n))
    reco_alt, reco_az = fov_to_altaz(
        detected["true_source_fov_lon"] + rng.normal(0, 0.2, n) * u.deg,
        detected["true_source_fov_lat"] + rng.normal(0, 0.2, n) * u.deg,
        thrown.pointing_alt,
        thrown.pointing_az,
    )
    reco = (reco_energy, reco_alt, reco_az, rng.uniform(size=n))

    subarray = single_telescope_subarray()
    source = SimpleNamespace(
        is_simulation=True,
        subarray=subarray,
        obs_ids=[obs_id],
        scheduling_blocks={obs_id: SchedulingBlockContainer(sb_id=np.uint64(obs_id))},
        observation_blocks={
            obs_id: ObservationBlockContainer(
                obs_id=np.uint64(obs_id),
                sb_id=np.uint64(obs_id),
                subarray_pointing_lat=thrown.pointing_alt.to(u.deg),
                subarray_pointing_lon=thrown.pointing_az.to(u.deg),
                subarray_pointing_frame=CoordinateFrameType.ALTAZ,
            )
        },
        simulation_config={obs_id: thrown.simulation_config(n_showers, run_number=obs_id)},
        atmosphere_density_profile=None,
    )
    provenance = Provenance()
    provenance.start_activity("write_toy_dl2")
    try:
        distribution = None
        if write_distribution:
            distribution = thrown.shower_distribution(obs_id, showers["true_energy"], core_distance)
        _write(source, path, thrown, obs_id, detected, reco, distribution)
    finally:
        provenance.finish_activity()
    return n


def _write(source, path, thrown, obs_id, detected, reco, distribution):
    reco_energy, reco_alt, reco_az, gh_score = reco
    with DataWriter(
        source,
        output_path=path,
        overwrite=True,
        write_dl1_images=False,
        write_dl1_parameters=False,
        write_dl2=True,
    ) as writer:
        for i in range(len(detected)):
            event = ArrayEventContainer()
            event.index.obs_id = obs_id
            event.index.event_id = i + 1
            event.trigger.tels_with_trigger = np.array([1])
            event.trigger.tel[1] = TelescopeTriggerContainer()
            event.monitoring.tel[1].pointing = TelescopePointingContainer(
                altitude=thrown.pointing_alt.to(u.rad), azimuth=thrown.pointing_az.to(u.rad)
            )
            row = detected[i]
            event.simulation = SimulatedEventContainer(
                shower=SimulatedShowerContainer(
                    energy=row["true_energy"],
                    alt=row["true_alt"],
                    az=row["true_az"],
                    core_x=row["true_core_x"],
                    core_y=row["true_core_y"],
                    shower_primary_id=101,
                )
            )
            energy = ReconstructedEnergyContainer(
                energy=reco_energy[i], is_valid=True, telescopes=np.array([True])
            )
            energy.prefix = "ExtraTreesRegressor"
            geometry = ReconstructedGeometryContainer(
                alt=reco_alt[i], az=reco_az[i], is_valid=True, telescopes=np.array([True])
            )
            geometry.prefix = "disp"
            classification = ParticleClassificationContainer(
                prediction=gh_score[i], is_valid=True, telescopes=np.array([True])
            )
            classification.prefix = "ExtraTreesClassifier"
            event.dl2.stereo.energy["ExtraTreesRegressor"] = energy
            event.dl2.stereo.geometry["disp"] = geometry
            event.dl2.stereo.classification["ExtraTreesClassifier"] = classification
            writer(event)
        if distribution is not None:
            writer.write_simulated_shower_distributions({obs_id: distribution})
