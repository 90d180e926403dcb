"""ctapipe-genshower-refine with the student sampled by the per-step, per-channel DDIM eta of
ETA_SCHEDULE / ETA_CHANNELS (experiment only, before the package had the setting)."""

import runpy
import sys

sys.argv = [sys.argv[0], *sys.argv[1:]]
ns = runpy.run_path("proc_sched_lib.py")
from ctapipe_genshower.tools.refine import main  # noqa: E402

sys.exit(main())
