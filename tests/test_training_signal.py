"""Models with a learned pixel response: trained on true images, generating DL1 images."""

import numpy as np
import pytest
import tables
from fixtures_model import tiny_train_config

from ctapipe_genshower.fit import train
from ctapipe_genshower.generator import ShowerGenerator, _event_streams
from ctapipe_genshower.model.config import PRESETS
from ctapipe_genshower.model.pixel_response import PixelResponse
from ctapipe_genshower.training.dataset import split_dataset


@pytest.fixture(scope="module")
def signal_model(tmp_path_factory, tiny_model_training_arrays):
    """A ``tiny-signal`` model trained a few steps on the toy fixture (with true images)."""
    path = tmp_path_factory.mktemp("signal_model") / "model.safetensors"
    train_set, validation = split_dataset(tiny_model_training_arrays, 0.1)
    result = train(
        train_set, path, PRESETS["tiny-signal"], tiny_train_config(), validation=validation
    )
    return path, result


def test_reader_keeps_true_images(tiny_model_training_arrays, toy_proton_dl1_path):
    from ctapipe.io import read_table

    from ctapipe_genshower.data import DL1TrainingReader

    arrays = tiny_model_training_arrays
    assert arrays.meta["true_images"] and arrays.true_image.shape == arrays.image.shape
    # the toy's true p.e. of the same (selected) events, found by their DL1 images
    true = read_table(toy_proton_dl1_path, "/simulation/event/telescope/images/tel_001")
    dl1 = read_table(toy_proton_dl1_path, "/dl1/event/telescope/images/tel_001")
    row_of = {np.asarray(image, np.float32).tobytes(): i for i, image in enumerate(dl1["image"])}
    rows = [row_of[image.tobytes()] for image in arrays.image]
    np.testing.assert_array_equal(arrays.true_image, np.asarray(true["true_image"])[rows])
    reader = DL1TrainingReader(input_files=[str(toy_proton_dl1_path)], true_images=False)
    without = reader.read()
    assert without.true_image is None and not without.meta["true_images"]


def test_response_is_learned_from_the_training_pairs(signal_model, tiny_model_training_arrays):
    path, _ = signal_model
    generator = ShowerGenerator.from_file(path, device="cpu")
    response = generator.transforms["response"]
    train_set, _ = split_dataset(tiny_model_training_arrays, 0.1)
    batch = train_set.read(0, len(train_set))
    expected = PixelResponse.fit(batch["true_image"], batch["image"], batch["peak_time"])
    np.testing.assert_allclose(response.charge_quantiles, expected.charge_quantiles)
    np.testing.assert_allclose(response.noise_time_quantiles, expected.noise_time_quantiles)
    # the network's charge transform is fitted on the signal: its size is the true p.e. sum
    image_tf = generator.transforms["image"]
    assert image_tf.q_scale > 1e-6  # not the zero median of the mostly empty true images


def test_generated_images_are_signal_plus_response(signal_model, tiny_model_training_arrays):
    path, _ = signal_model
    generator = ShowerGenerator.from_file(path, device="cpu")
    conditions = tiny_model_training_arrays.conditions[:5].astype(np.float64)
    seeds = np.arange(40, 45)
    out = generator.generate(conditions, seeds, n_steps=2, batch_size=3)
    again = generator.generate(conditions, seeds, n_steps=2, batch_size=3)
    np.testing.assert_array_equal(out["image"], again["image"])
    np.testing.assert_array_equal(out["peak_time"], again["peak_time"])
    # other batches: the network's float rounding differs (a signal within it of a half
    # p.e. may round the other way), the noise streams do not
    other = generator.generate(conditions, seeds, n_steps=2, batch_size=5)
    same = other["true_image"] == out["true_image"]
    assert same.mean() > 0.999
    np.testing.assert_allclose(other["image"][same], out["image"][same], atol=1e-4)

    # the same network without the response gives the signal; the response of that signal,
    # drawn from each event's own stream, is the generated DL1 image
    response = generator.transforms.pop("response")
    signal = generator.generate(conditions, seeds, n_steps=2)
    np.testing.assert_array_equal(signal["size"], out["size"])
    # the generated signal in whole p.e. is returned as the events' true image
    assert "true_image" not in signal and out["true_image"].dtype == np.int32
    np.testing.assert_array_equal(out["true_image"], np.rint(np.clip(signal["image"], 0, None)))
    rngs = [np.random.default_rng(int(s)) for s in _event_streams(seeds)[3]]
    image, peak_time = response.apply(signal["image"], signal["peak_time"], rngs)
    np.testing.assert_allclose(out["image"], np.minimum(image, generator.saturation), atol=1e-5)
    np.testing.assert_allclose(out["peak_time"], peak_time, atol=1e-4)
    # pixels without signal carry noise times from the learned table, not the network's
    empty = np.rint(np.clip(signal["image"], 0, None)) == 0
    assert empty.any()
    noise_range = response.noise_time_quantiles[[0, -1]]
    assert np.all((peak_time[empty] >= noise_range[0]) & (peak_time[empty] <= noise_range[1]))


def test_signal_model_needs_true_images(tmp_path, tiny_model_training_arrays):
    a = tiny_model_training_arrays
    without = type(a)(a.image, a.peak_time, a.conditions, a.meta)
    with pytest.raises(ValueError, match="needs training data with true images"):
        train(without, tmp_path / "m.safetensors", PRESETS["tiny-signal"], tiny_train_config())
    assert not (tmp_path / "m.safetensors").exists()


def test_generated_files_carry_the_signal_as_true_image(signal_model, tmp_path):
    from ctapipe.core import run_tool
    from ctapipe.io import read_table

    from ctapipe_genshower.data import DL1TrainingReader
    from ctapipe_genshower.tools.generate import GenerateTool

    path, _ = signal_model
    output = tmp_path / "signal.dl1.h5"
    argv = [f"--model={path}", f"--output={output}", "--device=cpu", "--n-showers=300"]
    argv += ["--n-steps=2", "--max-redraws=0"]
    assert run_tool(GenerateTool(), argv=argv, cwd=tmp_path, raises=True) == 0
    true = read_table(output, "/simulation/event/telescope/images/tel_001")
    assert len(true) > 0
    image = np.asarray(true["true_image"])
    assert image.min() >= 0  # a count, not the -1 of models without a pixel response
    np.testing.assert_array_equal(true["true_image_sum"], image.sum(axis=1))
    # so the generated file is training data with true images, like a simulated one
    reader = DL1TrainingReader(input_files=[str(output)])
    assert reader.reads_true_images


def test_info_tool_names_the_response(signal_model, tiny_model_path, capsys, tmp_path):
    from ctapipe.core import run_tool

    from ctapipe_genshower.tools.info import InfoTool

    path, _ = signal_model
    assert run_tool(InfoTool(), argv=[f"--model={path}"], cwd=tmp_path) == 0
    assert "learned pixel response (21 true-p.e. bins)" in capsys.readouterr().out
    assert run_tool(InfoTool(), argv=[f"--model={tiny_model_path}"], cwd=tmp_path) == 0
    assert "pixel response" not in capsys.readouterr().out


def test_pixel_response_from_another_simulation(signal_model, toy_settings_path, tmp_path):
    """The NSB level as a generation-time setting: a short run at 20x the NSB gives the response."""
    from ctapipe.core import run_tool
    from ctapipe.io import read_table
    from fixtures_toymc import process_toy

    from ctapipe_genshower.tools.generate import GenerateTool

    settings = toy_settings_path(
        "bright_nsb", n_showers=300, ToyShowerSimulator={"nsb_mean_pe": 1.0}
    )
    bright = process_toy(settings, tmp_path / "bright_nsb.dl1.h5")
    path, _ = signal_model

    def noise_std(output, *options):
        argv = [f"--model={path}", f"--output={output}", "--device=cpu", "--n-showers=300"]
        argv += ["--n-steps=2", "--max-redraws=0", *options]
        assert run_tool(GenerateTool(), argv=argv, cwd=tmp_path, raises=True) == 0
        image = np.asarray(read_table(output, "/dl1/event/telescope/images/tel_001")["image"])
        true = read_table(output, "/simulation/event/telescope/images/tel_001")["true_image"]
        return image[np.asarray(true) == 0].std()

    dark = noise_std(tmp_path / "dark.dl1.h5")
    swapped = noise_std(tmp_path / "bright.dl1.h5", f"--pixel-response-file={bright}")
    # Poisson NSB of 1 p.e. per pixel: sd about 1 p.e., against ~0.27 at the training level
    assert dark == pytest.approx(0.27, abs=0.03)
    assert swapped == pytest.approx(1.0, abs=0.1)
    with tables.open_file(tmp_path / "bright.dl1.h5") as f:
        assert f.root._v_attrs["CONTEXT GENSHOWER PIXEL_RESPONSE"] == str(bright)


def test_pixel_response_file_needs_a_response_model(tiny_model_path, toy_proton_dl1_path, tmp_path):
    from ctapipe.core import run_tool

    from ctapipe_genshower.tools.generate import GenerateTool

    output = tmp_path / "x.dl1.h5"
    argv = [f"--model={tiny_model_path}", f"--output={output}", "--device=cpu"]
    argv += [f"--pixel-response-file={toy_proton_dl1_path}"]
    assert run_tool(GenerateTool(), argv=argv, cwd=tmp_path, raises=False) == 2
    assert not output.exists()


def test_pixel_response_file_needs_true_images(signal_model, tiny_model_path, tmp_path):
    """A file whose true images are unknown (-1, e.g. a generated one) cannot teach a response."""
    from ctapipe.core import ToolConfigurationError, run_tool

    from ctapipe_genshower.tools.generate import GenerateTool

    unknown = tmp_path / "generated.dl1.h5"
    argv = [f"--model={tiny_model_path}", f"--output={unknown}", "--device=cpu"]
    assert run_tool(GenerateTool(), argv=[*argv, "--n-showers=300", "--n-steps=1"]) == 0
    path, _ = signal_model
    output = tmp_path / "x.dl1.h5"
    argv = [f"--model={path}", f"--output={output}", "--device=cpu"]
    argv += [f"--pixel-response-file={unknown}"]
    assert run_tool(GenerateTool(), argv=argv, cwd=tmp_path, raises=False) == 2
    with pytest.raises(ToolConfigurationError, match="has no true images for tel_001"):
        run_tool(GenerateTool(), argv=argv, cwd=tmp_path, raises=True)
    assert not output.exists()
