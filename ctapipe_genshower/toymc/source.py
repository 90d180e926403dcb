"""``ToyShowerEventSource``: the toy air-shower simulator as a ctapipe EventSource.

``ctapipe-process -i protons.toymc.yaml -o protons.dl1.h5 --write-images`` picks this
source for any ``*.toymc.yaml`` settings file. Every setting in the file is also a trait
(``--ToyShowerEventSource.n_showers=...``, ``--ToyShowerSimulator.trigger_threshold=...``);
a trait given explicitly (command line, config file, keyword) overrides the file.

Bookkeeping works like sim_telarray's: ``n_showers`` showers are thrown from the
:class:`~ctapipe_genshower.thrown.ThrownDistribution` in chunks of ``CHUNK_SIZE``; chunk ``c``
draws its showers from ``SeedSequence([seed, obs_id, c])`` stream 0 and its simulation from
stream 1, so a run is reproducible and the thrown showers can be histogrammed without
simulating them. Only triggered events are yielded (``event_id`` = shower number, 1-based);
``simulation_config.n_showers`` and the shower histogram count every thrown shower.

When ``max_events`` is set, the run is cut right after the ``max_events``-th triggered
shower: the source simulates up to that point when it is constructed (the DataWriter reads
``simulation_config`` before the first event) and keeps those events in memory, and the
thrown count and histogram are those of the showers thrown up to and including the last
yielded one. A shortened run is therefore a smaller complete run.
"""

import astropy.units as u
import numpy as np
from astropy.time import Time
from ctapipe.containers import (
    ArrayEventContainer,
    ArrayPointingContainer,
    DL1CameraContainer,
    EventIndexContainer,
    EventType,
    SimulatedCameraContainer,
    SimulatedEventContainer,
    SimulatedShowerContainer,
    TelescopeImpactParameterContainer,
    TelescopePointingContainer,
    TelescopeTriggerContainer,
    TriggerContainer,
)
from ctapipe.core import Map, Provenance, ToolConfigurationError
from ctapipe.core.traits import AstroQuantity, CaselessStrEnum, Float, Int
from ctapipe.io import DataLevel, EventSource
from traitlets import TraitError

from ..instrument import single_telescope_subarray
from ..run_blocks import simulated_run_blocks
from ..thrown import ThrownDistribution
from .settings import is_settings_file, read_settings
from .simulator import PRIMARY_IDS, ToyShowerSimulator

__all__ = ["CHUNK_SIZE", "DETECTOR_PROG_ID", "RUN_SETTINGS", "ToyShowerEventSource"]

#: Showers per chunk; part of the reproducibility contract (changing it changes the run).
CHUNK_SIZE = 1000
#: ``SimulationConfigContainer.detector_prog_id`` of toy runs (sim_telarray is 1).
DETECTOR_PROG_ID = 101
#: Settings-file keys that are traits of the source (others belong to ``ToyShowerSimulator``).
RUN_SETTINGS = (
    "primary",
    "n_showers",
    "seed",
    "obs_id",
    "energy_min",
    "energy_max",
    "spectral_index",
    "max_scatter_radius",
    "min_viewcone",
    "max_viewcone",
    "pointing_alt",
    "pointing_az",
)
_SIMULATOR_SECTION = "ToyShowerSimulator"
_THROW_STREAM = 0
_SIMULATION_STREAM = 1
_EVENT_SPACING = 1 * u.ms
_EPOCH = Time("2025-01-01T00:00:00", scale="utc")
_TEL_ID = 1


def _quantity(default, unit, help):
    return AstroQuantity(default_value=default * unit, physical_type=unit, help=help).tag(
        config=True
    )


class ToyShowerEventSource(EventSource):
    """Toy CORSIKA+sim_telarray stand-in: triggered single-telescope DL1 images with truth.

    The input is a ``*.toymc.yaml`` settings file (see :mod:`ctapipe_genshower.toymc.settings`).
    Events carry DL1 images and peak times (float32), the true photo-electron image (int32),
    shower truth, impact distance, trigger and pointing; ``simulation_config`` and
    ``simulated_shower_distributions`` describe all thrown showers, so pyirf weights and
    ``ctapipe-merge`` work as for sim_telarray output.
    """

    primary = CaselessStrEnum(
        list(PRIMARY_IDS), default_value="proton", help="Primary particle"
    ).tag(config=True)
    n_showers = Int(10_000, min=1, help="Number of showers to throw").tag(config=True)
    seed = Int(0, min=0, help="Random seed of the run (combined with obs_id)").tag(config=True)
    obs_id = Int(1, min=1, help="Observation (run) id; unique per run for merging").tag(config=True)
    energy_min = _quantity(0.1, u.TeV, "Minimum thrown energy")
    energy_max = _quantity(100.0, u.TeV, "Maximum thrown energy")
    spectral_index = Float(-2.0, help="Thrown spectral index (dN/dE ~ E**index)").tag(config=True)
    max_scatter_radius = _quantity(1000.0, u.m, "Radius of the disc of thrown core positions")
    min_viewcone = _quantity(0.0, u.deg, "Inner radius of the cone of thrown directions")
    max_viewcone = _quantity(0.0, u.deg, "Outer radius of the cone of thrown directions")
    pointing_alt = _quantity(70.0, u.deg, "Pointing altitude")
    pointing_az = _quantity(0.0, u.deg, "Pointing azimuth")

    def __init__(self, input_url=None, config=None, parent=None, **kwargs):
        super().__init__(input_url=input_url, config=config, parent=parent, **kwargs)
        self.metadata["is_simulation"] = True
        try:
            settings = read_settings(self.input_url)
        except ValueError as err:
            raise ToolConfigurationError(str(err)) from err
        simulator_settings = settings.pop(_SIMULATOR_SECTION, None) or {}
        unknown = sorted(set(settings) - set(RUN_SETTINGS))
        if unknown:
            raise ToolConfigurationError(
                f"Unknown settings {unknown} in {self.input_url}; allowed: "
                f"{list(RUN_SETTINGS)} and a {_SIMULATOR_SECTION!r} mapping"
            )
        if not isinstance(simulator_settings, dict):
            raise ToolConfigurationError(
                f"{_SIMULATOR_SECTION!r} in {self.input_url} must be a mapping"
            )
        self.file_settings = {**settings, _SIMULATOR_SECTION: dict(simulator_settings)}
        self._apply_settings(self, settings, explicit=set(kwargs))

        self._subarray = single_telescope_subarray(tel_id=_TEL_ID)
        self.simulator = ToyShowerSimulator(self._subarray, tel_id=_TEL_ID, parent=self)
        self._apply_settings(self.simulator, simulator_settings, explicit=set())
        self.thrown = self._make_thrown()

        Provenance().add_input_file(
            str(self.input_url), role="ToyShowerEventSource settings", add_meta=False
        )
        self._start_time = _EPOCH + (self.obs_id - 1) * u.day
        alt, az = self.thrown.pointing_alt.to(u.rad), self.thrown.pointing_az.to(u.rad)
        self._pointing = TelescopePointingContainer(altitude=alt, azimuth=az)
        self._array_pointing = ArrayPointingContainer(array_altitude=alt, array_azimuth=az)
        self._plan_run()
        self._fill_run_containers()
        self.log.info(
            "obs_id %d: %s, %d showers thrown%s",
            self.obs_id,
            self.primary,
            self.n_thrown,
            f", {len(self._cached)} triggered (max_events)" if self._cached is not None else "",
        )

    # -- settings ------------------------------------------------------------------------
    def _apply_settings(self, component, settings, explicit):
        """Set file values on ``component`` unless the trait was configured explicitly."""
        explicit = explicit | set(component._find_my_config(component.config))
        allowed = component.class_trait_names(config=True)
        for key, value in settings.items():
            if key not in allowed:
                raise ToolConfigurationError(
                    f"Unknown setting {key!r} for {type(component).__name__} in {self.input_url}"
                )
            if key in explicit:
                self.log.info(
                    "%s.%s set explicitly, ignoring the file", type(component).__name__, key
                )
                continue
            try:
                setattr(component, key, value)
            except TraitError as err:
                raise ToolConfigurationError(
                    f"Bad value for {key!r} in {self.input_url}: {err}"
                ) from err

    def _make_thrown(self):
        try:
            return ThrownDistribution(
                energy_min=self.energy_min.to(u.TeV),
                energy_max=self.energy_max.to(u.TeV),
                spectral_index=float(self.spectral_index),
                max_scatter_radius=self.max_scatter_radius.to(u.m),
                min_viewcone=self.min_viewcone.to(u.deg),
                max_viewcone=self.max_viewcone.to(u.deg),
                pointing_alt=self.pointing_alt.to(u.deg),
                pointing_az=self.pointing_az.to(u.deg),
            )
        except ValueError as err:
            raise ToolConfigurationError(f"Invalid toy simulation settings: {err}") from err

    # -- chunks and the run plan -----------------------------------------------------------
    def _rng(self, chunk, stream):
        sequence = np.random.SeedSequence([self.seed, self.obs_id, chunk], spawn_key=(stream,))
        return np.random.default_rng(sequence)

    def _chunk_size(self, chunk):
        return min(CHUNK_SIZE, self.n_showers - chunk * CHUNK_SIZE)

    @property
    def n_chunks(self):
        return -(-self.n_showers // CHUNK_SIZE)

    def _throw(self, chunk):
        return self.thrown.sample(self._chunk_size(chunk), self._rng(chunk, _THROW_STREAM))

    def _simulate(self, chunk):
        showers = self._throw(chunk)
        result = self.simulator.simulate(
            showers,
            self._rng(chunk, _SIMULATION_STREAM),
            primary=self.primary,
            pointing=(self.thrown.pointing_alt, self.thrown.pointing_az),
        )
        return showers, result

    def _histogram(self, energy, core_x, core_y):
        return self.thrown.shower_distribution(
            self.obs_id, energy, np.hypot(core_x, core_y).to(u.m)
        )

    def _plan_run(self):
        """Thrown count and shower histogram; with ``max_events`` also the events themselves."""
        self._cached = None
        energies, cores_x, cores_y = [], [], []
        if not self.max_events:
            for chunk in range(self.n_chunks):
                rng = self._rng(chunk, _THROW_STREAM)
                n = self._chunk_size(chunk)
                # the first draws of ThrownDistribution.sample: energies, then cores
                energies.append(self.thrown.sample_energy(n, rng))
                core_x, core_y = self.thrown.sample_core(n, rng)
                cores_x.append(core_x)
                cores_y.append(core_y)
            self.n_thrown = self.n_showers
        else:
            self._cached = []
            n_thrown = 0
            for chunk in range(self.n_chunks):
                showers, result = self._simulate(chunk)
                events = list(self._events(chunk, showers, result, count=len(self._cached)))
                needed = self.max_events - len(self._cached)
                if len(events) >= needed:
                    events = events[:needed]
                    n_in_chunk = int(events[-1].index.event_id) - chunk * CHUNK_SIZE
                else:
                    n_in_chunk = len(showers)
                self._cached.extend(events)
                energies.append(showers["true_energy"][:n_in_chunk])
                cores_x.append(showers["true_core_x"][:n_in_chunk])
                cores_y.append(showers["true_core_y"][:n_in_chunk])
                n_thrown += n_in_chunk
                if len(self._cached) >= self.max_events:
                    break
            self.n_thrown = n_thrown
        self._distribution = self._histogram(
            u.Quantity(np.concatenate(energies)),
            u.Quantity(np.concatenate(cores_x)),
            u.Quantity(np.concatenate(cores_y)),
        )

    def _fill_run_containers(self):
        obs_id = self.obs_id
        alt = self.thrown.pointing_alt.to(u.rad)
        az = self.thrown.pointing_az.to(u.rad)
        self._simulation_config = {
            obs_id: self.thrown.simulation_config(
                self.n_thrown, run_number=obs_id, detector_prog_id=DETECTOR_PROG_ID
            )
        }
        self._scheduling_blocks, self._observation_blocks = simulated_run_blocks(
            obs_id, alt, az, self._start_time, producer_id="ctapipe-genshower-toymc"
        )

    # -- EventSource interface -------------------------------------------------------------
    @staticmethod
    def is_compatible(file_path):
        """True for a ``*.toymc.yaml`` file holding a YAML mapping."""
        return is_settings_file(file_path)

    @property
    def subarray(self):
        return self._subarray

    @property
    def is_simulation(self):
        return True

    @property
    def datalevels(self):
        return (DataLevel.DL1_IMAGES,)

    @property
    def obs_ids(self):
        return [self.obs_id]

    @property
    def simulation_config(self):
        return self._simulation_config

    @property
    def simulated_shower_distributions(self):
        return {self.obs_id: self._distribution}

    @property
    def scheduling_blocks(self):
        return self._scheduling_blocks

    @property
    def observation_blocks(self):
        return self._observation_blocks

    def _generator(self):
        if self._cached is not None:
            yield from self._cached
            return
        count = 0
        for chunk in range(self.n_chunks):
            showers, result = self._simulate(chunk)
            for event in self._events(chunk, showers, result, count):
                count += 1
                yield event

    def _events(self, chunk, showers, result, count):
        """The triggered events of one simulated chunk, ``event.count`` from ``count``."""
        tel_id = _TEL_ID
        primary_id = PRIMARY_IDS[self.primary]
        for row, i in enumerate(np.flatnonzero(result.triggered)):
            event_id = chunk * CHUNK_SIZE + int(i) + 1
            time = self._start_time + event_id * _EVENT_SPACING
            tel_trigger = Map(TelescopeTriggerContainer)
            tel_trigger[tel_id] = TelescopeTriggerContainer(
                time=time, event_type=EventType.SUBARRAY
            )
            shower = showers[i]
            event = ArrayEventContainer(
                index=EventIndexContainer(obs_id=self.obs_id, event_id=event_id),
                count=count + row,
                trigger=TriggerContainer(
                    event_type=EventType.SUBARRAY,
                    time=time,
                    tels_with_trigger=np.array([tel_id], dtype=np.int16),
                    tel=tel_trigger,
                ),
                simulation=SimulatedEventContainer(
                    shower=SimulatedShowerContainer(
                        energy=shower["true_energy"].to(u.TeV),
                        alt=shower["true_alt"].to(u.deg),
                        az=shower["true_az"].to(u.deg),
                        core_x=shower["true_core_x"].to(u.m),
                        core_y=shower["true_core_y"].to(u.m),
                        h_first_int=result.h_first_int[i] * u.m,
                        x_max=result.x_max[i] * u.g / u.cm**2,
                        starting_grammage=0 * u.g / u.cm**2,
                        shower_primary_id=primary_id,
                    )
                ),
            )
            event.simulation.tel[tel_id] = SimulatedCameraContainer(
                true_image=result.true_image[row],
                true_image_sum=np.int64(result.true_image[row].sum()),
                impact=TelescopeImpactParameterContainer(
                    distance=result.impact[i] * u.m,
                    distance_uncert=0 * u.m,
                    prefix="true_impact",
                ),
            )
            event.monitoring.pointing = self._array_pointing
            event.monitoring.tel[tel_id].pointing = self._pointing
            event.dl1.tel[tel_id] = DL1CameraContainer(
                image=result.image[row], peak_time=result.peak_time[row], is_valid=True
            )
            event.meta["origin"] = "ctapipe-genshower-toymc"
            event.meta["input_url"] = self.input_url
            event.meta["max_events"] = self.max_events
            yield event
