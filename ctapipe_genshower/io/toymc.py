"""``ToyShowerEventSource``: the toy air-shower simulator as a ctapipe EventSource.

``ctapipe-process -i protons.toymc.yaml -o protons.dl1.h5 --write-images`` picks this
source for any ``*.toymc.yaml`` settings file. Every setting in the file is also a trait
(``--ToyShowerEventSource.n_showers=...``, ``--ToyShowerSimulator.trigger_threshold=...``);
a trait given explicitly (command line, config file, keyword) overrides the file. The
physics is :class:`~ctapipe_genshower.toymc.ToyShowerSimulator`; this module only wires it.

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

from dataclasses import dataclass
from pathlib import Path

import astropy.units as u
import numpy as np
from ctapipe.containers import SimulatedShowerContainer
from ctapipe.core import Provenance, ToolConfigurationError
from ctapipe.core.traits import CaselessStrEnum, Float
from traitlets import TraitError

from ..instrument import single_telescope_subarray
from ..thrown import ThrownDistribution
from ..toymc.settings import SETTINGS_SUFFIX, read_settings
from ..toymc.simulator import PRIMARY_IDS, ToyShowerSimulator
from .simulated_run import (
    THROW_STREAM,
    THROWN_TRAITS,
    RunPlan,
    SimulatedRunEventSource,
    quantity_trait,
)

__all__ = [
    "CHUNK_SIZE",
    "DETECTOR_PROG_ID",
    "RUN_SETTINGS",
    "ToyRunPlan",
    "ToyShowerEventSource",
]

#: Showers per chunk; part of the reproducibility contract (changing it changes the run).
CHUNK_SIZE = 1000
#: ``SimulationConfigContainer.detector_prog_id`` of toy runs (sim_telarray is 1).
DETECTOR_PROG_ID = 101
#: Settings-file keys that are traits of the source (others belong to ``ToyShowerSimulator``).
RUN_SETTINGS = ("primary", "n_showers", "seed", "obs_id", *THROWN_TRAITS)
_SIMULATOR_SECTION = "ToyShowerSimulator"
#: Spawn key of the simulation stream of a chunk (the throw uses ``THROW_STREAM``).
_SIMULATION_STREAM = 1
_TEL_ID = 1
#: The trait defaults are those of ``ThrownDistribution``.
_DEFAULT_THROWN = ThrownDistribution()


@dataclass
class ToyRunPlan(RunPlan):
    """The plan of a toy run.

    Attributes
    ----------
    events : list of ctapipe.containers.ArrayEventContainer or None
        The run's events, simulated up front when ``max_events`` cuts the run; ``None``
        when they are simulated while the run is read.
    """

    events: list | None = None


def _has_content(path):
    """Whether a text file has anything but blank lines and YAML comments."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return False
    return any(line.strip() and not line.strip().startswith("#") for line in text.splitlines())


class ToyShowerEventSource(SimulatedRunEventSource):
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
    energy_min = quantity_trait(u.TeV, _DEFAULT_THROWN.energy_min, "Minimum thrown energy")
    energy_max = quantity_trait(u.TeV, _DEFAULT_THROWN.energy_max, "Maximum thrown energy")
    spectral_index = Float(
        _DEFAULT_THROWN.spectral_index, help="Thrown spectral index (dN/dE ~ E**index)"
    ).tag(config=True)
    max_scatter_radius = quantity_trait(
        u.m, _DEFAULT_THROWN.max_scatter_radius, "Radius of the disc of thrown core positions"
    )
    min_viewcone = quantity_trait(
        u.deg, _DEFAULT_THROWN.min_viewcone, "Inner radius of the cone of thrown directions"
    )
    max_viewcone = quantity_trait(
        u.deg, _DEFAULT_THROWN.max_viewcone, "Outer radius of the cone of thrown directions"
    )
    pointing_alt = quantity_trait(u.deg, _DEFAULT_THROWN.pointing_alt, "Pointing altitude")
    pointing_az = quantity_trait(u.deg, _DEFAULT_THROWN.pointing_az, "Pointing azimuth")

    producer_id = "ctapipe-genshower-toymc"
    detector_prog_id = DETECTOR_PROG_ID
    chunk_size = CHUNK_SIZE

    def __init__(self, input_url=None, config=None, parent=None, **kwargs):
        super().__init__(input_url=input_url, config=config, parent=parent, **kwargs)
        settings = self._read_settings_file(self.input_url)
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

        subarray = single_telescope_subarray(tel_id=_TEL_ID)
        self.simulator = ToyShowerSimulator(subarray, tel_id=_TEL_ID, parent=self)
        self._apply_settings(self.simulator, simulator_settings, explicit=set())
        thrown = self._make_thrown()

        Provenance().add_input_file(
            str(self.input_url), role="ToyShowerEventSource settings", add_meta=False
        )
        self._start_run(subarray, _TEL_ID, thrown)
        self._set_plan(self._plan_run())
        events = self._plan.events
        self.log.info(
            "obs_id %d: %s, %d showers thrown%s",
            self.obs_id,
            self.primary,
            self.n_thrown,
            f", {len(events)} triggered (max_events)" if events is not None else "",
        )

    # -- settings ------------------------------------------------------------------------
    @staticmethod
    def _read_settings_file(path):
        """The file's settings; a one-line error for an empty, malformed or non-mapping file."""
        try:
            settings = read_settings(path)
        except ValueError as err:
            # YAML parser messages span several lines (context, marks): one line for the log
            message = " ".join(str(err).split())
            if str(path) not in message:  # e.g. a UnicodeDecodeError of a binary file
                message = f"Cannot read toy simulation settings {path}: {message}"
            raise ToolConfigurationError(message) from None
        if not settings and not _has_content(path):
            raise ToolConfigurationError(
                f"Toy simulation settings {path} are empty: expected a YAML mapping of"
                " ToyShowerEventSource settings (e.g. examples/protons.toymc.yaml)"
            )
        return settings

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
    def _simulate(self, chunk):
        showers, _ = self._throw(chunk)
        result = self.simulator.simulate(
            showers,
            self._rng(chunk, _SIMULATION_STREAM),
            primary=self.primary,
            pointing=(self.thrown.pointing_alt, self.thrown.pointing_az),
        )
        return showers, result

    def _plan_run(self):
        """Thrown count and shower histogram; with ``max_events`` also the events themselves."""
        if self.max_events:
            return self._simulate_short_run()
        distribution = None
        for chunk in range(self.n_chunks):
            rng = self._rng(chunk, THROW_STREAM)
            n = self._n_in_chunk(chunk)
            # the first draws of ThrownDistribution.sample: energies, then cores
            energy = self.thrown.sample_energy(n, rng)
            core_x, core_y = self.thrown.sample_core(n, rng)
            distribution = self._add_to_distribution(distribution, energy, core_x, core_y)
        return ToyRunPlan(n_thrown=self.n_showers, distribution=distribution)

    def _simulate_short_run(self):
        """Simulate up to the ``max_events``-th triggered shower; count showers up to it."""
        events = []
        distribution = None
        n_thrown = 0
        for chunk in range(self.n_chunks):
            showers, result = self._simulate(chunk)
            new = list(self._events(chunk, showers, result, count=len(events)))
            needed = self.max_events - len(events)
            if len(new) >= needed:
                new = new[:needed]
                n_in_chunk = int(new[-1].index.event_id) - chunk * self.chunk_size
            else:
                n_in_chunk = len(showers)
            events.extend(new)
            thrown = showers[:n_in_chunk]
            distribution = self._add_to_distribution(
                distribution, thrown["true_energy"], thrown["true_core_x"], thrown["true_core_y"]
            )
            n_thrown += n_in_chunk
            if len(events) >= self.max_events:
                break
        return ToyRunPlan(n_thrown=n_thrown, distribution=distribution, events=events)

    # -- EventSource interface -------------------------------------------------------------
    @staticmethod
    def is_compatible(file_path):
        """True for any ``*.toymc.yaml`` file (the suffix is this source's own).

        An empty or malformed settings file is claimed too, so that ``__init__`` refuses it
        with the real reason instead of ctapipe's "no compatible EventSource".
        """
        try:
            path = Path(file_path)
            return path.name.endswith(SETTINGS_SUFFIX) and path.is_file()
        except (TypeError, ValueError, OSError):
            return False

    def _generator(self):
        if self._plan.events is not None:
            yield from self._plan.events
            return
        count = 0
        for chunk in range(self.n_chunks):
            showers, result = self._simulate(chunk)
            for event in self._events(chunk, showers, result, count):
                count += 1
                yield event

    def _events(self, chunk, showers, result, count):
        """The triggered events of one simulated chunk, ``event.count`` from ``count``."""
        primary_id = PRIMARY_IDS[self.primary]
        for row, i in enumerate(np.flatnonzero(result.triggered)):
            shower = showers[i]
            truth = SimulatedShowerContainer(
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
            yield self._make_event(
                count=count + row,
                event_id=chunk * self.chunk_size + int(i) + 1,
                shower=truth,
                image=result.image[row],
                peak_time=result.peak_time[row],
                true_image=result.true_image[row],
            )
