"""Background IRFs from generated and/or simulated protons with pyirf.

* ``samples``: DL2 proton files + their simulation bookkeeping per ``obs_id``;
* ``weights``: pyirf weights and the balance-heuristic mixing of samples;
* ``background``: 2D (pyirf) and 3D lon/lat background rates, GADF HDUs;
* ``compare``: ratio, errors, z-scores, chi2/ndf, proton effective area;
* ``pipeline``: the steps of ``ctapipe-genshower-background`` (read, weight, cut, HDUs);
* ``plots``: the comparison figure (matplotlib, imported when a plot is made);
* ``toy_dl2``: small DL2 files with an analytic detector response, for tests.
"""

from .background import (
    background_2d,
    background_2d_smoothed,
    background_2d_with_errors,
    background_3d,
    bin_occupancy,
    create_background_2d_hdu,
    create_background_3d_hdu,
    fov_smoothed_rate,
    read_background_2d_hdu,
)
from .compare import (
    BackgroundComparison,
    background_hdu_ratio,
    compare_backgrounds,
    proton_effective_area,
)
from .pipeline import background_hdus, read_samples, table_counts, weight_and_select
from .samples import DL2SampleReader, ProtonSample, check_dl2_file, combine_samples, select_gh
from .weights import (
    TARGET_SPECTRA,
    SimulatedComponent,
    balance_heuristic_weights,
    merge_components,
    pyirf_weights,
)

__all__ = [
    "TARGET_SPECTRA",
    "BackgroundComparison",
    "DL2SampleReader",
    "ProtonSample",
    "SimulatedComponent",
    "background_2d",
    "background_2d_smoothed",
    "background_2d_with_errors",
    "background_3d",
    "background_hdu_ratio",
    "background_hdus",
    "balance_heuristic_weights",
    "bin_occupancy",
    "check_dl2_file",
    "combine_samples",
    "compare_backgrounds",
    "create_background_2d_hdu",
    "create_background_3d_hdu",
    "fov_smoothed_rate",
    "merge_components",
    "proton_effective_area",
    "pyirf_weights",
    "read_background_2d_hdu",
    "read_samples",
    "select_gh",
    "table_counts",
    "weight_and_select",
]
