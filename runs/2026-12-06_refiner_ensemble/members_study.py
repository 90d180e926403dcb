"""v14's classifier as an ensemble (``fit_density_ratio(members=K)``) on the same pairs and split.

``fit_study.py``'s measurements for one classifier and for the mean of 3 and of 5 (members
fitted on the same split with their own initial weights and batch orders).

    python members_study.py MODEL PAIRS [PAIRS ...]
"""

import sys

from fit_study import main

ENSEMBLES = {"one (v14 settings)": {}, "3 members": {"members": 3}, "5 members": {"members": 5}}

if __name__ == "__main__":
    main(*sys.argv[1:], variants=ENSEMBLES)
