"""Validation of generated against reference images: metrics, plots, HTML report.

``metrics`` (numpy/scipy/sklearn, no plotting), ``samples`` (DL1 reading and ctapipe
re-parameterisation), ``plots`` (matplotlib, imported lazily), ``report`` (HTML) and
``comparison`` (everything together, used by ``ctapipe-genshower-validate``).
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
