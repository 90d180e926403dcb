"""v14, the two-hour model and its refiner on 24 runs, on the model card's three samples.

usage: python table.py   (in this folder)

``validation.summary.summary_table`` of each model's three ``metrics*.json`` (1,000,000
generated showers, seeds 7, 8 and 9, against the 2,500,000 of toy run 201) with the G/H-cut
survivors and the quality-cuts chi2/ndf of its background comparisons.
"""

from ctapipe_genshower.validation.summary import summary_table

MODELS = (
    ("v14 (the default)", "../2026-12-06_marginal_subset", "v14"),
    ("two-hour model, refiner on 16 runs", "../2026-12-06_two_hour_recipe", "r2h"),
    ("two-hour model, refiner on 24 runs", ".", "r2h24"),
)
for title, folder, name in MODELS:
    print(f"### {title}\n")
    print(
        summary_table(
            [f"{folder}/metrics_{name}_1M{s}.json" for s in ("", "_gen8", "_gen9")],
            names=["seed 7", "seed 8", "seed 9"],
            gh=[f"{folder}/gh_{name}{s}.json" for s in ("", "_s8", "_s9")],
            quality=[f"{folder}/gh_{name}{s}.quality.json" for s in ("", "_s8", "_s9")],
            scale=1_000_000 / 2_500_000,
            parameters=["timing_deviation", "morphology_n_islands", "hillas_length"],
        )
    )
