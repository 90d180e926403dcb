"""A refined model file judged on the test pairs as generation keeps its draws.

usage: python check_model.py MODEL [MODEL ...] > check_models.txt
"""

import sys

from common import Judge, load

from ctapipe_genshower.generator import ShowerGenerator


def main(models):
    _, _, test, names = load(models[0])
    judge = Judge(test, len(names))
    print("| model | acceptance on the test draws | mean W1/floor | max | parameters > 1.5 |")
    print("| --- | --- | --- | --- | --- |")
    for model in models:
        refiner = ShowerGenerator.from_file(model, device="cpu").refiner
        acceptance, d = judge(refiner.log_ratio_of_features(test["gen"]), refiner.log_cap)
        name = model.rsplit("/", 1)[-1]
        print(f"| {name} | {acceptance:.4f} | {d.mean():.2f} | {d.max():.2f} | {(d > 1.5).sum()} |")


if __name__ == "__main__":
    main(sys.argv[1:])
