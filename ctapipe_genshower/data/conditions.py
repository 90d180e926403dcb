"""The conditioning vector of the model, built from shower truth: the central contract.

Both ends of the model use this one function: the DL1 reader (training images, truth from
ctapipe tables) and the EventSources (thrown showers). The columns and their units are
``ctapipe_genshower.data.arrays.CONDITION_COLUMNS``; this is where the units of the
truth are stripped.
"""

import astropy.units as u
import numpy as np

__all__ = ["conditions_from_truth"]


@u.quantity_input(
    true_energy=u.TeV,
    true_core_x=u.m,
    true_core_y=u.m,
    true_source_fov_lon=u.deg,
    true_source_fov_lat=u.deg,
)
def conditions_from_truth(
    true_energy, true_core_x, true_core_y, true_source_fov_lon, true_source_fov_lat, tel_position
):
    """The ``(N, 5)`` float32 condition vectors of showers seen by one telescope.

    Parameters
    ----------
    true_energy : astropy.units.Quantity
        Shower energies.
    true_core_x, true_core_y : astropy.units.Quantity
        Core positions in the ground frame.
    true_source_fov_lon, true_source_fov_lat : astropy.units.Quantity
        True source position in ctapipe's ``TelescopeFrame`` of the pointing.
    tel_position : astropy.units.Quantity
        Telescope ground position(s): shape ``(3,)``, or ``(N, 3)`` for one per shower.

    Returns
    -------
    numpy.ndarray
        ``(N, 5)`` float32 in ``CONDITION_COLUMNS`` order.
    """
    tel = np.atleast_2d(u.Quantity(tel_position).to_value(u.m))
    conditions = np.column_stack(
        [
            np.log10(true_energy.to_value(u.TeV)),
            true_core_x.to_value(u.m) - tel[:, 0],
            true_core_y.to_value(u.m) - tel[:, 1],
            true_source_fov_lon.to_value(u.deg),
            true_source_fov_lat.to_value(u.deg),
        ]
    ).astype(np.float32)
    return conditions
