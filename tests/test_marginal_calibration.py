"""The refiner's marginal calibration: bins, raking fit, the refiner and the model file."""

import json

import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from ctapipe_genshower.checkpoint import CheckpointError, load_generator_modules, save_refined
from ctapipe_genshower.model.density_ratio import REFINER_FEATURES, DensityRatio, density_ratio_net
from ctapipe_genshower.model.marginal_calibration import MarginalCalibration
from ctapipe_genshower.training.density_ratio import calibrate_marginals
from ctapipe_genshower.training.marginal_calibration import (
    fit_marginal_calibration,
    kept_weights,
)

N_COLUMNS = len(REFINER_FEATURES) + 5


def _heavy_tailed(n, rng, scale=1.0):
    """Rows whose first column is Student-t (3 dof) times ``scale``, the rest N(0, 1)."""
    x = rng.standard_normal((n, N_COLUMNS))
    x[:, 0] = scale * rng.standard_t(3, size=n)
    return x


def _zero_refiner():
    """A refiner whose classifier says r = 1 everywhere (all weights zero)."""
    import torch

    net = density_ratio_net(N_COLUMNS, 4, 1)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
    info = {"cap_quantile": 0.99, "acceptance": 1.0}
    return DensityRatio(net, np.zeros(N_COLUMNS), np.ones(N_COLUMNS), 0.0, info=info)


def test_bins_count_from_below_the_first_edge_and_nan_has_its_own():
    edges = np.array([0.0, 1.0, 2.0])
    index = MarginalCalibration.bin_index([-5, 0, 0.5, 1.0, 7, np.nan, np.inf], edges)
    np.testing.assert_array_equal(index, [0, 1, 1, 2, 3, 4, 4])


def test_log_factor_sums_the_columns_factors():
    calibration = MarginalCalibration(
        [0, 2], [[0.0], [10.0, 20.0]], [[-1.0, 1.0, 5.0], [0.1, 0.2, 0.3, 0.4]]
    )
    x = np.array([[-1.0, 99, 15.0], [3.0, 99, np.nan], [np.nan, 99, 25.0]])
    np.testing.assert_allclose(calibration.log_factor(x), [-1 + 0.2, 1 + 0.4, 5 + 0.3])


@pytest.mark.parametrize(
    ("edges", "factors", "match"),
    [([[1.0, 0.0]], [[0.0, 0.0, 0.0, 0.0]], "increasing"), ([[0.0]], [[0.0, 0.0]], "factors")],
)
def test_bad_calibrations_are_refused(edges, factors, match):
    with pytest.raises(ValueError, match=match):
        MarginalCalibration([0], edges, factors)


def test_raking_brings_a_heavier_tailed_sample_to_the_simulated_marginal():
    """Generated rows with 1.6x wider tails, no classifier: the calibrated weights give the
    simulated distribution, on the fit rows and on new generated rows."""
    rng = np.random.default_rng(3)
    simulated = _heavy_tailed(20000, rng)
    generated = _heavy_tailed(20000, rng, scale=1.6)
    calibration = fit_marginal_calibration(
        simulated, generated, np.zeros(len(generated)), [0], cap_quantile=1.0
    )
    assert calibration.info["worst_log_mismatch_after"] < 0.05
    assert calibration.info["worst_log_mismatch_before"] > 0.5
    fresh = _heavy_tailed(20000, rng, scale=1.6)
    reference = _heavy_tailed(20000, rng)[:, 0]
    floor = wasserstein_distance(simulated[:, 0], reference)
    before = wasserstein_distance(reference, fresh[:, 0])
    after = wasserstein_distance(
        reference, fresh[:, 0], v_weights=np.exp(calibration.log_factor(fresh))
    )
    assert before > 10 * floor
    assert after < 3 * floor
    # the other columns, not calibrated, are untouched
    assert calibration.columns == (0,)


def test_raking_reads_the_cap():
    """With a cap at the median no factor can raise the top half's weights: the fit leaves
    them, down-weights the generated sample's heavier tails and stays bounded."""
    rng = np.random.default_rng(4)
    simulated = _heavy_tailed(8000, rng)
    generated = _heavy_tailed(8000, rng, scale=1.6)
    calibration = fit_marginal_calibration(
        simulated, generated, np.zeros(len(generated)), [0], cap_quantile=0.5, max_log_factor=2.0
    )
    (factors,) = calibration.log_factors
    assert np.abs(factors).max() <= 2.0
    assert factors[0] < -0.5 and factors[-2] < -0.5  # below 1 %, above 99 % of the simulated
    fit = calibration.info
    assert fit["worst_log_mismatch_after"] <= fit["worst_log_mismatch_before"]


def test_kept_weights_are_the_capped_ratio_over_its_cap():
    log_ratio = np.log([1.0, 3.0, 2.0, 2.0, 0.5])
    np.testing.assert_allclose(kept_weights(log_ratio, 1.0), [1 / 3, 1.0, 2 / 3, 2 / 3, 1 / 6])
    # capped at the median (2): everything at or above it is always kept
    np.testing.assert_allclose(kept_weights(log_ratio, 0.5), [0.5, 1.0, 1.0, 1.0, 0.25])


def test_calibrated_refiner_records_its_cap_and_round_trips(tiny_model_path, tmp_path):
    rng = np.random.default_rng(5)
    simulated = _heavy_tailed(5000, rng)
    generated = _heavy_tailed(5000, rng, scale=1.6)
    refiner = calibrate_marginals(_zero_refiner(), simulated, generated)
    assert refiner.calibration is not None and refiner.cap_quantile == 0.99
    log_r = refiner.log_ratio_of_features(generated)
    assert refiner.log_cap == pytest.approx(np.quantile(log_r, 0.99))
    expected = np.exp(np.minimum(log_r - refiner.log_cap, 0)).mean()
    assert refiner.acceptance_rate == pytest.approx(expected)
    # the zero classifier alone keeps everything; the calibrated ratio rejects the tails
    assert refiner.info["acceptance_uncalibrated"] == 1.0
    assert refiner.acceptance_rate < 0.9
    assert refiner.info["marginal_calibration"]["n_generated"] == 5000
    # another recorded cap keeps the calibration
    assert refiner.with_cap_quantile(0.9).calibration is refiner.calibration
    # JSON and the model file give the same ratio
    meta = json.loads(json.dumps(refiner.to_metadata()))
    again = DensityRatio.from_metadata(meta, refiner.net.state_dict())
    np.testing.assert_array_equal(again.log_ratio_of_features(generated), log_r)
    path = save_refined(tiny_model_path, tmp_path / "calibrated.safetensors", refiner)
    loaded = load_generator_modules(path).refiner
    np.testing.assert_array_equal(loaded.log_ratio_of_features(generated), log_r)


def test_corrupt_calibration_is_refused(tiny_model_path, tmp_path):
    rng = np.random.default_rng(6)
    rows = _heavy_tailed(500, rng)
    refiner = calibrate_marginals(_zero_refiner(), rows, _heavy_tailed(500, rng, scale=1.6))
    path = save_refined(tiny_model_path, tmp_path / "calibrated.safetensors", refiner)
    # column 3 becomes 93 (same length): a column the refiner's rows do not have
    raw = path.read_bytes().replace(b'\\"columns\\": [0, 1, 2, 3,', b'\\"columns\\": [0, 1, 2,93,')
    assert raw != path.read_bytes()
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(raw)
    with pytest.raises(CheckpointError, match="refiner"):
        load_generator_modules(broken)


def test_calibration_of_chosen_parameters_touches_only_their_columns():
    names = [name for name, _ in REFINER_FEATURES]
    timing = names.index("timing_deviation")
    rng = np.random.default_rng(7)
    simulated = _heavy_tailed(5000, rng)
    generated = _heavy_tailed(5000, rng, scale=1.6)
    # both the first column and timing_deviation are too wide in the generated rows
    simulated[:, timing] = rng.standard_t(3, size=5000)
    generated[:, timing] = 1.6 * rng.standard_t(3, size=5000)
    refiner = calibrate_marginals(
        _zero_refiner(), simulated, generated, parameters=["timing_deviation"]
    )
    assert list(refiner.calibration.columns) == [timing]
    weights = kept_weights(refiner.log_ratio_of_features(generated), refiner.cap_quantile)
    for column, corrected in ((timing, True), (0, False)):
        before = wasserstein_distance(simulated[:, column], generated[:, column])
        after = wasserstein_distance(simulated[:, column], generated[:, column], v_weights=weights)
        assert (after < 0.5 * before) if corrected else (after > 0.7 * before)
    # an angle's two features (cosine and sine) are one parameter
    both = calibrate_marginals(_zero_refiner(), simulated, generated, parameters=["hillas_phi"])
    assert list(both.calibration.columns) == [k for k, n in enumerate(names) if n == "hillas_phi"]
    with pytest.raises(ValueError, match="hillas_wdth"):
        calibrate_marginals(_zero_refiner(), simulated, generated, parameters=["hillas_wdth"])
