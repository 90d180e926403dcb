"""cProfile of ctapipe-process with the bundled default.

python -m cProfile -o prof.out profile_process.py
"""

import sys

from ctapipe.tools.process import main

sys.argv = [
    "ctapipe-process",
    "-i",
    "DiffusionEventSource",
    "-o",
    "prof_ref.h5",
    "--write-images",
    "--write-parameters",
    "--DiffusionEventSource.n_showers=40000",
    "--overwrite",
]
main()
