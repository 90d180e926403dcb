"""The comparison table of the samples made by evaluate.sh.

usage: python table.py NAME [NAME ...]   (in the directory evaluate.sh wrote to)

``validation.summary.summary_table`` of ``report_NAME/metrics.json`` with the G/H-cut
survivors and the quality-cuts chi2/ndf of ``background_NAME_{gh,quality}.json``
(1,000,000 generated showers against the 2,500,000 of toy run 201).
"""

import sys

from ctapipe_genshower.validation.summary import summary_table

names = sys.argv[1:]
print(
    summary_table(
        [f"report_{name}/metrics.json" for name in names],
        names=names,
        gh=[f"background_{name}_gh.json" for name in names],
        quality=[f"background_{name}_quality.json" for name in names],
        scale=1_000_000 / 2_500_000,
        parameters=["timing_deviation", "morphology_n_islands", "hillas_length"],
    )
)
