"""``SimulatedRunEventSource``: one simulated single-telescope run, the base of both sources.

:class:`~ctapipe_genshower.io.diffusion.DiffusionEventSource` (a trained model) and
:class:`~ctapipe_genshower.io.toymc.ToyShowerEventSource` (the toy simulator) each serve a
run the way sim_telarray output is served: ``n_showers`` showers thrown from a
:class:`~ctapipe_genshower.thrown.ThrownDistribution`, only the selected (triggered) ones
yielded as events with ``event_id`` = shower number (1-based), and bookkeeping
(``simulation_config``, the thrown-shower histogram) that counts every thrown shower, so
that pyirf weights and ``ctapipe-merge`` work unchanged.

This base holds what the two share:

* the traits ``n_showers``, ``seed`` and ``obs_id``;
* the random streams: showers are thrown in chunks of ``chunk_size``, chunk ``c`` from
  ``SeedSequence([seed, obs_id, c], spawn_key=(stream,))`` (stream :data:`THROW_STREAM`
  for the throw), so a run is reproducible and its showers can be counted without
  simulating them;
* the run: start time (:func:`run_start_time`), pointing, scheduling and observation
  blocks, ``simulation_config`` and the shower histogram of a :class:`RunPlan`;
* the event container of one telescope event (:meth:`SimulatedRunEventSource._make_event`),
  with the impact distance from ctapipe's :func:`~ctapipe.coordinates.shower_impact_distance`.

A subclass sets ``producer_id``, ``detector_prog_id`` and ``chunk_size``, calls
``_start_run`` and then ``_set_plan`` from its ``__init__``, and implements
``is_compatible`` and ``_generator``. Nothing here imports torch.
"""

from dataclasses import dataclass, fields

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
    SimulatedShowerDistribution,
    TelescopeImpactParameterContainer,
    TelescopePointingContainer,
    TelescopeTriggerContainer,
    TriggerContainer,
)
from ctapipe.coordinates import shower_impact_distance
from ctapipe.core import Map
from ctapipe.core.traits import AstroQuantity, Int
from ctapipe.io import DataLevel, EventSource

from ..thrown import ThrownDistribution
from .run_blocks import simulated_run_blocks

__all__ = [
    "EPOCH",
    "EVENT_SPACING",
    "THROWN_TRAITS",
    "THROW_STREAM",
    "RunPlan",
    "SimulatedRunEventSource",
    "quantity_trait",
    "run_start_time",
]

#: Run ``obs_id`` starts at this epoch plus ``obs_id - 1`` days (deterministic output).
EPOCH = Time("2025-01-01T00:00:00", scale="utc")
#: Trigger times: events are spaced by this interval times their ``event_id`` from the start.
EVENT_SPACING = 1 * u.ms
#: Spawn key of the stream the showers of a chunk are thrown from.
THROW_STREAM = 0
#: Settings of the thrown distribution; each source has a trait of each name.
THROWN_TRAITS = tuple(field.name for field in fields(ThrownDistribution))


def run_start_time(obs_id):
    """Start time of run ``obs_id``: :data:`EPOCH` plus one day per ``obs_id`` after the first."""
    return EPOCH + (obs_id - 1) * u.day


def quantity_trait(unit, default=None, help=""):
    """A configurable ``AstroQuantity`` trait of the physical type of ``unit``.

    Parameters
    ----------
    unit : astropy.units.UnitBase
        Unit giving the physical type the values must have.
    default : astropy.units.Quantity or None
        Default value; ``None`` makes the trait optional (``None`` allowed).
    help : str
        Help text of the trait.
    """
    if default is None:
        trait = AstroQuantity(default_value=None, allow_none=True, help=help)
        # AstroQuantity cannot check the physical type of a None default; set it afterwards
        trait.physical_type = u.get_physical_type(unit)
    else:
        trait = AstroQuantity(default_value=default, physical_type=unit, help=help)
    return trait.tag(config=True)


@dataclass
class RunPlan:
    """The bookkeeping of a run, known before its first event.

    Attributes
    ----------
    n_thrown : int
        Number of thrown showers (``simulation_config.n_showers``): ``n_showers``, or fewer
        when ``max_events`` cuts the run right after its last event.
    distribution : ctapipe.containers.SimulatedShowerDistribution
        Histogram of the ``n_thrown`` thrown showers.
    """

    n_thrown: int
    distribution: SimulatedShowerDistribution


class SimulatedRunEventSource(EventSource):
    """Base of the EventSources serving one simulated single-telescope run.

    Not usable on its own (``is_compatible`` and ``_generator`` are abstract); see the
    module docstring for what a subclass provides.
    """

    n_showers = Int(
        10_000, min=1, help="Number of showers to throw (like sim_telarray's NSHOW)"
    ).tag(config=True)
    seed = Int(0, min=0, help="Random seed of the run (combined with obs_id)").tag(config=True)
    obs_id = Int(
        1, min=1, help="Observation (run) id of the events; unique per run for merging"
    ).tag(config=True)

    #: ``producer_id`` of the run's blocks and ``event.meta["origin"]`` of its events.
    producer_id = "ctapipe-genshower"
    #: ``SimulationConfigContainer.detector_prog_id`` of the runs (sim_telarray is 1).
    detector_prog_id = None
    #: Showers per chunk, each chunk with its own streams: changing it changes the run.
    chunk_size = None

    def __init__(self, input_url=None, config=None, parent=None, **kwargs):
        super().__init__(input_url=input_url, config=config, parent=parent, **kwargs)
        self.metadata["is_simulation"] = True

    # -- the run -----------------------------------------------------------------------
    def _start_run(self, subarray, tel_id, thrown):
        """Fix the telescope, the thrown distribution and the run-level containers.

        Parameters
        ----------
        subarray : ctapipe.instrument.SubarrayDescription
            The instrument of the run.
        tel_id : int
            The one telescope of ``subarray`` that has events.
        thrown : ctapipe_genshower.thrown.ThrownDistribution
            How the showers are thrown (also fixes the pointing).
        """
        self._subarray = subarray
        self._tel_id = tel_id
        self._tel_index = int(subarray.tel_index_array[tel_id])
        self.thrown = thrown
        self._start_time = run_start_time(self.obs_id)
        alt, az = thrown.pointing_alt.to(u.rad), thrown.pointing_az.to(u.rad)
        self._pointing = TelescopePointingContainer(altitude=alt, azimuth=az)
        self._array_pointing = ArrayPointingContainer(array_altitude=alt, array_azimuth=az)
        self._scheduling_blocks, self._observation_blocks = simulated_run_blocks(
            self.obs_id, alt, az, self._start_time, producer_id=self.producer_id
        )

    def _set_plan(self, plan):
        """Keep the run's :class:`RunPlan` and the ``simulation_config`` that follows from it."""
        self._plan = plan
        self._simulation_config = {
            self.obs_id: self.thrown.simulation_config(
                plan.n_thrown, run_number=self.obs_id, detector_prog_id=self.detector_prog_id
            )
        }

    # -- chunks and random streams -------------------------------------------------------
    @property
    def n_chunks(self):
        """Number of chunks the ``n_showers`` showers are thrown in."""
        return -(-self.n_showers // self.chunk_size)

    def _n_in_chunk(self, chunk):
        return min(self.chunk_size, self.n_showers - chunk * self.chunk_size)

    def _rng(self, index, stream):
        """Random generator of stream ``stream`` of chunk ``index`` of this run."""
        sequence = np.random.SeedSequence([self.seed, self.obs_id, index], spawn_key=(stream,))
        return np.random.default_rng(sequence)

    def _throw(self, chunk):
        """The thrown showers of ``chunk`` and their stream (draws that follow continue it)."""
        rng = self._rng(chunk, THROW_STREAM)
        return self.thrown.sample(self._n_in_chunk(chunk), rng), rng

    def _add_to_distribution(self, distribution, energy, core_x, core_y):
        """``distribution`` (``None`` for none yet) with these thrown showers added.

        Histograms of chunks are summed, so a run needs no memory per thrown shower.
        """
        part = self.thrown.shower_distribution(
            self.obs_id, energy, np.hypot(core_x, core_y).to(u.m)
        )
        if distribution is None:
            return part
        distribution.histogram = distribution.histogram + part.histogram
        distribution.n_entries += part.n_entries
        return distribution

    # -- events --------------------------------------------------------------------------
    def _make_event(
        self, count, event_id, shower, image, peak_time, true_image=None, true_image_sum=None
    ):
        """The event container of one triggered event of the run's telescope.

        Parameters
        ----------
        count : int
            Position of the event in the stream (``event.count``).
        event_id : int
            Shower number, 1-based.
        shower : ctapipe.containers.SimulatedShowerContainer
            Shower truth; the impact distance is computed from it.
        image, peak_time : numpy.ndarray
            DL1 charge [p.e.] and peak time [ns] per pixel (float32).
        true_image : numpy.ndarray or None
            True photo-electrons per pixel (int32).
        true_image_sum : int or None
            Their sum (None: computed from ``true_image``).

        Returns
        -------
        ctapipe.containers.ArrayEventContainer
        """
        tel_id = self._tel_id
        time = self._start_time + event_id * EVENT_SPACING
        tel_trigger = Map(TelescopeTriggerContainer)
        tel_trigger[tel_id] = TelescopeTriggerContainer(time=time, event_type=EventType.SUBARRAY)
        event = ArrayEventContainer(
            index=EventIndexContainer(obs_id=self.obs_id, event_id=event_id),
            count=count,
            trigger=TriggerContainer(
                event_type=EventType.SUBARRAY,
                time=time,
                tels_with_trigger=np.array([tel_id], dtype=np.int16),
                tel=tel_trigger,
            ),
            simulation=SimulatedEventContainer(shower=shower),
        )
        camera = SimulatedCameraContainer(
            impact=TelescopeImpactParameterContainer(
                # ctapipe's convention: distance of the telescope to the shower axis
                distance=shower_impact_distance(shower, self._subarray)[self._tel_index],
                distance_uncert=0 * u.m,
                prefix="true_impact",
            ),
        )
        if true_image is not None:
            camera.true_image = true_image
            camera.true_image_sum = np.int64(
                true_image.sum() if true_image_sum is None else true_image_sum
            )
        event.simulation.tel[tel_id] = camera
        event.monitoring.pointing = self._array_pointing
        event.monitoring.tel[tel_id].pointing = self._pointing
        event.dl1.tel[tel_id] = DL1CameraContainer(image=image, peak_time=peak_time, is_valid=True)
        event.meta["origin"] = self.producer_id
        event.meta["input_url"] = self.input_url
        event.meta["max_events"] = self.max_events
        return event

    # -- EventSource interface -------------------------------------------------------------
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
        return {self.obs_id: self._plan.distribution}

    @property
    def scheduling_blocks(self):
        return self._scheduling_blocks

    @property
    def observation_blocks(self):
        return self._observation_blocks

    @property
    def n_thrown(self):
        """Number of thrown showers of this run (``simulation_config`` ``n_showers``)."""
        return self._plan.n_thrown
