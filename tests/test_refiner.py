"""The refiner: density ratio fit, rejection per draw, model file, source and tool."""

import json
import logging

import numpy as np
import pytest
from ctapipe.core import run_tool
from fixtures_model import with_recorded_selection
from safetensors.numpy import load_file

from ctapipe_genshower.checkpoint import (
    CheckpointError,
    load_generator_modules,
    read_header,
    read_metadata,
    save_refined,
)
from ctapipe_genshower.data.training_file import TrainingFile, write_training_file
from ctapipe_genshower.generator import ShowerGenerator, _event_streams, _replaces_held_draw
from ctapipe_genshower.io.diffusion import DiffusionEventSource
from ctapipe_genshower.model.density_ratio import (
    REFINER_FEATURES,
    REFINER_FEATURES_V1,
    DensityRatio,
    density_ratio_net,
    feature_spec,
    refiner_features,
)
from ctapipe_genshower.refine import PAIRS_FEATURES, pair_columns, paired_features, refine_model
from ctapipe_genshower.tools.refine import RefineTool
from ctapipe_genshower.training.density_ratio import fit_density_ratio, fit_temperature

N_COLUMNS = len(REFINER_FEATURES) + 5
ALL_PASS = [["all", "True"]]


def _gaussian_rows(n, shift, rng):
    """Rows whose first column is N(shift, 1), the rest N(0, 1)."""
    x = rng.standard_normal((n, N_COLUMNS))
    x[:, 0] += shift
    return x


@pytest.fixture(scope="module")
def shifted_fit():
    """Refiner fitted to simulated N(0.5, 1) vs generated N(0, 1) in one column."""
    rng = np.random.default_rng(1)
    simulated = _gaussian_rows(6000, 0.5, rng)
    generated = _gaussian_rows(6000, 0.0, rng)
    return fit_density_ratio(simulated, generated, epochs=15, width=32, depth=2, seed=3)


# -- features ------------------------------------------------------------------------------
def test_features_take_logs_keep_nan_and_append_conditions():
    columns = {name: np.array([10.0, 0.0]) for name, _ in REFINER_FEATURES}
    conditions = np.array([[1.0, 2, 3, 4, 5], [6, 7, 8, 9, 10]])
    x = refiner_features(columns, conditions)
    assert x.shape == (2, N_COLUMNS)
    expected = {
        "linear": (10.0, 0.0),
        "log10": (1.0, np.nan),  # log10(0): NaN, not -inf
        "cos": (np.cos(np.deg2rad(10)), 1.0),
        "sin": (np.sin(np.deg2rad(10)), 0.0),
        "cos2": (np.cos(np.deg2rad(20)), 1.0),
        "sin2": (np.sin(np.deg2rad(20)), 0.0),
    }
    for j, (_, transform) in enumerate(REFINER_FEATURES):
        np.testing.assert_allclose(x[:, j], expected[transform])
    np.testing.assert_array_equal(x[:, -5:], conditions)
    del columns["hillas_width"]
    with pytest.raises(KeyError, match="hillas_width"):
        refiner_features(columns, conditions)


def test_axis_angles_are_continuous_across_the_wrap():
    """hillas_psi of +89.9 and -89.9 deg is nearly the same axis: so are its features."""
    features = [("hillas_psi", "cos2"), ("hillas_psi", "sin2"), ("hillas_phi", "cos")]
    columns = {
        "hillas_psi": np.array([89.9, -89.9, 0.0]),
        "hillas_phi": np.array([179.9, -179.9, 0]),
    }
    x = refiner_features(columns, np.zeros((3, 5)), features)
    np.testing.assert_allclose(x[0, :3], x[1, :3], atol=0.01)
    assert np.abs(x[0, :3] - x[2, :3]).max() > 1.9  # perpendicular axis / opposite direction


def test_angles_in_rad_are_read_in_degrees():
    """ctapipe's hillas_psi / hillas_phi are quantities in rad: the transforms see degrees."""
    import astropy.units as u
    from astropy.table import QTable, Table

    features = [("hillas_psi", "cos2"), ("hillas_psi", "sin2"), ("hillas_phi", "sin")]
    degrees = {"hillas_psi": np.array([45.0, -60.0]), "hillas_phi": np.array([30.0, 170.0])}
    expected = refiner_features(degrees, np.zeros((2, 5)), features)
    in_rad = {name: np.deg2rad(values) * u.rad for name, values in degrees.items()}
    for table in (QTable(in_rad), Table(in_rad)):  # quantities, and columns with a unit
        x = refiner_features({c: table[c] for c in table.colnames}, np.zeros((2, 5)), features)
        np.testing.assert_allclose(x, expected, atol=1e-12)
    # the reading of the refiners fitted before: the rad number taken as degrees
    legacy = refiner_features(in_rad, np.zeros((2, 5)), features, "unconverted")
    np.testing.assert_allclose(legacy[:, 1], np.sin(np.deg2rad(2 * np.deg2rad([45.0, -60.0]))))
    # a linear feature keeps the stored number under both readings
    linear = refiner_features(in_rad, np.zeros((2, 5)), [("hillas_psi", "linear")])
    np.testing.assert_allclose(linear[:, 0], np.deg2rad([45.0, -60.0]))
    with pytest.raises(ValueError, match="unknown angle reading 'grad'"):
        refiner_features(degrees, np.zeros((2, 5)), features, "grad")


def test_model_files_record_how_their_refiner_reads_angles(shifted_fit):
    """New refiners read degrees and say so; files without the record keep their reading."""
    import astropy.units as u

    assert shifted_fit.angles == "degrees"
    meta = json.loads(json.dumps(shifted_fit.to_metadata()))
    assert meta["angles"] == "degrees"
    state = shifted_fit.net.state_dict()
    assert DensityRatio.from_metadata(meta, state).angles == "degrees"
    del meta["angles"]  # a model file refined before the record
    old = DensityRatio.from_metadata(meta, state)
    assert old.angles == "unconverted"
    assert old.with_cap_quantile(0.9).angles == "unconverted"
    columns = {name: np.full(3, 0.7) for name, _ in REFINER_FEATURES}
    columns["hillas_psi"] = np.full(3, 0.7) * u.rad
    conditions = np.zeros((3, 5))
    assert not np.allclose(
        old.log_ratio(columns, conditions), shifted_fit.log_ratio(columns, conditions)
    )
    np.testing.assert_array_equal(
        old.log_ratio(columns, conditions),
        old.log_ratio_of_features(refiner_features(columns, conditions, angles="unconverted")),
    )


def test_boolean_features_of_earlier_refiners_read_as_log_or_linear():
    spec = feature_spec(REFINER_FEATURES_V1)
    assert spec[0] == ("hillas_intensity", "log10") and spec[2] == ("hillas_fov_lon", "linear")
    columns = {name: np.array([100.0]) for name, _ in REFINER_FEATURES_V1}
    x = refiner_features(columns, np.zeros((1, 5)), REFINER_FEATURES_V1)
    np.testing.assert_array_equal(
        x[0, :-5], [2.0 if log else 100.0 for _, log in REFINER_FEATURES_V1]
    )
    with pytest.raises(ValueError, match="unknown transform 'sqrt' of refiner feature 'x'"):
        feature_spec([("x", "sqrt")])
    # a model file refined before the transforms existed records booleans
    n = len(REFINER_FEATURES_V1) + 5
    meta = {
        "features": [list(f) for f in REFINER_FEATURES_V1],
        **{"mean": [0.0] * n, "scale": [1.0] * n, "log_cap": 0.3, "width": 8, "depth": 1},
    }
    old = DensityRatio.from_metadata(meta, density_ratio_net(n, 8, 1).state_dict())
    assert old.features == spec


# -- the fit ---------------------------------------------------------------------------------
def test_fit_recovers_a_known_density_ratio(shifted_fit):
    """log r(x) = 0.5 x0 - 0.125 for N(0.5, 1) over N(0, 1); the held-out AUC is Phi(0.5/sqrt 2)."""
    x = np.zeros((5, N_COLUMNS))
    x[:, 0] = np.linspace(-1.5, 1.5, 5)
    log_r = shifted_fit.log_ratio_of_features(x)
    np.testing.assert_allclose(log_r, 0.5 * x[:, 0] - 0.125, atol=0.15)
    assert shifted_fit.info["auc_validation"] == pytest.approx(0.638, abs=0.03)
    assert 0.3 < shifted_fit.info["acceptance"] < 0.9


def test_rejection_with_the_fitted_ratio_moves_the_model_to_the_simulation(shifted_fit):
    """Accepting generated rows with min(r / r_max, 1) gives the simulated distribution."""
    rng = np.random.default_rng(7)
    generated = _gaussian_rows(40000, 0.0, rng)
    p = np.exp(np.minimum(shifted_fit.log_ratio_of_features(generated) - shifted_fit.log_cap, 0))
    kept = generated[rng.uniform(size=len(p)) < p, 0]
    # N(0.5, 1) apart from the capped top quantile
    assert kept.mean() == pytest.approx(0.5, abs=0.06)
    assert kept.std() == pytest.approx(1.0, abs=0.06)
    assert len(kept) / len(generated) == pytest.approx(shifted_fit.info["acceptance"], abs=0.03)


def test_temperature_undoes_an_over_confident_classifier():
    """Log-odds twice the true log ratio (over-confident) are scaled back by T = 1/2."""
    rng = np.random.default_rng(4)
    x_sim, x_gen = rng.normal(0.5, 1, 200_000), rng.normal(0.0, 1, 200_000)
    true_log_r = lambda x: 0.5 * x - 0.125  # noqa: E731
    t = fit_temperature(2.0 * true_log_r(x_sim), 2.0 * true_log_r(x_gen))
    assert t == pytest.approx(0.5, abs=0.02)
    assert fit_temperature(true_log_r(x_sim), true_log_r(x_gen)) == pytest.approx(1.0, abs=0.04)


def test_fit_records_its_temperature_and_the_uncalibrated_fit_is_the_same_net():
    rng = np.random.default_rng(1)
    simulated = _gaussian_rows(3000, 0.5, rng)
    generated = _gaussian_rows(3000, 0.0, rng)
    options = dict(epochs=5, width=32, depth=2, seed=3)
    calibrated = fit_density_ratio(simulated, generated, **options)
    plain = fit_density_ratio(simulated, generated, calibrate=False, **options)
    t = calibrated.temperature
    assert calibrated.info["temperature"] == t and 0.05 < t < 2 and t != 1.0
    assert plain.temperature == 1.0 == plain.info["temperature"]
    # the temperature multiplies the same net's log-odds; the cap is the same quantile
    np.testing.assert_allclose(
        calibrated.log_ratio_of_features(generated), t * plain.log_ratio_of_features(generated)
    )
    assert calibrated.log_cap == pytest.approx(t * plain.log_cap)
    assert calibrated.info["auc_validation"] == pytest.approx(plain.info["auc_validation"])
    # calibrated on the held-out rows: never a worse held-out loss than at temperature 1
    assert (
        calibrated.info["validation_loss_calibrated"]
        <= plain.info["validation_loss_calibrated"] + 1e-9
    )
    # refiners written before the record read their log-odds as they are
    meta = calibrated.to_metadata()
    del meta["temperature"]
    assert DensityRatio.from_metadata(meta, calibrated.net.state_dict()).temperature == 1.0


def test_identical_samples_give_a_flat_ratio():
    rng = np.random.default_rng(2)
    a, b = _gaussian_rows(3000, 0, rng), _gaussian_rows(3000, 0, rng)
    refiner = fit_density_ratio(a, b, epochs=10, width=32, depth=2)
    assert refiner.info["auc_validation"] == pytest.approx(0.5, abs=0.04)
    assert refiner.info["acceptance"] > 0.75


def test_fit_refuses_bad_rows():
    rows = np.zeros((100, N_COLUMNS))
    with pytest.raises(ValueError, match="columns"):
        fit_density_ratio(rows[:, :-1], rows)
    with pytest.raises(ValueError, match="at least 20 generated"):
        fit_density_ratio(rows, rows[:10])
    with pytest.raises(ValueError, match="cap_quantile"):
        fit_density_ratio(rows, rows, cap_quantile=0)
    with pytest.raises(ValueError, match="marginal_calibration"):
        fit_density_ratio(rows, rows, marginal_parameters=["timing_deviation"])


def test_an_ensemble_averages_its_members_and_member_0_is_the_single_fit():
    import torch

    rng = np.random.default_rng(1)
    simulated = _gaussian_rows(3000, 0.5, rng)
    generated = _gaussian_rows(3000, 0.0, rng)
    options = dict(epochs=5, width=32, depth=2, seed=3)
    single = fit_density_ratio(simulated, generated, **options)
    ensemble = fit_density_ratio(simulated, generated, members=3, **options)
    members = list(ensemble.net.members)
    assert len(members) == 3
    for p, q in zip(single.net.parameters(), members[0].parameters(), strict=True):
        assert torch.equal(p, q)
    assert not torch.equal(members[0][0].weight, members[1][0].weight)
    x = torch.from_numpy(ensemble.standardise(generated[:50]))
    with torch.inference_mode():
        np.testing.assert_allclose(
            ensemble.net(x).numpy(),
            torch.stack([m(x) for m in members]).mean(dim=0).numpy(),
            rtol=1e-6,
        )
    records = ensemble.info["members"]
    assert records[0]["best_epoch"] == single.info["best_epoch"]
    # the cross-entropy is convex in the log-odds: the mean's held-out loss is at most the
    # members' mean, and it is the loss the ensemble records
    assert ensemble.info["validation_loss"] <= np.mean([r["validation_loss"] for r in records])
    assert "members" not in single.info
    with pytest.raises(ValueError, match="members"):
        fit_density_ratio(simulated, generated, members=0)


def test_an_ensemble_round_trips_through_the_model_file(tiny_model_path, tmp_path):
    import torch

    torch.manual_seed(0)
    net = density_ratio_net(N_COLUMNS, 8, 1, members=3)
    ensemble = DensityRatio(net, np.zeros(N_COLUMNS), np.ones(N_COLUMNS), 0.3)
    refined = save_refined(tiny_model_path, tmp_path / "refined.safetensors", ensemble)
    loaded = load_generator_modules(refined).refiner
    x = np.random.default_rng(0).standard_normal((7, N_COLUMNS))
    np.testing.assert_array_equal(
        loaded.log_ratio_of_features(x), ensemble.log_ratio_of_features(x)
    )
    assert read_metadata(refined)["refiner"]["members"] == 3
    # a file never builds more members than it stores
    for members in (b"2", b"9"):
        raw = refined.read_bytes().replace(b'\\"members\\": 3', b'\\"members\\": ' + members)
        broken = tmp_path / "broken.safetensors"
        broken.write_bytes(raw)
        with pytest.raises(CheckpointError, match="members"):
            load_generator_modules(broken)


def test_pair_columns_pick_a_refiners_features_from_pairs_rows():
    rows = np.arange(len(PAIRS_FEATURES) + 5)[None, :]
    features = (PAIRS_FEATURES[3], PAIRS_FEATURES[0])
    np.testing.assert_array_equal(rows[:, pair_columns(features)][0], [3, 0, *rows[0, -5:]])
    with pytest.raises(ValueError, match="cannot give"):
        pair_columns([("hillas_intensity", "linear")])


def test_metadata_round_trip_is_exact(shifted_fit):
    meta = json.loads(json.dumps(shifted_fit.to_metadata()))
    again = DensityRatio.from_metadata(meta, shifted_fit.net.state_dict())
    x = np.random.default_rng(0).standard_normal((50, N_COLUMNS))
    np.testing.assert_array_equal(
        again.log_ratio_of_features(x), shifted_fit.log_ratio_of_features(x)
    )
    assert again.info == shifted_fit.info


# -- the generator's rejection per draw ----------------------------------------------------------
def test_probabilities_are_decided_with_each_draws_own_uniform(selecting_model_path):
    generator = ShowerGenerator.from_file(selecting_model_path, device="cpu")
    conditions = np.tile([[0.5, 50.0, 20.0, 0.5, 0.0]], (40, 1))
    seeds = np.arange(40)
    calls = []

    def accept(images, peak_times, conds):
        calls.append(conds.copy())
        return np.full(len(images), 0.4)

    out = generator.generate(conditions, seeds, 1, accept=accept, max_redraws=0)
    expected = _event_streams(seeds, 0)[4] < 0.4
    np.testing.assert_array_equal(out["accepted"], expected)
    np.testing.assert_array_equal(calls[0], conditions)
    again = generator.generate(conditions, seeds, 1, accept=accept, max_redraws=3)
    n_draws = again["n_draws"]
    for i in range(40):  # kept at the first draw whose uniform is below 0.4, else after 4
        u = [_event_streams(seeds[i : i + 1], k)[4][0] for k in range(4)]
        first = next((k for k, v in enumerate(u) if v < 0.4), None)
        assert n_draws[i] == (4 if first is None else first + 1)
        assert again["accepted"][i] == (first is not None)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        generator.generate(conditions, seeds, 1, accept=lambda im, t, c: np.full(len(im), 1.5))


@pytest.mark.parametrize(("failing_draw", "size_draw"), [(0, 1), (1, 0)])
def test_sizes_are_redrawn_only_until_a_draw_passed_the_selection(
    selecting_model_path, failing_draw, size_draw
):
    """Every draw but ``failing_draw`` passes the selection and is kept by the "refiner" with
    probability 0.3. Draw 0 failing: the events take a new size at draw 1 and keep it through
    the refiner's redraws. Draw 1 failing after draw 0 passed: the events keep draw 0's size
    (a new size there would give each refiner redraw another try at the selection and move
    sizes to those it passes more easily)."""
    generator = ShowerGenerator.from_file(selecting_model_path, device="cpu")
    conditions = np.tile([[0.5, 50.0, 20.0, 0.5, 0.0]], (30, 1))
    seeds = np.arange(30)
    calls = []

    def accept(images, peak_times, conds):
        calls.append(len(images))
        return np.full(len(images), 0.0 if len(calls) == failing_draw + 1 else 0.3)

    out = generator.generate(conditions, seeds, 1, accept=accept, max_redraws=6)
    assert (out["n_draws"] > 3).any()  # redrawn past the failing draw
    expected = generator.sample_size(conditions, seeds, size_draw)
    np.testing.assert_array_equal(out["size"], expected)
    assert not np.array_equal(expected, generator.sample_size(conditions, seeds, 1 - size_draw))


# -- model file -------------------------------------------------------------------------------
def _tiny_refiner(seed=0):
    import torch

    torch.manual_seed(seed)
    net = density_ratio_net(N_COLUMNS, 8, 1)
    return DensityRatio(net, np.zeros(N_COLUMNS), np.ones(N_COLUMNS), 0.3, info={"seed": seed})


def test_refined_model_file_holds_the_refiner_and_the_same_networks(tiny_model_path, tmp_path):
    refined = save_refined(tiny_model_path, tmp_path / "refined.safetensors", _tiny_refiner())
    plain, modules = load_generator_modules(tiny_model_path), load_generator_modules(refined)
    assert plain.refiner is None
    x = np.random.default_rng(0).standard_normal((7, N_COLUMNS))
    np.testing.assert_array_equal(
        modules.refiner.log_ratio_of_features(x), _tiny_refiner().log_ratio_of_features(x)
    )
    for a, b in zip(plain.pixel_net.parameters(), modules.pixel_net.parameters(), strict=True):
        assert (a == b).all()
    meta = read_metadata(refined)
    assert meta["provenance"]["refinement"]["input_model_sha256"]
    assert meta["config"] == read_metadata(tiny_model_path)["config"]
    # refining again replaces the refiner
    again = save_refined(refined, tmp_path / "again.safetensors", _tiny_refiner(seed=1))
    assert load_generator_modules(again).refiner.info == {"seed": 1}


def test_corrupt_refiner_metadata_is_refused(tiny_model_path, tmp_path):
    refined = save_refined(tiny_model_path, tmp_path / "refined.safetensors", _tiny_refiner())
    raw = refined.read_bytes().replace(b'\\"width\\": 8', b'\\"width\\": 9')
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(raw)
    with pytest.raises(CheckpointError, match="refiner"):
        load_generator_modules(broken)


# -- the source and the tool ---------------------------------------------------------------
@pytest.fixture(scope="module")
def all_pass_model(selecting_model_path, tmp_path_factory):
    """The tiny model with a selection every image passes (its images have no Hillas
    parameters: the refiner reads NaN there, i.e. the sample mean)."""
    path = tmp_path_factory.mktemp("refine") / "all_pass.safetensors"
    return with_recorded_selection(selecting_model_path, path, ALL_PASS)


@pytest.fixture(scope="module")
def training_file(tiny_model_training_arrays, tmp_path_factory):
    path = tmp_path_factory.mktemp("refine") / "train.safetensors"
    return write_training_file(path, tiny_model_training_arrays)


def _refine(model, training_file, output, *options, n_events=60, more_inputs=()):
    """Run the tool at plumbing size (60 images, 1 step, 2 epochs; ``n_events=None``: the
    tool's default); ``more_inputs``: training files after ``training_file``."""
    argv = [
        *options,
        f"--model={model}",
        f"--input={training_file}",
        *(f"--input={path}" for path in more_inputs),
        f"--output={output}",
        *([] if n_events is None else [f"--n-events={n_events}"]),
        "--n-steps=1",
        "--epochs=2",
        "--no-progress",
    ]
    assert run_tool(RefineTool(), argv=argv, cwd=output.parent) == 0
    return output


@pytest.fixture(scope="module")
def refined_model(all_pass_model, training_file, tmp_path_factory):
    return _refine(
        all_pass_model, training_file, tmp_path_factory.mktemp("refine") / "refined.safetensors"
    )


def test_refine_tool_writes_a_refined_model(
    refined_model, tiny_model_training_arrays, training_file
):
    refiner = load_generator_modules(refined_model).refiner
    info = refiner.info
    n = min(60, len(tiny_model_training_arrays.conditions))
    assert info["n_simulated"] == n and info["n_generated"] == n
    assert info["sampling"] == {
        "solver": "ddim",
        "n_steps": 1,
        "eta": 0.0,
        "eta_channels": None,
        "max_redraws": 10,
    }
    assert info["sizes"] == "simulated"
    assert 0 < info["acceptance"] <= 1 and 0 <= info["auc_validation"] <= 1
    # the tool's classifier defaults reach the fit and are recorded
    assert info["fit_options"] == {
        "epochs": 2,
        "cap_quantile": 0.99,
        "width": 128,
        "depth": 4,
        "weight_decay": 0.1,
        "batch_size": 256,
        "members": 1,
        "calibrate": True,
        "marginal_calibration": False,
        "marginal_parameters": None,
    }
    assert refiner.calibration is None
    assert sum(hasattr(m, "weight") for m in refiner.net) == 5  # 4 hidden layers + output
    # the training file is recorded by name, not where it lies
    refinement = read_metadata(refined_model)["provenance"]["refinement"]
    assert refinement["training_file"] == training_file.name
    assert str(training_file.parent) not in json.dumps(read_metadata(refined_model))


def test_refine_tool_uses_every_training_image_by_default(
    all_pass_model, training_file, tiny_model_training_arrays, tmp_path
):
    assert RefineTool().n_events is None  # "all": a fixed number would cap larger files
    out = _refine(all_pass_model, training_file, tmp_path / "all.safetensors", n_events=None)
    info = load_generator_modules(out).refiner.info
    n = len(tiny_model_training_arrays.conditions)
    assert info["samples"]["n_read"] == n
    assert info["n_simulated"] == info["n_generated"] == n  # every image passes ALL_PASS


def test_refine_tool_classifier_options(all_pass_model, training_file, tmp_path):
    options = ("--classifier-width=16", "--classifier-depth=2", "--classifier-weight-decay=0")
    out = _refine(all_pass_model, training_file, tmp_path / "small.safetensors", *options)
    refiner = load_generator_modules(out).refiner
    assert [m.weight.shape[0] for m in refiner.net if hasattr(m, "weight")] == [16, 16, 1]
    assert refiner.info["fit_options"]["weight_decay"] == 0


def test_refine_tool_classifier_members(all_pass_model, training_file, tmp_path):
    from ctapipe_genshower.tools.info import model_card

    out = _refine(
        all_pass_model, training_file, tmp_path / "mean.safetensors", "--classifier-members=2"
    )
    refiner = load_generator_modules(out).refiner
    assert len(refiner.net.members) == 2
    assert refiner.info["fit_options"]["members"] == 2
    assert len(refiner.info["members"]) == 2
    line = next(x for x in model_card(out).splitlines() if "refiner:" in x)
    assert "the mean log-odds of 2 classifiers" in line


def test_refine_tool_draws_per_image(all_pass_model, training_file, tmp_path):
    out = _refine(all_pass_model, training_file, tmp_path / "k2.safetensors", "--draws-per-image=2")
    info = load_generator_modules(out).refiner.info
    assert info["n_simulated"] == 60 and info["n_generated"] == 120
    assert info["samples"]["draws_per_image"] == 2


def test_refine_tool_time_residual_adds_the_feature_that_the_source_reads(
    refined_model, all_pass_model, training_file, tmp_path
):
    """``--time-residual``: a 25th feature, fitted and applied (the source's reselection
    computes it); the default refiner has the 24; with ``--keep-classifier`` it is refused."""
    from ctapipe_genshower.model.density_ratio import TIME_RESIDUAL_FEATURE

    out = _refine(all_pass_model, training_file, tmp_path / "t.safetensors", "--time-residual")
    refiner = load_generator_modules(out).refiner
    assert refiner.features == (*REFINER_FEATURES, TIME_RESIDUAL_FEATURE)
    assert refiner.net[0].weight.shape[1] == len(REFINER_FEATURES) + 6
    assert load_generator_modules(refined_model).refiner.features == REFINER_FEATURES
    with _source(out, max_events=3) as source:
        assert source.refining
        assert len([event.index.event_id for event in source]) == 3
    argv = [
        f"--model={refined_model}",
        f"--input={training_file}",
        f"--output={tmp_path / 'k.safetensors'}",
        "--time-residual",
        "--keep-classifier",
    ]
    assert run_tool(RefineTool(), argv=argv, cwd=tmp_path, raises=False) == 2
    assert not (tmp_path / "k.safetensors").exists()


def test_refine_tool_marginal_calibration(all_pass_model, training_file, tmp_path):
    """``--marginals`` fits the calibration on the classifier's held-out quarter of the pairs."""
    out = _refine(all_pass_model, training_file, tmp_path / "m.safetensors", "--marginals")
    refiner = load_generator_modules(out).refiner
    assert refiner.calibration is not None
    assert refiner.info["marginal_calibration"]["n_simulated"] == 15  # 60 images, 25 %
    assert refiner.info["fit_options"]["marginal_calibration"] is True


def test_refine_tool_calibrates_the_chosen_parameters_only(all_pass_model, training_file, tmp_path):
    """``--marginal-parameters``: the calibration corrects those parameters and says so;
    without a calibration to choose for, or with a name that is no refiner parameter, the
    tool exits 2 and writes nothing."""
    chosen = ["--marginal-parameters=timing_deviation", "--marginal-parameters=hillas_psi"]
    out = _refine(all_pass_model, training_file, tmp_path / "c.safetensors", "--marginals", *chosen)
    refiner = load_generator_modules(out).refiner
    names = [name for name, _ in refiner.features]
    assert [names[k] for k in refiner.calibration.columns] == [
        "hillas_psi",
        "hillas_psi",
        "timing_deviation",
    ]
    from ctapipe_genshower.tools.info import model_card

    assert "calibration: hillas_psi, timing_deviation (2 parameters)" in model_card(out)
    assert refiner.info["fit_options"]["marginal_parameters"] == ["timing_deviation", "hillas_psi"]
    output = tmp_path / "refused.safetensors"
    argv = [f"--model={all_pass_model}", f"--input={training_file}", f"--output={output}"]
    for extra in (chosen, ["--marginals", "--marginal-parameters=hillas_wdth"]):
        assert run_tool(RefineTool(), argv=[*argv, *extra], cwd=tmp_path, raises=False) == 2
        assert not output.exists()
    # the time residual is a refiner feature only with --time-residual, and the kept
    # classifier of a model without it does not read it: refused before any pairs are made
    residual = "--marginal-parameters=timing_max_residual"
    pairs = tmp_path / "pairs.safetensors"
    for extra in (["--marginals", residual], ["--keep-classifier", residual]):
        model = out if "--keep-classifier" in extra else all_pass_model
        bad = [f"--model={model}", f"--input={training_file}", f"--output={output}"]
        code = run_tool(
            RefineTool(), argv=[*bad, *extra, f"--pairs={pairs}"], cwd=tmp_path, raises=False
        )
        assert code == 2
        assert not output.exists() and not pairs.exists()


def test_refine_tool_keeps_the_classifier_and_fits_its_calibration(
    refined_model, all_pass_model, training_file, tmp_path
):
    out = _refine(refined_model, training_file, tmp_path / "k.safetensors", "--keep-classifier")
    old, new = load_generator_modules(refined_model).refiner, load_generator_modules(out).refiner
    for p, q in zip(old.net.parameters(), new.net.parameters(), strict=True):
        assert (p == q).all()
    assert new.calibration is not None and old.calibration is None
    from ctapipe_genshower.tools.info import model_card

    n_parameters = len({name for name, _ in REFINER_FEATURES})  # an angle has two features
    expected = f"marginal calibration: {n_parameters} parameters, fitted on 60 simulated"
    assert expected in model_card(out)
    assert new.info["calibration_samples"]["n_read"] == 60
    assert new.info["auc_validation"] == old.info["auc_validation"]  # the classifier's record
    # a model without a refiner has no classifier to keep: exit 2, nothing written
    output = tmp_path / "none.safetensors"
    argv = [
        f"--model={all_pass_model}",
        f"--input={training_file}",
        f"--output={output}",
        "--keep-classifier",
        "--no-progress",
    ]
    assert run_tool(RefineTool(), argv=argv, cwd=tmp_path, raises=False) == 2
    assert not output.exists()
    # a classifier fitted on float32 images is not calibrated on bf16 ones
    with pytest.raises(ValueError, match="fitted on float32 images: keep it without --bf16"):
        refine_model(refined_model, training_file, output, keep_classifier=True, bf16=True)
    assert not output.exists()


def test_the_fits_generated_images_have_the_simulated_images_sizes(
    all_pass_model, training_file, monkeypatch
):
    """The refiner is applied to redraws that keep the size, so its fit compares images of
    equal size: each generated image is drawn with its simulated image's charge sum."""
    generator = ShowerGenerator.from_file(all_pass_model, device="cpu")
    calls = []
    plain = generator.generate

    def recording(conditions, seeds, **kwargs):
        out = plain(conditions, seeds, **kwargs)
        calls.append((kwargs.get("size"), out["size"]))
        return out

    monkeypatch.setattr(generator, "generate", recording)
    _, generated, stats = paired_features(
        generator, training_file, 50, n_steps=1, max_redraws=3, progress=False
    )
    arrays = TrainingFile(training_file).take(np.sort(_chosen(training_file, 50, seed=0)))
    expected = arrays["image"].astype(np.float64).sum(axis=1).clip(min=1.0)
    (given, made), *rest = calls
    assert not rest
    np.testing.assert_allclose(given, expected, rtol=1e-12)
    np.testing.assert_array_equal(made, given)  # redraws of failing images keep it too
    assert len(generated) == stats["n_generated_selected"] == 50


def test_several_generated_images_per_simulated_image(all_pass_model, training_file, monkeypatch):
    """--draws-per-image K: K generated images of each simulated image's shower and size,
    each with its own seed; the first of each keeps the seed of a one-draw fit."""
    generator = ShowerGenerator.from_file(all_pass_model, device="cpu")
    calls = []
    plain = generator.generate

    def recording(conditions, seeds, **kwargs):
        calls.append((np.array(conditions), np.array(seeds), kwargs["size"]))
        return plain(conditions, seeds, **kwargs)

    monkeypatch.setattr(generator, "generate", recording)
    options = {"n_steps": 1, "max_redraws": 3, "progress": False}
    simulated, generated, stats = paired_features(
        generator, training_file, 50, draws_per_image=3, **options
    )
    (conditions, seeds, size), *rest = calls
    assert not rest
    assert len(simulated) == 50 and len(generated) == 150
    assert stats["draws_per_image"] == 3 and stats["n_generated_selected"] == 150
    by_image = conditions.reshape(50, 3, -1)
    assert (by_image == by_image[:, :1]).all()  # one shower per simulated image...
    assert (size.reshape(50, 3) == size.reshape(50, 3)[:, :1]).all()  # ...at its size
    assert len(np.unique(seeds)) == 150  # ...drawn with different seeds

    calls.clear()
    _, single, _ = paired_features(generator, training_file, 50, **options)
    np.testing.assert_array_equal(calls[0][1], seeds.reshape(50, 3)[:, 0])
    np.testing.assert_array_equal(single, generated.reshape(50, 3, -1)[:, 0])
    with pytest.raises(ValueError, match="draws_per_image"):
        paired_features(generator, training_file, 50, draws_per_image=0, **options)


def test_each_training_file_has_its_own_streams(all_pass_model, training_file, monkeypatch):
    """``stream`` 0 is the single-file fit (same images, same seeds); another stream draws
    the events of the same file with other seeds, so no two files of a fit share noise."""
    generator = ShowerGenerator.from_file(all_pass_model, device="cpu")
    calls = []
    plain = generator.generate

    def recording(conditions, seeds, **kwargs):
        calls.append(np.array(seeds))
        return plain(conditions, seeds, **kwargs)

    monkeypatch.setattr(generator, "generate", recording)
    options = {"n_steps": 1, "max_redraws": 3, "progress": False, "draws_per_image": 2}
    paired_features(generator, training_file, None, **options)  # the default
    for stream in (0, 1, 2):
        paired_features(generator, training_file, None, stream=stream, **options)
    default, first, second, third = calls
    np.testing.assert_array_equal(first, default)
    assert len(np.unique(np.concatenate([first, second, third]))) == 3 * len(first)
    with pytest.raises(ValueError, match="stream"):
        paired_features(generator, training_file, None, stream=-1, **options)


def _chosen(training_file, n, seed):
    """The images paired_features picks (its seeded choice)."""
    rng = np.random.default_rng(seed)
    return rng.choice(len(TrainingFile(training_file)), size=n, replace=False)


def test_refine_tool_is_reproducible(refined_model, all_pass_model, training_file, tmp_path):
    output = _refine(all_pass_model, training_file, tmp_path / "again.safetensors")
    a, b = load_generator_modules(refined_model), load_generator_modules(output)
    for p, q in zip(a.refiner.net.parameters(), b.refiner.net.parameters(), strict=True):
        assert (p == q).all()


def test_refine_tool_bad_input_exits_2_and_leaves_nothing(all_pass_model, tmp_path):
    (tmp_path / "out").mkdir()
    output = tmp_path / "out" / "refined.safetensors"
    not_training = tmp_path / "notes.safetensors"
    not_training.write_text("not a training file")
    for argv in (
        [f"--model={all_pass_model}", f"--input={tmp_path / 'missing.safetensors'}"],
        [f"--model={all_pass_model}", f"--input={not_training}"],
        [f"--model={not_training}", f"--input={not_training}"],
    ):
        argv = [*argv, f"--output={output}", "--no-progress"]
        code = run_tool(RefineTool(), argv=argv, cwd=tmp_path, raises=False)
        assert code == 2
        assert list(output.parent.iterdir()) == []


def _source(model, **kwargs):
    return DiffusionEventSource(model, n_showers=2000, seed=3, n_steps=1, **kwargs)


def test_source_applies_the_refiner_and_records_it(refined_model, all_pass_model):
    with _source(refined_model) as source:
        assert source.refining
        assert source.generation_metadata["GENSHOWER REFINER"].startswith("on (")
        events = [e.index.event_id for e in source]
        refined_draws = source.n_redraws
    with _source(refined_model, refine=False) as source:
        assert not source.refining
        assert source.generation_metadata["GENSHOWER REFINER"] == "off"
        assert [e.index.event_id for e in source] == events  # the same showers
        assert source.n_redraws == 0  # every image passes the (all-pass) selection
    with _source(all_pass_model) as source:
        assert source.generation_metadata["GENSHOWER REFINER"] == "none"
    assert refined_draws > 0  # the refiner rejected some selected images


def test_source_turns_the_refiner_off_for_other_sampling(refined_model):
    with DiffusionEventSource(refined_model, n_showers=500, n_steps=2) as source:
        assert not source.refining
        assert source.generation_metadata["GENSHOWER REFINER"] == "off"
    with DiffusionEventSource(refined_model, n_showers=500, n_steps=1, max_redraws=0) as source:
        assert not source.refining


def test_refine_tool_records_a_stochastic_sampler_that_the_source_then_uses(
    all_pass_model, training_file, tmp_path
):
    """``--eta`` / ``--eta-channels``: the pairs are drawn with that sampler, the output
    records it as the model's default, and the source samples with it (refiner on)."""
    output = tmp_path / "eta.safetensors"
    argv = [
        f"--model={all_pass_model}",
        f"--input={training_file}",
        f"--output={output}",
        "--n-events=60",
        "--n-steps=2",
        "--epochs=2",
        "--eta=1",
        "--eta=0",
        "--eta-channels=0",
        "--no-progress",
    ]
    assert run_tool(RefineTool(), argv=argv, cwd=tmp_path) == 0
    meta = read_metadata(output)
    assert meta["config"]["model"]["default_eta"] == [1.0, 0.0]
    assert meta["config"]["model"]["eta_channels"] == [0]
    assert meta["refiner"]["info"]["sampling"]["eta"] == [1.0, 0.0]
    assert meta["refiner"]["info"]["sampling"]["eta_channels"] == [0]
    with DiffusionEventSource(output, n_showers=500, seed=3, n_steps=2) as source:
        assert source.refining and source.resolved_eta == ((1.0, 0.0), (0,))
        assert source.generation_metadata["GENSHOWER ETA"] == "[1.0, 0.0]"
        assert source.generation_metadata["GENSHOWER ETA_CHANNELS"] == "(0,)"
        own = [e.dl1.tel[1].image.copy() for e in source]
    with DiffusionEventSource(output, n_showers=500, seed=3, n_steps=2, eta=0.0) as source:
        assert not source.refining  # fitted for the other sampler
        plain = [e.dl1.tel[1].image.copy() for e in source]
    assert len(own) and not all(np.array_equal(a, b) for a, b in zip(own, plain, strict=False))
    # a list option takes one value per flag: extra words are an error, nothing written
    bad = tmp_path / "bad.safetensors"
    argv = [f"--model={all_pass_model}", f"--input={training_file}", f"--output={bad}"]
    for extra in (["--eta", "1", "0"], ["--eta-channels=0"]):
        assert run_tool(RefineTool(), argv=[*argv, *extra], cwd=tmp_path, raises=False) == 2
    assert not bad.exists()


def test_a_recorded_quantile_can_be_chosen_as_cap(shifted_fit):
    lower = shifted_fit.with_cap_quantile(0.9)
    assert lower.cap_quantile == 0.9 and shifted_fit.cap_quantile == 0.99
    assert lower.log_cap < shifted_fit.log_cap
    assert lower.acceptance_rate > shifted_fit.acceptance_rate
    with pytest.raises(ValueError, match=r"no ratio quantile 0\.123"):
        shifted_fit.with_cap_quantile(0.123)


def test_source_cap_quantile_and_redraw_budget(refined_model, monkeypatch):
    from ctapipe.core import ToolConfigurationError

    with _source(refined_model, refiner_cap_quantile=0.5) as source:
        assert "cap quantile 0.5," in source.generation_metadata["GENSHOWER REFINER"]
        assert source.resolved_max_redraws >= 10
    with pytest.raises(ToolConfigurationError, match=r"no ratio quantile 0\.123"):
        _source(refined_model, refiner_cap_quantile=0.123)
    with _source(refined_model, max_redraws=3) as source:
        assert source.resolved_max_redraws == 3
        assert source.generation_metadata["GENSHOWER MAX_REDRAWS"] == 3
    # a rarely accepting refiner gets enough redraws for 99.9 % of average events
    monkeypatch.setattr(DensityRatio, "acceptance_rate", property(lambda self: 0.01))
    with _source(refined_model) as source:
        assert source.resolved_max_redraws == int(np.ceil(np.log(1e-3) / np.log(0.99)))


def test_an_event_never_kept_ends_as_a_draw_chosen_by_its_probability(selecting_model_path):
    """Probabilities too small to keep anything: the held draw is the weighted reservoir's
    choice, replayed here from each draw's own reservoir uniform."""
    generator = ShowerGenerator.from_file(selecting_model_path, device="cpu")
    conditions = np.tile([[0.5, 50.0, 20.0, 0.5, 0.0]], (6, 1))
    seeds = np.arange(6)

    def score(images):
        return 1e-12 / (1 + np.exp(-(images[:, 0] - images[:, 1])))

    out = generator.generate(conditions, seeds, 1, accept=lambda im, t, c: score(im), max_redraws=4)
    assert not out["accepted"].any() and (out["n_draws"] == 5).all()
    size = generator.sample_size(conditions, seeds, 0)  # passing draws are redrawn at it
    draws = [
        generator._draw(conditions, seeds, k, (1, 0.0, "ddim", None), 64, size)["image"]
        for k in range(5)
    ]
    held, total = np.zeros(6, int), score(draws[0])
    for k in range(1, 5):
        p = score(draws[k])
        total = total + p
        held[_event_streams(seeds, k)[5] < p / total] = k
    expected = np.stack([draws[k][i] for i, k in enumerate(held)])
    np.testing.assert_allclose(out["image"], expected, rtol=1e-5, atol=1e-5)
    assert len(set(held.tolist())) > 1  # not trivially the first or the last draw


def test_the_reservoir_chooses_draws_in_proportion_to_their_probabilities():
    rng = np.random.default_rng(0)
    p = np.array([0.01, 0.04, 0.0, 0.02, 0.03])  # never kept (kept is False throughout)
    n = 200_000
    held, total = np.zeros(n, int), np.full(n, p[0])
    for k in range(1, len(p)):
        total += p[k]
        take = _replaces_held_draw(np.zeros(n, bool), np.full(n, p[k]), total, rng.uniform(size=n))
        held[take] = k
    frequency = np.bincount(held, minlength=len(p)) / n
    np.testing.assert_allclose(frequency, p / p.sum(), atol=0.005)
    # no draw with p > 0 yet: the last is held; a kept draw is always taken
    zero = np.zeros(3)
    assert _replaces_held_draw(np.zeros(3, bool), zero, zero, np.full(3, 0.99)).all()
    assert _replaces_held_draw(np.ones(3, bool), np.full(3, 0.1), np.ones(3), np.ones(3)).all()


def test_info_shows_the_refiner(refined_model, tiny_model_path):
    from ctapipe_genshower.tools.info import model_card

    info = load_generator_modules(refined_model).refiner.info
    line = next(x for x in model_card(refined_model).splitlines() if "refiner:" in x)
    assert f"fitted on {info['n_simulated']} simulated" in line
    assert f"expected acceptance {info['acceptance']:.3f}" in line
    assert f"temperature {info['temperature']:.3f}" in line
    assert "at the simulated images' sizes" in line
    assert "angles in degrees" in line
    assert "refiner:" not in model_card(tiny_model_path)


def test_refine_tool_pairs_file_is_written_then_read(
    refined_model, all_pass_model, training_file, tmp_path
):
    """``--pairs``: the first fit makes the pairs and writes them; a fit reading them gives
    the refiner of a fit that makes them (same pairs, same classifier), also for other
    features; pairs made with other settings are refused (exit 2, nothing written)."""
    from ctapipe_genshower.model.density_ratio import TIME_RESIDUAL_FEATURE
    from ctapipe_genshower.refine import PAIRS_FEATURES

    pairs = tmp_path / "pairs.safetensors"
    first = _refine(all_pass_model, training_file, tmp_path / "a.safetensors", f"--pairs={pairs}")
    assert pairs.is_file()
    again = _refine(all_pass_model, training_file, tmp_path / "b.safetensors", f"--pairs={pairs}")
    for path in (first, again):
        refiner = load_generator_modules(path).refiner
        plain = load_generator_modules(refined_model).refiner
        for p, q in zip(plain.net.parameters(), refiner.net.parameters(), strict=True):
            assert (p == q).all()
        assert refiner.info["samples"] == plain.info["samples"]

    timed = _refine(
        all_pass_model,
        training_file,
        tmp_path / "t.safetensors",
        "--time-residual",
        f"--pairs={pairs}",
    )
    assert load_generator_modules(timed).refiner.features == PAIRS_FEATURES
    assert PAIRS_FEATURES[-1] == TIME_RESIDUAL_FEATURE

    argv = [
        f"--model={all_pass_model}",
        f"--input={training_file}",
        f"--output={tmp_path / 'other.safetensors'}",
        f"--pairs={pairs}",
        "--n-steps=2",
        "--n-events=60",
        "--no-progress",
    ]
    assert run_tool(RefineTool(), argv=argv, cwd=tmp_path, raises=False) == 2
    assert not (tmp_path / "other.safetensors").exists()
    not_pairs = tmp_path / "not_pairs.safetensors"
    not_pairs.write_bytes(all_pass_model.read_bytes())
    argv[3] = f"--pairs={not_pairs}"
    assert run_tool(RefineTool(), argv=argv, cwd=tmp_path, raises=False) == 2
    assert not (tmp_path / "other.safetensors").exists()
    argv[3] = f"--pairs={tmp_path / 'missing' / 'pairs.safetensors'}"  # refused before work
    assert run_tool(RefineTool(), argv=argv, cwd=tmp_path, raises=False) == 2
    assert not (tmp_path / "other.safetensors").exists()


def test_refine_tool_fit_seed_refits_the_same_pairs(
    refined_model, all_pass_model, training_file, tmp_path
):
    """``--fit-seed`` seeds the classifier's fit only: it defaults to ``--seed`` (the same
    classifier bit for bit), another value fits the same images into another classifier;
    with ``--keep-classifier`` it is refused (exit 2)."""
    pairs = tmp_path / "pairs.safetensors"
    same = _refine(
        all_pass_model,
        training_file,
        tmp_path / "s.safetensors",
        "--fit-seed=0",
        f"--pairs={pairs}",
    )
    other = _refine(
        all_pass_model,
        training_file,
        tmp_path / "o.safetensors",
        "--fit-seed=1",
        f"--pairs={pairs}",
    )
    plain = load_generator_modules(refined_model).refiner
    same, other = (load_generator_modules(path).refiner for path in (same, other))
    assert plain.info["fit_seed"] == same.info["fit_seed"] == 0 and other.info["fit_seed"] == 1
    for p, q in zip(plain.net.parameters(), same.net.parameters(), strict=True):
        assert (p == q).all()
    assert any(
        not (p == q).all()
        for p, q in zip(plain.net.parameters(), other.net.parameters(), strict=True)
    )
    assert other.info["samples"] == plain.info["samples"]  # the same images
    argv = [
        f"--model={refined_model}",
        f"--input={training_file}",
        f"--output={tmp_path / 'kept.safetensors'}",
        "--keep-classifier",
        "--fit-seed=1",
        "--no-progress",
    ]
    assert run_tool(RefineTool(), argv=argv, cwd=tmp_path, raises=False) == 2
    assert not (tmp_path / "kept.safetensors").exists()


def test_refine_tool_adds_a_training_file_with_its_own_pairs(
    all_pass_model, training_file, tiny_model_training_arrays, tmp_path
):
    """Several ``--input`` files are fitted as one sample, each with a pairs file: the first
    file's pairs are those of a fit on it alone (an earlier fit's pairs file is read), a
    further file is paired with streams of its own, and a refit reading all pairs gives the
    same classifier. A repeated training file or a pairs file too few are refused (exit 2)."""
    arrays = tiny_model_training_arrays
    more = write_training_file(
        tmp_path / "more.safetensors", arrays.subset(np.arange(len(arrays.conditions))[::-1])
    )
    first_pairs, more_pairs = tmp_path / "first.safetensors", tmp_path / "more_pairs.safetensors"
    n = len(arrays.conditions)
    one = tmp_path / "one.safetensors"
    _refine(all_pass_model, training_file, one, f"--pairs={first_pairs}", n_events=None)
    stamp = first_pairs.stat().st_mtime_ns
    both = (f"--pairs={first_pairs}", f"--pairs={more_pairs}")
    out = _refine(
        all_pass_model,
        training_file,
        tmp_path / "two.safetensors",
        *both,
        n_events=None,
        more_inputs=[more],
    )
    assert first_pairs.stat().st_mtime_ns == stamp and more_pairs.is_file()  # read, not made

    refiner = load_generator_modules(out).refiner
    samples = refiner.info["samples"]
    assert [part["n_read"] for part in samples["files"]] == [n, n]
    assert samples["n_read"] == 2 * n and refiner.info["n_simulated"] == 2 * n
    # recorded by name, both
    refinement = read_metadata(out)["provenance"]["refinement"]
    assert refinement["training_file"] == [training_file.name, more.name]
    # both pairs files hold the same showers (the second file is the first reversed)
    a, b = (load_file(path)["generated"][:, -5:] for path in (first_pairs, more_pairs))
    np.testing.assert_array_equal(a[np.lexsort(a.T)], b[np.lexsort(b.T)])

    again = _refine(
        all_pass_model,
        training_file,
        tmp_path / "again.safetensors",
        *both,
        n_events=None,
        more_inputs=[more],
    )
    refit = load_generator_modules(again).refiner
    for p, q in zip(refiner.net.parameters(), refit.net.parameters(), strict=True):
        assert (p == q).all()

    # one pairs file for two inputs: refused in setup, before any work
    argv = [
        f"--model={all_pass_model}",
        f"--input={training_file}",
        f"--input={more}",
        f"--pairs={first_pairs}",
        f"--output={tmp_path / 'bad.safetensors'}",
        "--no-progress",
    ]
    assert run_tool(RefineTool(), argv=argv, cwd=tmp_path, raises=False) == 2
    assert not (tmp_path / "bad.safetensors").exists()
    # the same images twice (a copy under another name): refused before the pairs are made
    copy = tmp_path / "copy.safetensors"
    copy.write_bytes(training_file.read_bytes())
    with pytest.raises(ValueError, match="same training file is given twice"):
        refine_model(all_pass_model, [training_file, copy], tmp_path / "bad.safetensors")
    assert not (tmp_path / "bad.safetensors").exists()


def test_refine_tool_bf16_pairs_are_recorded_and_the_source_says_so(
    all_pass_model, training_file, tmp_path, caplog
):
    """``--bf16``: the generated images of the pairs are made under bf16 autocast, recorded in
    the pairs file (float32 pairs are refused for it) and in the refiner's sampling; a run
    in the other precision keeps the refiner and logs that the precisions differ."""
    float32_pairs = tmp_path / "float32_pairs.safetensors"
    _refine(all_pass_model, training_file, tmp_path / "f.safetensors", f"--pairs={float32_pairs}")
    refused = tmp_path / "refused.safetensors"
    with pytest.raises(ValueError, match="was made with other bf16"):
        refine_model(
            all_pass_model,
            training_file,
            refused,
            n_events=60,
            n_steps=1,
            pairs=float32_pairs,
            bf16=True,
        )
    assert not refused.exists()

    pairs = tmp_path / "bf16_pairs.safetensors"
    output = _refine(
        all_pass_model, training_file, tmp_path / "b.safetensors", "--bf16", f"--pairs={pairs}"
    )
    assert json.loads(read_header(pairs)["__metadata__"]["made_from"])["bf16"] is True
    assert load_generator_modules(output).refiner.info["sampling"]["bf16"] is True
    float32_made = json.loads(read_header(float32_pairs)["__metadata__"]["made_from"])
    assert "bf16" not in float32_made  # pairs files of earlier versions still match
    # the bf16 images are not the float32 ones
    assert not np.array_equal(load_file(pairs)["generated"], load_file(float32_pairs)["generated"])

    # ctapipe's tools may have stopped the package's loggers propagating: listen directly
    logger = logging.getLogger("ctapipe_genshower")
    logger.addHandler(caplog.handler)
    caplog.set_level("WARNING", logger="ctapipe_genshower")
    try:
        with _source(output) as source:
            assert source.refining
        assert "refiner fitted on bf16 images, this run generates float32 ones" in caplog.text
        caplog.clear()
        with _source(output, bf16=True) as source:
            assert source.refining
        assert "refiner fitted on" not in caplog.text
    finally:
        logger.removeHandler(caplog.handler)
