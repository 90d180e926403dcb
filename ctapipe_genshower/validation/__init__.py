"""Validation of generated against reference images: metrics, plots, HTML report.

``metrics`` (numpy/scipy/sklearn, no plotting), ``samples`` (DL1 reading and ctapipe
re-parameterisation), ``plots`` (matplotlib, imported lazily), ``report`` (HTML),
``comparison`` (everything together, used by ``ctapipe-genshower-validate``) and ``summary``
(several validated samples in one table, ``examples/validate_model.sh``).
"""

from .comparison import compare_samples, write_outputs
from .samples import PARAMETERS, DL1ValidationReader, ValidationSample, ValidationSelection

__all__ = [
    "PARAMETERS",
    "DL1ValidationReader",
    "ValidationSample",
    "ValidationSelection",
    "compare_samples",
    "write_outputs",
]
