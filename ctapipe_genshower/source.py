"""``DiffusionEventSource``: generated proton events from a trained model, as a ctapipe EventSource.

``ctapipe-process -i model.safetensors -o out.dl1.h5`` picks this source because
:meth:`DiffusionEventSource.is_compatible` recognises the project's checkpoint format from
the file header (standard library only). The run then works like a sim_telarray run:

1. ``n_showers`` showers are thrown from the :class:`~ctapipe_genshower.thrown.ThrownDistribution`
   (the training simulation's settings unless overridden, and only inside the trained domain
   unless ``allow_extrapolation``), in fixed chunks with their own seeded streams;
2. each thrown shower is kept with the learned probability P(selected | shower);
3. the networks run only for the kept showers, ``batch_size`` at a time, each event with its
   own seed derived from ``(seed, obs_id, event_id)``, so an event does not depend on the
   batch size or on the other events.

Steps 1 and 2 are cheap and run in ``__init__`` (the "run plan"), so the number of thrown
showers, the shower histogram and the number of events are known before the first event:
``simulation_config`` (read by the DataWriter at start) and ``simulated_shower_distributions``
(read at the end) always agree. When ``max_events`` is set, the run is cut right after the
``max_events``-th selected shower: the thrown count is the number of showers thrown up to and
including that one, so the bookkeeping of a shortened run is that of a smaller, complete run.

torch is imported only when a source is constructed (``generator`` module), never when this
module is imported: every ctapipe tool imports the ``ctapipe_io`` entry points.
"""

import hashlib
import json
import struct
from dataclasses import replace
from importlib.resources import files
from pathlib import Path

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
from ctapipe.coordinates import altaz_to_righthanded_cartesian
from ctapipe.core import Map, Provenance, ToolConfigurationError
from ctapipe.core.traits import AstroQuantity, Bool, CaselessStrEnum, Float, Int
from ctapipe.io import DataLevel, EventSource

from ._version import __version__
from .run_blocks import simulated_run_blocks

__all__ = [
    "DETECTOR_PROG_ID",
    "MODEL_FORMAT",
    "THROW_CHUNK_SIZE",
    "DiffusionEventSource",
    "default_model_path",
    "event_seed",
]

#: ``__metadata__["format"]`` of a generator checkpoint (see ``checkpoint.py``).
MODEL_FORMAT = "ctapipe-genshower-model"

#: ``SimulationConfigContainer.detector_prog_id`` of generated runs (sim_telarray is 1).
DETECTOR_PROG_ID = 100

#: Showers are thrown in chunks of this size, chunk ``c`` from its own seeded stream.
#: Part of the reproducibility contract: changing it changes the thrown showers.
THROW_CHUNK_SIZE = 100_000

#: ``SimulatedShowerContainer.shower_primary_id`` of protons (sim_telarray convention).
PROTON_PRIMARY_ID = 101

#: Trigger times: events of a run are spaced by this interval from the run start.
_EVENT_SPACING = 1 * u.ms
#: Start time of run ``obs_id``: a fixed epoch plus one day per obs_id (deterministic output).
_EPOCH = Time("2025-01-01T00:00:00", scale="utc")

#: At most this many header bytes are scanned for the format name of a damaged model file.
_MAX_SCANNED_HEADER = 1 << 20

# spawn keys separating the random streams of one (seed, obs_id)
_THROW_STREAM = 0
_EVENT_STREAM = 1


def _optional_quantity(unit, help):
    """An optional ``AstroQuantity`` trait (``None`` = take the model's value)."""
    trait = AstroQuantity(default_value=None, allow_none=True, help=help)
    # AstroQuantity cannot check the physical type of a None default; set it afterwards
    trait.physical_type = u.get_physical_type(unit)
    return trait.tag(config=True)


def event_seed(seed, obs_id, event_id):
    """Integer seed of one event's noise, from ``SeedSequence([seed, obs_id, event_id])``."""
    sequence = np.random.SeedSequence([seed, obs_id, event_id], spawn_key=(_EVENT_STREAM,))
    return int(sequence.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def default_model_path():
    """Path of the bundled default model (package data; the file may be absent in a checkout)."""
    return Path(str(files("ctapipe_genshower") / "resources" / "default_model.safetensors"))


def _file_sha256(path, chunk_size=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


class DiffusionEventSource(EventSource):
    """Generated single-telescope proton events from a ctapipe-genshower model file.

    The input is a generator checkpoint (``*.safetensors`` written by
    ``ctapipe-genshower-train``). Events are DL1 images (charge and peak time, float32) with
    full shower truth, trigger, pointing and simulation bookkeeping, so ctapipe's
    ``ctapipe-process``, ``TableLoader`` and ``ctapipe-merge`` and pyirf work unchanged.

    The thrown distribution defaults to the training simulation's settings. Requests outside
    the trained domain (a wider energy range, larger scatter radius, a viewcone outside the
    trained one, another pointing) are refused unless ``allow_extrapolation`` is set; an
    extrapolated run is marked in the logs, the provenance and :attr:`generation_metadata`.

    Output is reproducible: the same model, ``seed``, ``obs_id`` and settings give the same
    events whatever the ``batch_size``. Runs with different ``obs_id`` are independent and
    can be produced in parallel and merged with ``ctapipe-merge``.
    """

    n_showers = Int(
        10_000, min=1, help="Number of showers to throw (like sim_telarray's NSHOW)"
    ).tag(config=True)
    seed = Int(0, min=0, help="Random seed of the run (combined with obs_id)").tag(config=True)
    obs_id = Int(1, min=1, help="Observation (run) id of the generated events").tag(config=True)
    n_steps = Int(
        None, allow_none=True, min=1, help="Sampler steps per image (None: the model's default)"
    ).tag(config=True)
    batch_size = Int(256, min=1, help="Images generated per network call").tag(config=True)
    device = CaselessStrEnum(
        ["auto", "cpu", "cuda"], default_value="auto", help="Device of the networks"
    ).tag(config=True)

    energy_min = _optional_quantity(u.TeV, "Minimum thrown energy (None: training simulation)")
    energy_max = _optional_quantity(u.TeV, "Maximum thrown energy (None: training simulation)")
    spectral_index = Float(
        None, allow_none=True, help="Thrown spectral index, e.g. -2 (None: training simulation)"
    ).tag(config=True)
    max_scatter_radius = _optional_quantity(
        u.m, "Maximum core distance (None: training simulation)"
    )
    min_viewcone = _optional_quantity(u.deg, "Inner viewcone radius (None: training simulation)")
    max_viewcone = _optional_quantity(u.deg, "Outer viewcone radius (None: training simulation)")
    pointing_alt = _optional_quantity(u.deg, "Pointing altitude (None: the model's pointing)")
    pointing_az = _optional_quantity(u.deg, "Pointing azimuth (None: the model's pointing)")
    allow_extrapolation = Bool(
        False,
        help="Generate even where the request lies outside the trained domain (recorded)",
    ).tag(config=True)

    def __init__(self, input_url=None, config=None, parent=None, **kwargs):
        super().__init__(input_url=input_url, config=config, parent=parent, **kwargs)
        self.metadata["is_simulation"] = True
        path = Path(self.input_url).expanduser()

        self.model_metadata = self._read_model_metadata(path)
        self.model_sha256 = _file_sha256(path)
        self.model_path = path.resolve()

        import torch

        from .generator import ShowerGenerator

        if self.device == "cuda" and not torch.cuda.is_available():
            raise ToolConfigurationError(
                "DiffusionEventSource.device='cuda' but CUDA is not available"
            )
        try:
            self._model = ShowerGenerator.from_file(path, device=self.device)
            self._subarray = self._model.subarray
        except (OSError, ValueError, KeyError, RuntimeError) as err:
            raise ToolConfigurationError(f"Cannot load generator model {path}: {err}") from err

        self._model_n_steps = int(self._model.default_n_steps)
        self._tel_id = self._check_subarray(self._subarray, self._model.n_pixels, path)

        self.thrown = self._requested_thrown(self._model.thrown)
        self.extrapolation = self._check_domain(self._model.thrown, self.thrown)

        Provenance().add_input_file(
            str(self.model_path),
            role="DiffusionEventSource model",
            add_meta=False,
            reference_meta={
                "format": MODEL_FORMAT,
                "format_version": str(self.model_metadata.get("format_version")),
                "sha256": self.model_sha256,
            },
        )

        self._plan = self._plan_run()
        self.log.info(
            "obs_id %d: %d showers thrown, %d selected (to generate)",
            self.obs_id,
            self._plan["n_thrown"],
            len(self._plan["event_id"]),
        )
        self._fill_run_containers()

    # -- input checks -----------------------------------------------------------------
    @staticmethod
    def _read_model_metadata(path):
        from .checkpoint import read_metadata

        if not path.is_file():
            raise ToolConfigurationError(f"Generator model file not found: {path}")
        try:
            meta = read_metadata(path)
        except (OSError, ValueError, KeyError) as err:
            raise ToolConfigurationError(f"Cannot read generator model {path}: {err}") from err
        if meta.get("format") != MODEL_FORMAT:
            raise ToolConfigurationError(
                f"{path} is not a ctapipe-genshower model (format {meta.get('format')!r})"
            )
        return meta

    @staticmethod
    def _check_subarray(subarray, n_pixels, path):
        """The model's single telescope; its camera must match the networks' pixel count."""
        if len(subarray.tel_ids) != 1:
            raise ToolConfigurationError(
                f"Model {path} describes {len(subarray.tel_ids)} telescopes, expected one"
            )
        tel_id = int(subarray.tel_ids[0])
        camera = subarray.tel[tel_id].camera
        if camera.geometry.n_pixels != n_pixels:
            raise ToolConfigurationError(
                f"Model {path} is inconsistent: its networks make {n_pixels}-pixel images"
                f" but its camera {camera.name} has {camera.geometry.n_pixels} pixels"
            )
        return tel_id

    def _requested_thrown(self, trained):
        overrides = {
            "energy_min": self.energy_min,
            "energy_max": self.energy_max,
            "spectral_index": self.spectral_index,
            "max_scatter_radius": self.max_scatter_radius,
            "min_viewcone": self.min_viewcone,
            "max_viewcone": self.max_viewcone,
            "pointing_alt": self.pointing_alt,
            "pointing_az": self.pointing_az,
        }
        overrides = {k: v for k, v in overrides.items() if v is not None}
        try:
            return replace(trained, **overrides)
        except ValueError as err:
            raise ToolConfigurationError(f"Invalid thrown distribution: {err}") from err

    def _check_domain(self, trained, requested):
        """List the ways ``requested`` leaves the trained phase space; refuse unless allowed."""

        def close(a, b):
            return u.isclose(a, b, rtol=1e-6, atol=1e-9 * b.unit)

        problems = []
        if requested.energy_min < trained.energy_min and not close(
            requested.energy_min, trained.energy_min
        ):
            problems.append(f"energy_min {requested.energy_min} < trained {trained.energy_min}")
        if requested.energy_max > trained.energy_max and not close(
            requested.energy_max, trained.energy_max
        ):
            problems.append(f"energy_max {requested.energy_max} > trained {trained.energy_max}")
        if requested.max_scatter_radius > trained.max_scatter_radius and not close(
            requested.max_scatter_radius, trained.max_scatter_radius
        ):
            problems.append(
                f"max_scatter_radius {requested.max_scatter_radius}"
                f" > trained {trained.max_scatter_radius}"
            )
        if requested.max_viewcone > trained.max_viewcone and not close(
            requested.max_viewcone, trained.max_viewcone
        ):
            problems.append(
                f"max_viewcone {requested.max_viewcone} > trained {trained.max_viewcone}"
            )
        if requested.min_viewcone < trained.min_viewcone and not close(
            requested.min_viewcone, trained.min_viewcone
        ):
            problems.append(
                f"min_viewcone {requested.min_viewcone} < trained {trained.min_viewcone}"
            )
        for key in ("pointing_alt", "pointing_az"):
            a, b = getattr(requested, key), getattr(trained, key)
            if not close(a.to(u.deg), b.to(u.deg)):
                problems.append(f"{key} {a} differs from trained {b}")

        if problems and not self.allow_extrapolation:
            raise ToolConfigurationError(
                "Request outside the trained domain of the model: "
                + "; ".join(problems)
                + " (set DiffusionEventSource.allow_extrapolation=True to generate anyway)"
            )
        for problem in problems:
            self.log.warning("Extrapolating beyond the trained domain: %s", problem)
        return problems

    # -- the run plan: thrown showers and selection, no image generation ---------------
    def _plan_run(self):
        rng_entropy = [self.seed, self.obs_id]
        tel_position = self._subarray.positions[self._tel_id].to_value(u.m)
        max_selected = self.max_events if self.max_events else None

        selected = []
        histogram = None
        n_thrown = 0
        n_selected = 0
        n_chunks = -(-self.n_showers // THROW_CHUNK_SIZE)
        for chunk in range(n_chunks):
            start = chunk * THROW_CHUNK_SIZE
            n = min(THROW_CHUNK_SIZE, self.n_showers - start)
            rng = np.random.default_rng(
                np.random.SeedSequence([*rng_entropy, chunk], spawn_key=(_THROW_STREAM,))
            )
            showers = self.thrown.sample(n, rng)
            conditions = self._conditions(showers, tel_position)
            is_selected = np.asarray(self._model.sample_selection(conditions, rng), dtype=bool)

            if max_selected is not None and n_selected + is_selected.sum() >= max_selected:
                # cut the run right after the max_events-th selected shower
                last = np.flatnonzero(is_selected)[max_selected - n_selected - 1]
                showers = showers[: last + 1]
                conditions = conditions[: last + 1]
                is_selected = is_selected[: last + 1]

            n_thrown += len(showers)
            core_distance = np.hypot(showers["true_core_x"], showers["true_core_y"])
            distribution = self.thrown.shower_distribution(
                self.obs_id, showers["true_energy"], core_distance
            )
            if histogram is None:
                histogram = distribution
            else:
                histogram.histogram = histogram.histogram + distribution.histogram
                histogram.n_entries += distribution.n_entries

            index = np.flatnonzero(is_selected)
            n_selected += len(index)
            selected.append((start + index, showers[index], conditions[index]))
            if max_selected is not None and n_selected >= max_selected:
                break

        thrown_index = np.concatenate([s[0] for s in selected])
        event_id = thrown_index + 1  # shower number 1..n_showers
        conditions = np.concatenate([s[2] for s in selected]).astype(np.float32)
        columns = {
            key: u.Quantity(np.concatenate([s[1][key] for s in selected]))
            for key in selected[0][1].colnames
        }
        # distance of the telescope to the shower axis (ctapipe's impact distance)
        direction = altaz_to_righthanded_cartesian(alt=columns["true_alt"], az=columns["true_az"])
        core = np.stack(
            [
                columns["true_core_x"].to_value(u.m),
                columns["true_core_y"].to_value(u.m),
                np.zeros(len(event_id)),
            ],
            axis=-1,
        )
        impact = np.linalg.norm(np.cross(tel_position - core, direction), axis=-1)
        seeds = np.array(
            [event_seed(self.seed, self.obs_id, int(e)) for e in event_id], dtype=np.uint64
        )
        return {
            "n_thrown": n_thrown,
            "distribution": histogram,
            "event_id": event_id,
            "conditions": conditions,
            "seeds": seeds,
            "impact": impact * u.m,
            **columns,
        }

    @staticmethod
    def _conditions(showers, tel_position):
        """The model's condition vector (``CONDITION_COLUMNS``) of thrown showers."""
        return np.stack(
            [
                np.log10(showers["true_energy"].to_value(u.TeV)),
                showers["true_core_x"].to_value(u.m) - tel_position[0],
                showers["true_core_y"].to_value(u.m) - tel_position[1],
                showers["true_source_fov_lon"].to_value(u.deg),
                showers["true_source_fov_lat"].to_value(u.deg),
            ],
            axis=-1,
        ).astype(np.float32)

    # -- run-level containers ----------------------------------------------------------
    def _fill_run_containers(self):
        obs_id = self.obs_id
        alt = self.thrown.pointing_alt.to(u.rad)
        az = self.thrown.pointing_az.to(u.rad)
        self._start_time = _EPOCH + (obs_id - 1) * u.day

        self._simulation_config = {
            obs_id: self.thrown.simulation_config(
                self._plan["n_thrown"], run_number=obs_id, detector_prog_id=DETECTOR_PROG_ID
            )
        }
        self._scheduling_blocks, self._observation_blocks = simulated_run_blocks(
            obs_id, alt, az, self._start_time, producer_id="ctapipe-genshower"
        )
        self._pointing = TelescopePointingContainer(altitude=alt, azimuth=az)
        self._array_pointing = ArrayPointingContainer(array_altitude=alt, array_azimuth=az)

    # -- EventSource interface -----------------------------------------------------------
    @staticmethod
    def is_compatible(file_path):
        """True for a ctapipe-genshower model file (reads only the safetensors header)."""
        try:
            from .checkpoint import read_metadata

            path = Path(file_path)
            if not path.is_file():
                return False
            try:
                return read_metadata(path).get("format") == MODEL_FORMAT
            except Exception:
                # A damaged model (truncated, other format_version) is still claimed when
                # its header names the format, so that the user gets the reader's clear
                # error from __init__ instead of "no compatible EventSource".
                with open(path, "rb") as f:
                    (header_length,) = struct.unpack("<Q", f.read(8))
                    header = f.read(min(header_length, _MAX_SCANNED_HEADER))
                return f'"{MODEL_FORMAT}"'.encode() in header
        except Exception:
            return False

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
    def simulation_config(self):
        return self._simulation_config

    @property
    def simulated_shower_distributions(self):
        return {self.obs_id: self._plan["distribution"]}

    @property
    def observation_blocks(self):
        return self._observation_blocks

    @property
    def scheduling_blocks(self):
        return self._scheduling_blocks

    @property
    def obs_ids(self):
        return [self.obs_id]

    @property
    def n_thrown(self):
        """Number of thrown showers of this run (``simulation_config`` ``n_showers``)."""
        return self._plan["n_thrown"]

    def __len__(self):
        """Number of events the run yields (selected showers); used by progress bars."""
        return len(self._plan["event_id"])

    def __bool__(self):
        return True

    @property
    def resolved_n_steps(self):
        """Sampler steps actually used (``n_steps`` or the model's default)."""
        return self.n_steps if self.n_steps is not None else self._model_n_steps

    @property
    def generation_metadata(self):
        """Flat description of the model and settings that made this run.

        Keys are ctapipe ``CONTEXT`` metadata keys (hierarchy separated by spaces); the
        ``ctapipe-genshower-generate`` tool writes them into the output file's attributes.
        """
        meta = {
            "GENSHOWER VERSION": __version__,
            "GENSHOWER MODEL PATH": str(self.model_path),
            "GENSHOWER MODEL SHA256": self.model_sha256,
            "GENSHOWER MODEL FORMAT_VERSION": str(self.model_metadata.get("format_version")),
            "GENSHOWER SEED": self.seed,
            "GENSHOWER OBS_ID": self.obs_id,
            "GENSHOWER N_SHOWERS": self.n_showers,
            "GENSHOWER N_THROWN": self.n_thrown,
            "GENSHOWER N_STEPS": self.resolved_n_steps,
            "GENSHOWER THROWN": json.dumps(self.thrown.to_dict()),
            "GENSHOWER EXTRAPOLATION": "; ".join(self.extrapolation) or "none",
        }
        return meta

    def close(self):
        self._model = None
        super().close()

    def _generator(self):
        plan = self._plan
        tel_id = self._tel_id
        n_events = len(plan["event_id"])
        for start in range(0, n_events, self.batch_size):
            stop = min(start + self.batch_size, n_events)
            out = self._model.generate(
                plan["conditions"][start:stop],
                plan["seeds"][start:stop].astype(np.int64),
                n_steps=self.n_steps,
                batch_size=self.batch_size,
            )
            images = np.asarray(out["image"], dtype=np.float32)
            peak_times = np.asarray(out["peak_time"], dtype=np.float32)
            for i in range(start, stop):
                yield self._make_event(i, tel_id, images[i - start], peak_times[i - start])

    def _make_event(self, i, tel_id, image, peak_time):
        plan = self._plan
        event_id = int(plan["event_id"][i])
        time = self._start_time + event_id * _EVENT_SPACING
        tel_trigger = Map(TelescopeTriggerContainer)
        tel_trigger[tel_id] = TelescopeTriggerContainer(time=time, event_type=EventType.SUBARRAY)
        event = ArrayEventContainer(
            index=EventIndexContainer(obs_id=self.obs_id, event_id=event_id),
            count=i,
            trigger=TriggerContainer(
                event_type=EventType.SUBARRAY,
                time=time,
                tels_with_trigger=np.array([tel_id], dtype=np.int16),
                tel=tel_trigger,
            ),
            simulation=SimulatedEventContainer(
                shower=SimulatedShowerContainer(
                    energy=plan["true_energy"][i],
                    alt=plan["true_alt"][i],
                    az=plan["true_az"][i],
                    core_x=plan["true_core_x"][i],
                    core_y=plan["true_core_y"][i],
                    shower_primary_id=PROTON_PRIMARY_ID,
                )
            ),
        )
        event.simulation.tel[tel_id] = SimulatedCameraContainer(
            impact=TelescopeImpactParameterContainer(
                distance=plan["impact"][i], distance_uncert=0 * u.m, prefix="true_impact"
            ),
        )
        event.monitoring.pointing = self._array_pointing
        event.monitoring.tel[tel_id].pointing = self._pointing
        event.dl1.tel[tel_id] = DL1CameraContainer(image=image, peak_time=peak_time, is_valid=True)
        event.meta["origin"] = "ctapipe-genshower"
        event.meta["input_url"] = self.input_url
        event.meta["max_events"] = self.max_events
        return event
