"""Generated images that fail the training selection are redrawn for the same shower.

The generator level (``ShowerGenerator.generate(accept=..., max_redraws=...)``) with plain
numpy ``accept`` callables; the ctapipe level (``ImageReselection``, ``DiffusionEventSource``,
``ctapipe-genshower-generate``) with model files whose recorded selection is rewritten.
"""

import json
import logging

import numpy as np
import pytest
import tables
from ctapipe.core import run_tool
from fixtures_model import with_recorded_selection

from ctapipe_genshower.generator import ShowerGenerator
from ctapipe_genshower.io.diffusion import DiffusionEventSource
from ctapipe_genshower.io.reselection import ImageReselection
from ctapipe_genshower.tools.generate import GenerateTool

N_STEPS = 1  # plumbing, not image quality
IMPOSSIBLE = [["impossible", "hillas_intensity > 1e12"]]
ALL_PASS = [["all", "True"]]


@pytest.fixture(scope="module")
def generator(selecting_model_path):
    return ShowerGenerator.from_file(selecting_model_path, device="cpu")


@pytest.fixture(scope="module")
def conditions(tiny_model_training_arrays):
    return tiny_model_training_arrays.conditions[:8].astype(np.float64)


@pytest.fixture(scope="module")
def first_draw(generator, conditions):
    """Today's events: no ``accept``."""
    return generator.generate(conditions, np.arange(8), n_steps=N_STEPS, batch_size=3)


_with_selection = with_recorded_selection


def _coin():
    """A numpy ``accept`` that about half of the draws of any shower pass (records its calls).

    Pixel 0 brighter than pixel 1: a fair coin of the image noise.
    """

    def accept(images, peak_times, conditions=None):
        accept.calls.append(len(images))
        return images[:, 0] > images[:, 1]

    accept.calls = []
    return accept


def _never():
    """A numpy ``accept`` that rejects every image (records its calls)."""

    def accept(images, peak_times, conditions=None):
        accept.calls.append(len(images))
        return np.zeros(len(images), dtype=bool)

    accept.calls = []
    return accept


def _same(a, b, keys=("image", "peak_time", "size")):
    return all(np.array_equal(a[k], b[k]) for k in keys)


# -- the generator: draws, streams, counts --------------------------------------------------
def test_first_draw_is_todays_event(generator, conditions, first_draw):
    all_pass = generator.generate(
        conditions,
        np.arange(8),
        n_steps=N_STEPS,
        batch_size=3,
        accept=lambda im, t, c: np.ones(len(im), bool),
        max_redraws=5,
    )
    assert _same(all_pass, first_draw)
    assert all_pass["n_draws"].tolist() == [1] * 8
    assert all_pass["accepted"].all()
    assert first_draw["accepted"] is None
    assert first_draw["n_draws"].tolist() == [1] * 8
    # max_redraws=0 only evaluates accept
    checked = generator.generate(
        conditions, np.arange(8), n_steps=N_STEPS, batch_size=3, accept=_never()
    )
    assert _same(checked, first_draw)
    assert not checked["accepted"].any() and checked["n_draws"].tolist() == [1] * 8


def test_failing_events_are_redrawn_until_they_pass(generator, conditions, first_draw):
    failed = ~_coin()(first_draw["image"], first_draw["peak_time"])
    accept = _coin()
    out = generator.generate(
        conditions,
        np.arange(8),
        n_steps=N_STEPS,
        batch_size=3,
        accept=accept,
        max_redraws=30,
    )
    assert 0 < failed.sum() < 8
    # only the failing events are drawn again, together
    assert accept.calls[:2] == [8, failed.sum()]
    assert np.array_equal(out["n_draws"] > 1, failed)
    assert out["accepted"].all()
    assert np.all(out["image"][:, 0] > out["image"][:, 1])
    for key in ("image", "peak_time", "size"):
        assert np.array_equal(out[key][~failed], first_draw[key][~failed])
        assert not np.any(np.all(out[key][failed] == first_draw[key][failed], axis=-1))

    # reproducible, and an event does not depend on the batch it is drawn with
    assert _same(
        generator.generate(conditions, np.arange(8), N_STEPS, 3, accept=accept, max_redraws=30), out
    )
    i = int(np.flatnonzero(failed)[0])
    alone = generator.generate(
        conditions[i : i + 1], [i], N_STEPS, 1, accept=_coin(), max_redraws=30
    )
    assert alone["n_draws"][0] == out["n_draws"][i]
    np.testing.assert_allclose(alone["image"][0], out["image"][i], rtol=1e-5, atol=1e-4)


def test_exhausted_events_are_kept_as_last_draw(generator, conditions, first_draw):
    accept = _never()
    out = generator.generate(
        conditions, np.arange(8), n_steps=N_STEPS, accept=accept, max_redraws=2
    )
    assert accept.calls == [8, 8, 8]
    assert out["n_draws"].tolist() == [3] * 8
    assert not out["accepted"].any()
    assert np.isfinite(out["image"]).all() and out["image"].shape == first_draw["image"].shape
    # the last draw, not the first (float32 rounding aside: another batch size here)
    differs = np.abs(out["image"] - first_draw["image"]).max(axis=1) > 1e-3
    assert differs.all()


def test_bad_accept_and_max_redraws_are_refused(generator, conditions):
    with pytest.raises(ValueError, match="bool or probability array"):
        generator.generate(conditions, np.arange(8), N_STEPS, accept=lambda im, t, c: [True])
    with pytest.raises(ValueError, match="max_redraws"):
        generator.generate(conditions, np.arange(8), N_STEPS, max_redraws=-1)


# -- the ctapipe side: the selection as training applies it ----------------------------------
def test_reselection_is_the_training_selection(tiny_model_training_arrays, generator):
    """Training images all passed the selection: they pass again; made fainter, they fail."""
    arrays = tiny_model_training_arrays
    reselection = ImageReselection.for_model(generator, generator.subarray, 1)
    assert reselection.selection == [tuple(c) for c in arrays.meta["selection"]]
    assert reselection.selection == [("size", "hillas_intensity >= 250")]
    image, peak_time = arrays.image[:40], arrays.peak_time[:40]
    passed = reselection(image, peak_time)
    assert passed.dtype == bool and passed.all()
    intensity = reselection.parameters(image, peak_time)[0]["hillas_intensity"].value
    faint = intensity < 500  # below 225 p.e. after cleaning once scaled by 0.45
    assert faint.any()
    assert not reselection(image[faint] * 0.45, peak_time[faint]).any()
    assert not reselection(np.zeros_like(image[:3]), peak_time[:3]).any()
    nan = image[:2].copy()
    nan[:, 0] = np.nan
    assert not reselection(nan, peak_time[:2]).any()
    with pytest.raises(ValueError, match="cannot be evaluated"):
        ImageReselection(generator.subarray, 1, [["x", "no_such_column > 1"]])


def test_mask_columns_are_the_full_parameters(tiny_model_training_arrays, generator):
    """The size cut's fast path (cleaning only) gives ctapipe's own columns and answers."""
    import torch

    from ctapipe_genshower.io.reselection import MASK_COLUMNS
    from ctapipe_genshower.model.density_ratio import (
        REFINER_FEATURES,
        DensityRatio,
        density_ratio_net,
    )

    arrays = tiny_model_training_arrays
    reselection = ImageReselection.for_model(generator, generator.subarray, 1)
    assert reselection.mask_only
    image = np.concatenate([arrays.image[:30], arrays.image[:10] * 0.3, arrays.image[:2] * 0])
    peak_time = np.concatenate([arrays.peak_time[:30], arrays.peak_time[:10], arrays.peak_time[:2]])
    image[-1, 0] = np.nan
    fast, fast_finite = reselection.mask_parameters(image, peak_time)
    full, full_finite = reselection.parameters(image, peak_time)
    np.testing.assert_array_equal(fast_finite, full_finite)
    for name in MASK_COLUMNS:  # NaN (no parameters) where ctapipe has NaN
        assert fast[name].unit == full[name].unit
        np.testing.assert_array_equal(fast[name].value, full[name].value)
    passed = reselection(image, peak_time)
    assert 0 < passed.sum() < len(passed)

    slow = ImageReselection(generator.subarray, 1, reselection.selection)
    slow.mask_only = False
    np.testing.assert_array_equal(slow(image, peak_time), passed)
    # with a refiner: the probabilities of the passing images from all their parameters
    torch.manual_seed(0)
    n = len(REFINER_FEATURES) + 5
    refiner = DensityRatio(density_ratio_net(n, 8, 1), np.zeros(n), np.ones(n), 0.3)
    refined = ImageReselection(generator.subarray, 1, reselection.selection, refiner=refiner)
    refined_slow = ImageReselection(generator.subarray, 1, reselection.selection, refiner=refiner)
    refined_slow.mask_only = False
    rows = np.concatenate([np.arange(30), np.arange(10), np.arange(2)])  # the images' showers
    conditions = np.asarray(arrays.conditions, dtype=np.float64)[rows]
    probability = refined(image, peak_time, conditions)
    np.testing.assert_array_equal(probability, refined_slow(image, peak_time, conditions))
    assert np.all(probability[~passed] == 0) and np.all(probability[passed] > 0)
    # a selection that reads other columns takes the full path
    wide = [["size", "hillas_intensity >= 250"], ["width", "hillas_width > 0"]]
    assert not ImageReselection(generator.subarray, 1, wide).mask_only


def test_largest_time_residual_finds_the_pixel_off_the_time_profile(
    tiny_model_training_arrays, generator
):
    """The added column: 0 for times on the fit's line, the offset of one pixel moved off it
    (ctapipe's fit is robust, so it stays on the line), between ``timing_deviation`` (the rms
    of the same residuals over the n cleaned pixels) and sqrt(n) times it, which holds only
    if both come from the same line in the same frame; NaN without a timing fit."""
    from ctapipe_genshower.io.reselection import TIME_RESIDUAL_COLUMN

    reselection = ImageReselection.for_model(generator, generator.subarray, 1)
    image = np.asarray(tiny_model_training_arrays.image[:6], dtype=np.float32)
    table = reselection.parameters(image, tiny_model_training_arrays.peak_time[:6])[0]
    residual = np.asarray(table[TIME_RESIDUAL_COLUMN])
    deviation = np.asarray(table["timing_deviation"])
    n_cleaned = np.asarray(table["morphology_n_pixels"])
    assert np.all(residual >= deviation - 1e-6)
    assert np.all(residual <= np.sqrt(n_cleaned) * deviation + 1e-6)
    assert np.any(residual > 1.5 * deviation)  # not the rms itself

    flat = np.full_like(image, 12.0)
    np.testing.assert_allclose(
        np.asarray(reselection.parameters(image, flat)[0][TIME_RESIDUAL_COLUMN]), 0, atol=1e-6
    )
    off = flat.copy()
    off[np.arange(len(image)), image.argmax(axis=1)] += 15.0  # the brightest pixel: cleaned
    np.testing.assert_allclose(
        np.asarray(reselection.parameters(image, off)[0][TIME_RESIDUAL_COLUMN]), 15, atol=1e-6
    )
    blank = reselection.parameters(np.zeros_like(image[:1]), flat[:1])[0]
    assert np.isnan(blank[TIME_RESIDUAL_COLUMN][0])


def _events(model, **settings):
    """Images, peak times and ``generation_metadata`` of a short run."""
    settings = {"n_showers": 400, "seed": 2, "n_steps": N_STEPS, "max_events": 10, **settings}
    with DiffusionEventSource(model, **settings) as source:
        dl1 = [event.dl1.tel[1] for event in source]
        images = np.array([d.image for d in dl1])
        peak_times = np.array([d.peak_time for d in dl1])
        return images, peak_times, source.generation_metadata


def test_source_redraws_failing_events(selecting_model_path, tmp_path, monkeypatch):
    """The source redraws what its reselection rejects, counts it, and stays reproducible.

    The tiny test model's images never survive ctapipe's cleaning (every parameter is NaN),
    so no selection on ctapipe's parameters fails only some of them: the check is replaced
    by a fair coin of the image noise here (the real check: the tests above and below).
    """
    today, _, meta = _events(selecting_model_path, max_redraws=0)
    assert meta["GENSHOWER N_REDRAWS"] == 0 and meta["GENSHOWER MAX_REDRAWS"] == 0
    assert meta["GENSHOWER SELECTION"] == "none"
    coin = _coin()
    failed = ~coin(today, None)
    assert 0 < failed.sum() < len(today)
    monkeypatch.setattr(ImageReselection, "__call__", lambda self, im, t, c=None: coin(im, t, c))

    # a handler on the source's own logger: ctapipe Tools run earlier in the same process
    # may have stopped propagation to the root logger that caplog listens to
    logger = logging.getLogger(f"{DiffusionEventSource.__module__}.{DiffusionEventSource.__name__}")
    messages = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: messages.append(record.getMessage())
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        images, _, meta = _events(selecting_model_path)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert np.array_equal(_events(selecting_model_path)[0], images)  # same seed, same events
    # events redrawn in rounds of other batches: the same events and counts (float32
    # rounding of other network batches aside)
    grouped, _, grouped_meta = _events(selecting_model_path, batch_size=4, events_per_batch=7)
    np.testing.assert_allclose(grouped, images, rtol=1e-5, atol=1e-4)
    for key in ("GENSHOWER N_REDRAWN_EVENTS", "GENSHOWER N_REDRAWS", "GENSHOWER N_EXHAUSTED"):
        assert grouped_meta[key] == meta[key]
    assert np.array_equal(images[~failed], today[~failed])
    assert not np.any(np.all(images[failed] == today[failed], axis=1))
    assert coin(images, None).all()
    assert meta["GENSHOWER MAX_REDRAWS"] == 10
    assert meta["GENSHOWER N_REDRAWN_EVENTS"] == failed.sum()
    assert meta["GENSHOWER N_REDRAWS"] >= failed.sum()
    assert meta["GENSHOWER N_EXHAUSTED"] == 0
    assert json.loads(meta["GENSHOWER SELECTION"]) == [["size", "hillas_intensity >= 250"]]
    assert any(f"{failed.sum()} of {len(images)} events redrawn" in m for m in messages), messages


def test_source_counts_exhausted_events(selecting_model_path, tmp_path):
    model = _with_selection(selecting_model_path, tmp_path / "m.safetensors", IMPOSSIBLE)
    today = _events(selecting_model_path, max_redraws=0)[0]
    images, _, meta = _events(model, max_redraws=3)
    assert len(images) == len(today)  # kept as their last draw
    assert not np.any(np.all(images == today, axis=1))
    n = len(images)
    assert meta["GENSHOWER N_REDRAWN_EVENTS"] == meta["GENSHOWER N_EXHAUSTED"] == n
    assert meta["GENSHOWER N_REDRAWS"] == 3 * n


def test_all_passing_and_missing_selection_change_nothing(selecting_model_path, tmp_path):
    today = _events(selecting_model_path, max_redraws=0)[0]
    for selection in (ALL_PASS, None, []):
        model = _with_selection(selecting_model_path, tmp_path / "m.safetensors", selection)
        images, _, meta = _events(model)
        assert np.array_equal(images, today)
        assert meta["GENSHOWER N_REDRAWS"] == meta["GENSHOWER N_EXHAUSTED"] == 0
        assert meta["GENSHOWER SELECTION"] == ("none" if not selection else json.dumps(ALL_PASS))


def test_generate_tool_records_the_counts(selecting_model_path, tmp_path):
    model = _with_selection(selecting_model_path, tmp_path / "m.safetensors", IMPOSSIBLE)
    output = tmp_path / "run.dl1.h5"
    argv = [
        f"--model={model}",
        f"--output={output}",
        "--device=cpu",
        "--no-progress",
        "--n-showers=400",
        "--max-events=6",
        f"--n-steps={N_STEPS}",
        "--max-redraws=2",
    ]
    assert run_tool(GenerateTool(), argv=argv, cwd=tmp_path) == 0
    with tables.open_file(output) as f:
        attrs = f.root._v_attrs
        n_events = len(f.root.dl1.event.telescope.images.tel_001)
        assert n_events == 6  # exhausted events are kept
        assert attrs["CONTEXT GENSHOWER MAX_REDRAWS"] == 2
        assert attrs["CONTEXT GENSHOWER N_REDRAWN_EVENTS"] == n_events
        assert attrs["CONTEXT GENSHOWER N_REDRAWS"] == 2 * n_events
        assert attrs["CONTEXT GENSHOWER N_EXHAUSTED"] == n_events
        assert json.loads(attrs["CONTEXT GENSHOWER SELECTION"]) == IMPOSSIBLE
