"""ShowerGenerator: loading, selection, sizes, images; determinism independent of batch size."""

from pathlib import Path

import numpy as np
import pytest

from ctapipe_genshower.checkpoint import CheckpointError
from ctapipe_genshower.generator import ShowerGenerator


# the generator alone (no EventSource, no redraws): the model with its recorded selection
@pytest.fixture(scope="module")
def generator(selecting_model_path):
    return ShowerGenerator.from_file(selecting_model_path, device="cpu")


@pytest.fixture(scope="module")
def conditions(tiny_model_training_arrays):
    return tiny_model_training_arrays.conditions[:6].astype(np.float64)


def test_descriptions(generator, tiny_model_training_arrays):
    import astropy.units as u

    from ctapipe_genshower.training.dataset import split_dataset

    arrays = tiny_model_training_arrays
    meta = arrays.meta
    assert generator.n_pixels == meta["n_pixels"]
    assert generator.thrown.max_scatter_radius == 400 * u.m
    assert generator.subarray.tel[1].camera.geometry.n_pixels == meta["n_pixels"]
    assert generator.selection == meta["selection"]
    n_train = len(split_dataset(arrays, 0.1)[0])
    lo, hi = generator.domain["log10_energy"]
    assert lo == pytest.approx(arrays.conditions[:n_train, 0].min(), abs=1e-5)
    assert hi == pytest.approx(arrays.conditions[:n_train, 0].max(), abs=1e-5)
    assert set(generator.domain) >= {"log10_energy", "impact_x", "fov_offset", "size"}
    assert generator.provenance["steps"] > 0
    # a model file records its inputs by name (it is shared; the training file keeps paths)
    assert generator.provenance["input_files"] == [Path(f).name for f in meta["input_files"]]
    assert generator.saturation == pytest.approx(float(arrays.image[:n_train].max()), rel=1e-5)


def test_generate_shapes_and_determinism(generator, conditions):
    seeds = np.arange(100, 106)
    out = generator.generate(conditions, seeds, n_steps=3, batch_size=4)
    assert out["image"].shape == (6, generator.n_pixels) and out["image"].dtype == np.float32
    assert out["peak_time"].shape == (6, generator.n_pixels)
    assert out["size"].shape == (6,) and np.all(out["size"] > 0)
    assert np.all(np.isfinite(out["image"])) and np.all(np.isfinite(out["peak_time"]))
    assert out["image"].max() <= generator.saturation

    again = generator.generate(conditions, seeds, n_steps=3, batch_size=4)
    np.testing.assert_array_equal(out["image"], again["image"])
    np.testing.assert_array_equal(out["peak_time"], again["peak_time"])

    # batch size and neighbours do not matter: event 3 alone, and the events reversed
    single = generator.generate(conditions[3:4], seeds[3:4], n_steps=3, batch_size=1)
    np.testing.assert_allclose(single["image"][0], out["image"][3], rtol=1e-4, atol=1e-4)
    rev = generator.generate(conditions[::-1], seeds[::-1], n_steps=3, batch_size=6)
    np.testing.assert_allclose(rev["image"][::-1], out["image"], rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(rev["size"][::-1], out["size"])

    other = generator.generate(conditions, seeds + 1, n_steps=3)
    assert not np.allclose(other["image"], out["image"])


def test_channels_last_is_the_same_arithmetic(generator, selecting_model_path, conditions):
    import torch

    assert generator.channels_last  # the default
    assert generator.pixel_net.stem.weight.is_contiguous(memory_format=torch.channels_last)
    plain = ShowerGenerator.from_file(selecting_model_path, device="cpu", channels_last=False)
    assert plain.pixel_net.stem.weight.is_contiguous()
    seeds = np.arange(100, 106)
    a = generator.generate(conditions, seeds, n_steps=3, batch_size=4)
    b = plain.generate(conditions, seeds, n_steps=3, batch_size=4)
    np.testing.assert_array_equal(a["size"], b["size"])
    np.testing.assert_allclose(a["image"], b["image"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(a["peak_time"], b["peak_time"], rtol=1e-4, atol=1e-3)


def test_device_noise_is_seeded_per_event(generator, selecting_model_path, conditions):
    assert not generator.device_noise  # the CPU default: one CPU generator per event
    counter = ShowerGenerator.from_file(selecting_model_path, device="cpu", device_noise=True)
    assert counter.device_noise
    seeds = np.arange(100, 106)
    out = counter.generate(conditions, seeds, n_steps=3, batch_size=4)
    single = counter.generate(conditions[3:4], seeds[3:4], n_steps=3, batch_size=1)
    np.testing.assert_allclose(single["image"][0], out["image"][3], rtol=1e-4, atol=1e-4)
    again = counter.generate(conditions, seeds, n_steps=3, batch_size=6)
    np.testing.assert_allclose(again["image"], out["image"], rtol=1e-4, atol=1e-4)
    # the same showers (sizes from the event streams) with other image noise
    default = generator.generate(conditions, seeds, n_steps=3, batch_size=4)
    np.testing.assert_array_equal(default["size"], out["size"])
    assert not np.allclose(default["image"], out["image"])


def test_compile_option_wraps_the_pixel_network(generator, selecting_model_path):
    # compiling runs at the first batch (minutes on 2 CPU cores): only the wiring is checked
    # here; its speed and images are measured by benchmarks/bench_generator.py
    import torch

    compiled = ShowerGenerator.from_file(selecting_model_path, device="cpu", compile=True)
    assert compiled.compiled and not generator.compiled
    assert isinstance(compiled.denoiser.net, torch._dynamo.eval_frame.OptimizedModule)
    assert compiled.denoiser.net._orig_mod is compiled.pixel_net
    assert generator.denoiser.net is generator.pixel_net


@pytest.mark.parametrize("solver", ["dpmpp-2m", "heun"])
def test_solvers_are_seeded_per_event(generator, conditions, solver):
    seeds = np.arange(100, 106)
    out = generator.generate(conditions, seeds, n_steps=2, batch_size=4, solver=solver)
    single = generator.generate(conditions[3:4], seeds[3:4], n_steps=2, solver=solver)
    np.testing.assert_allclose(single["image"][0], out["image"][3], rtol=1e-4, atol=1e-4)
    ddim = generator.generate(conditions, seeds, n_steps=2, batch_size=4)
    np.testing.assert_array_equal(ddim["size"], out["size"])  # the solver draws images only
    assert not np.allclose(ddim["image"], out["image"])
    with pytest.raises(ValueError, match="unknown solver"):
        generator.generate(conditions, seeds, solver="euler")


def test_given_size_and_peak_time_range(generator, conditions):
    size = np.full(len(conditions), 1000.0)
    out = generator.generate(conditions, np.arange(6), n_steps=2, size=size)
    np.testing.assert_array_equal(out["size"], size)
    tf = generator.transforms["time"]
    assert out["peak_time"].min() >= tf.t_min - 1e-4 and out["peak_time"].max() <= tf.t_max + 1e-4


def test_selection(generator, tiny_model_training_arrays):
    sampler = generator._sampler
    thrown = sampler.sample(20_000, np.random.default_rng(0))
    p = generator.selection_probability(thrown)
    assert p.shape == (20_000,) and p.dtype == np.float64
    assert np.all((p >= 0) & (p <= 1))
    meta = tiny_model_training_arrays.meta
    # calibrated: mean over thrown showers = selected fraction (within sampling noise / clipping)
    assert p.mean() == pytest.approx(meta["n_selected"] / meta["n_thrown"], rel=0.15)
    a = generator.sample_selection(thrown, np.random.default_rng(5))
    b = generator.sample_selection(thrown, np.random.default_rng(5))
    assert a.dtype == bool and np.array_equal(a, b)


def test_sizes_are_stochastic_and_seeded(generator, conditions):
    c = np.repeat(conditions[:1], 200, axis=0)
    s1 = generator.sample_size(c, np.arange(200))
    s2 = generator.sample_size(c, np.arange(200))
    np.testing.assert_array_equal(s1, s2)
    assert np.std(np.log10(s1)) > 0.01


def test_bad_input(generator, conditions, tmp_path):
    with pytest.raises(ValueError, match=r"shape \(N, 5\)"):
        generator.generate(conditions[:, :4], np.arange(6))
    with pytest.raises(ValueError, match="one seed per event"):
        generator.generate(conditions, np.arange(5))
    with pytest.raises(ValueError, match="non-negative integers"):
        generator.generate(conditions, -np.arange(1, 7))
    bad = conditions.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        generator.selection_probability(bad)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x10\x00")
    with pytest.raises(CheckpointError, match="truncated"):
        ShowerGenerator.from_file(broken)
