"""The shifted teacher's refined model beside the two-hour model, on the model card's samples.

usage: python table.py   (in this folder)

``validation.summary.summary_table`` of each model's three ``metrics*.json`` (1,000,000
generated showers, seeds 7, 8 and 9, against the 2,500,000 of toy run 201) with the G/H-cut
survivors and the quality-cuts chi2/ndf of its background comparisons.
"""

from ctapipe_genshower.validation.summary import summary_table

SEEDS = {7: ("", ""), 8: ("_gen8", "_s8"), 9: ("_gen9", "_s9")}
MODELS = (
    ("two-hour model (unshifted teacher)", "../2026-12-06_two_hour_recipe", "r2h", (7, 8, 9)),
    # the validation was stopped after seed 8 (README)
    ("shifted teacher, the same student and refiner recipe", ".", "alt2_r2h", (7, 8)),
)
for title, folder, name, seeds in MODELS:
    print(f"### {title}\n")
    print(
        summary_table(
            [f"{folder}/metrics_{name}_1M{SEEDS[s][0]}.json" for s in seeds],
            names=[f"seed {s}" for s in seeds],
            gh=[f"{folder}/gh_{name}{SEEDS[s][1]}.json" for s in seeds],
            quality=[f"{folder}/gh_{name}{SEEDS[s][1]}.quality.json" for s in seeds],
            scale=1_000_000 / 2_500_000,
            parameters=[
                "timing_deviation",
                "morphology_n_islands",
                "hillas_length",
                "concentration_pixel",
            ],
        )
    )
