"""Write the ctapipe config that applies a generator's training selection in the IRF chain.

usage: python selection_config.py MODEL OUTPUT.json

A generator only makes events that pass its training selection (e.g. ``hillas_intensity >=
250`` after cleaning); simulated protons below it have no generated counterpart. The energy,
disp and G/H reconstructors of ``examples/irf_chain.sh`` mark an event invalid when it fails
their quality query, and ``ctapipe-compute-irf`` / ``ctapipe-genshower-background`` drop
invalid events. So the model's selection, added to each reconstructor's criteria in this
directory's ``train_*.yaml``, makes both proton samples pass the same cuts. Without it the
simulated background holds events the generator cannot make and the comparison is
meaningless. A model without a recorded selection gets the criteria unchanged.
"""

import json
import sys
from pathlib import Path

import yaml

from ctapipe_genshower.checkpoint import CheckpointError, read_metadata

HERE = Path(__file__).resolve().parent
#: Each training tool's config file and the reconstructor it configures.
RECONSTRUCTORS = {
    "TrainEnergyRegressor": ("train_energy_regressor.yaml", "EnergyRegressor"),
    "TrainDispReconstructor": ("train_disp_reconstructor.yaml", "DispReconstructor"),
    "TrainParticleClassifier": ("train_particle_classifier.yaml", "ParticleClassifier"),
}


def selection_config(selection):
    """``{tool: {reconstructor: {"QualityQuery": {"quality_criteria": ...}}}}``: the
    ``selection`` (``[[name, expression], ...]``) first, then each example config's criteria."""
    config = {}
    for tool, (filename, reconstructor) in RECONSTRUCTORS.items():
        example = yaml.safe_load((HERE / filename).read_text())
        criteria = example[tool][reconstructor]["QualityQuery"]["quality_criteria"]
        combined = [[str(n), str(e)] for n, e in selection] + [list(c) for c in criteria]
        config[tool] = {reconstructor: {"QualityQuery": {"quality_criteria": combined}}}
    return config


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    model, output = argv
    try:
        selection = read_metadata(model)["training_meta"].get("selection") or []
    except (OSError, CheckpointError) as error:
        print(f"selection_config.py: cannot read model {model}: {error}", file=sys.stderr)
        return 2
    Path(output).write_text(json.dumps(selection_config(selection), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
