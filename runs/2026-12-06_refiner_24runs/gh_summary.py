"""G/H-cut survivors and quality-cuts chi2/ndf of ``gh_tail.sh`` summaries.

python gh_summary.py NAME.json [...]: each NAME.json with its NAME.quality.json. Expected
survivors: the reference's (toy run 201, 2.5M showers) scaled to the generated sample's
thrown showers, 1M (0.4), or 500,000 for the chain's ``chain500k_*`` files (0.2); the
significance uses both samples' Poisson errors.
"""

import json
import sys

import numpy as np

for path in sys.argv[1:]:
    scale = 0.2 if "chain500k" in path else 0.4
    gh = json.load(open(path))
    quality = json.load(open(path.replace(".json", ".quality.json")))
    test, ref = np.nansum(gh["n_eff_test"]), np.nansum(gh["n_eff_ref"])
    expected = scale * ref
    sigma = (test - expected) / np.sqrt(test + scale**2 * ref)
    chi2, ndf = quality["chi2"], quality["ndf"]
    print(
        f"{path}: G/H survivors {test:.1f} vs {expected:.1f} expected ({sigma:+.1f} sigma);"
        f" quality chi2/ndf {chi2:.2f}/{ndf} = {chi2 / ndf:.2f}"
    )
