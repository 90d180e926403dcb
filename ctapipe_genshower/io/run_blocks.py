"""Scheduling and observation blocks of a simulated run.

ctapipe's DataWriter and TableLoader expect, per ``obs_id``, a scheduling block and an
observation block with the (fixed, AltAz) pointing, as sim_telarray input provides them.
"""

import numpy as np
from ctapipe.containers import (
    CoordinateFrameType,
    ObservationBlockContainer,
    ObservationBlockState,
    ObservingMode,
    PointingMode,
    SchedulingBlockContainer,
    SchedulingBlockType,
)

__all__ = ["simulated_run_blocks"]


def simulated_run_blocks(obs_id, pointing_alt, pointing_az, start_time, producer_id):
    """The scheduling and observation block of one simulated run.

    Parameters
    ----------
    obs_id : int
        Observation id; also used as the scheduling block id.
    pointing_alt, pointing_az : astropy.units.Quantity
        Fixed pointing of the run (AltAz).
    start_time : astropy.time.Time
        Start of the run (scheduled and actual).
    producer_id : str
        Name of the program that made the run.

    Returns
    -------
    tuple of dict
        ``({obs_id: SchedulingBlockContainer}, {obs_id: ObservationBlockContainer})``.
    """
    scheduling_blocks = {
        obs_id: SchedulingBlockContainer(
            sb_id=np.uint64(obs_id),
            sb_type=SchedulingBlockType.OBSERVATION,
            producer_id=producer_id,
            observing_mode=ObservingMode.UNKNOWN,
            pointing_mode=PointingMode.DRIFT,
        )
    }
    observation_blocks = {
        obs_id: ObservationBlockContainer(
            obs_id=np.uint64(obs_id),
            sb_id=np.uint64(obs_id),
            producer_id=producer_id,
            state=ObservationBlockState.COMPLETED_SUCCEDED,
            subarray_pointing_lat=pointing_alt,
            subarray_pointing_lon=pointing_az,
            subarray_pointing_frame=CoordinateFrameType.ALTAZ,
            actual_start_time=start_time,
            scheduled_start_time=start_time,
        )
    }
    return scheduling_blocks, observation_blocks
