"""Training core: the loss goes down, exact resume, clear errors, DDP with gloo."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from fixtures_model import tiny_train_config
from safetensors.torch import load_file

from ctapipe_genshower.checkpoint import file_sha256, read_metadata
from ctapipe_genshower.fit import state_path_for, train
from ctapipe_genshower.model.config import PRESETS
from ctapipe_genshower.training.dataset import ArrayDataset, split_dataset
from ctapipe_genshower.training.state import check_resumable


@pytest.fixture(scope="module")
def small_source(synthetic_training_arrays):
    a = synthetic_training_arrays
    return ArrayDataset(a.image[:100], a.peak_time[:100], a.conditions[:100], a.meta)


def _config(**kwargs):
    settings = dict(
        shower_steps=20, calibration_events=5000, chunk_size=16, batch_size=8, validation_events=16
    )
    settings.update(kwargs)
    return tiny_train_config(**settings)


@pytest.fixture(scope="module")
def smooth_source(small_source):
    """Noise-free blobs whose position follows the source position: a learnable tiny problem."""
    from ctapipe_genshower.instrument import flashcam_like_geometry

    geom = flashcam_like_geometry()
    x, y = np.rad2deg(geom.pix_x.value / 36), np.rad2deg(geom.pix_y.value / 36)
    c = small_source.conditions[:48]
    image = 50 * np.exp(-((x - c[:, 3:4]) ** 2 + (y - c[:, 4:5]) ** 2) / 0.1) + 0.1
    peak_time = np.broadcast_to(20 + 5 * x, image.shape)
    return ArrayDataset(
        image.astype(np.float32), peak_time.astype(np.float32), c, small_source.meta
    )


def test_loss_decreases(tmp_path, smooth_source):
    records = []
    cfg = _config(
        steps=16,
        learning_rate=1e-2,
        warmup_steps=1,
        ema_decay=0.0,
        validation_interval=1,
        checkpoint_interval=100,
    )
    result = train(
        smooth_source,
        tmp_path / "m.safetensors",
        PRESETS["tiny"],
        cfg,
        validation=smooth_source,
        callback=records.append,
    )
    val = [r["val_loss"] for r in records if r["kind"] == "validation"]
    assert len(val) == 16
    assert val[-1] < 0.7 * val[0], val
    assert result.step == 16 and result.val_loss == val[-1]
    kinds = {r["kind"] for r in records}
    assert kinds == {"shower", "train", "validation", "checkpoint", "progress"}
    pixel = [r["step"] for r in records if r["kind"] == "progress" and r["phase"] == "pixel"]
    assert pixel == list(range(17))
    assert all(r["kind"] != "progress" for r in result.history)
    meta = read_metadata(tmp_path / "m.safetensors")
    assert meta["provenance"]["steps"] == 16
    assert meta["config"]["train"]["seed"] == 0
    assert "grid_index" not in meta["training_meta"] and meta["transforms"]["grid"]["index"]
    assert meta["training_meta"]["subarray"] == smooth_source.meta["subarray"]


def test_train_records_the_gradient_norm_before_clipping(tmp_path, small_source):
    """Each ``train`` record holds the mean gradient norm before clipping and the fraction of
    its steps that ``grad_clip`` cut: all of them at a tiny clip, none at a huge one."""
    rows = {}
    for name, clip in (("loose", 1e9), ("tight", 1e-9)):
        records = []
        cfg = _config(steps=3, log_interval=1, grad_clip=clip, checkpoint_interval=100)
        train(
            small_source,
            tmp_path / f"{name}.safetensors",
            PRESETS["tiny"],
            cfg,
            callback=records.append,
        )
        rows[name] = [r for r in records if r["kind"] == "train"]
    assert [r["clipped"] for r in rows["loose"]] == [0.0, 0.0, 0.0]
    assert [r["clipped"] for r in rows["tight"]] == [1.0, 1.0, 1.0]
    # the first step sees the same weights and batch: the same norm, not the clipped 1e-9
    assert rows["tight"][0]["grad_norm"] == rows["loose"][0]["grad_norm"] > 1e-6


def test_validation_records_each_channels_loss(tmp_path, small_source, smooth_source):
    """The validation record holds the charge and peak-time losses, unweighted; ``val_loss``
    is their mean with the model's ``channel_weights``, so the channels compare across them."""
    cfg = _config(steps=2, validation_interval=2, checkpoint_interval=100)
    for weights in ((1.0, 1.0), (1.0, 3.0)):
        records = []
        config = replace(PRESETS["tiny"], channel_weights=weights)
        out = tmp_path / f"w{weights[1]:g}.safetensors"
        train(small_source, out, config, cfg, validation=smooth_source, callback=records.append)
        (val,) = [r for r in records if r["kind"] == "validation"]
        charge, time = val["val_loss_channels"]
        assert charge > 0 and time > 0 and charge != time
        mean = (weights[0] * charge + weights[1] * time) / sum(weights)
        assert val["val_loss"] == pytest.approx(mean, rel=1e-9)


class Killed(Exception):
    pass


def test_resume_reaches_same_weights(tmp_path, small_source):
    """Kill after step 4 (mid-epoch, mid-chunk), resume: identical to an uninterrupted run."""
    # 100 events, batch 16, chunks of 24: 6 batches per epoch, so 8 steps cross an epoch boundary
    cfg = _config(
        steps=8, batch_size=16, chunk_size=24, checkpoint_interval=4, validation_interval=100
    )
    full = tmp_path / "full.safetensors"
    train(small_source, full, PRESETS["tiny"], cfg)

    def kill_at_4(record):
        if record["kind"] == "checkpoint" and record["step"] == 4:
            raise Killed

    part = tmp_path / "part.safetensors"
    with pytest.raises(Killed):
        train(small_source, part, PRESETS["tiny"], cfg, callback=kill_at_4)
    assert read_metadata(part)["provenance"]["steps"] == 4
    result = train(small_source, part, PRESETS["tiny"], cfg, resume=True)
    assert result.step == 8

    a, b = load_file(state_path_for(full)), load_file(state_path_for(part))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    ca, cb = load_file(full), load_file(part)
    for key in ca:
        assert torch.equal(ca[key], cb[key]), key


def test_resume_errors(tmp_path, small_source):
    out = tmp_path / "m.safetensors"
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        train(small_source, out, PRESETS["tiny"], _config(steps=2), resume=True)
    train(small_source, out, PRESETS["tiny"], _config(steps=2))
    with pytest.raises(ValueError, match=r"train settings differ.*learning_rate"):
        train(small_source, out, PRESETS["tiny"], _config(steps=2, learning_rate=1.0), resume=True)


def test_warm_start_continues_from_the_model(tmp_path, smooth_source):
    """--init-model: the run starts where the model file left off, not from random weights."""
    fast = dict(learning_rate=1e-2, warmup_steps=1, ema_decay=0.0, validation_interval=1)
    first = tmp_path / "first.safetensors"
    records = []
    train(
        smooth_source,
        first,
        PRESETS["tiny"],
        _config(steps=16, checkpoint_interval=100, **fast),
        validation=smooth_source,
        callback=records.append,
    )
    val = [r["val_loss"] for r in records if r["kind"] == "validation"]

    def first_val_loss(**settings):
        records = []
        train(
            smooth_source,
            tmp_path / f"m{len(list(tmp_path.iterdir()))}.safetensors",
            PRESETS["tiny"],
            _config(steps=1, checkpoint_interval=100, **{**fast, **settings}),
            validation=smooth_source,
            callback=records.append,
        )
        return next(r["val_loss"] for r in records if r["kind"] == "validation")

    # one step at a negligible learning rate: the loss of the weights the run starts from
    warm = first_val_loss(init_model=str(first), learning_rate=1e-9)
    cold = first_val_loss(learning_rate=1e-9)
    assert warm == pytest.approx(val[-1], rel=0.05), (warm, val)
    assert cold > 1.3 * warm
    continued = tmp_path / "continued.safetensors"
    train(
        smooth_source,
        continued,
        PRESETS["tiny"],
        _config(steps=2, init_model=str(first), checkpoint_interval=100),
    )
    a, b = read_metadata(first), read_metadata(continued)
    assert a["transforms"] == b["transforms"]
    assert b["config"]["train"]["init_model"] == first.name  # by name
    assert b["provenance"]["init_model_sha256"] == file_sha256(first)


def test_warm_start_refuses_another_network(tmp_path, small_source):
    first = tmp_path / "first.safetensors"
    train(small_source, first, PRESETS["tiny"], _config(steps=1))
    with pytest.raises(ValueError, match="the initial model is another network"):
        train(
            small_source,
            tmp_path / "m.safetensors",
            PRESETS["tiny-geo"],
            _config(steps=1, init_model=str(first)),
        )


def test_state_of_an_older_version_resumes():
    """A setting added since a state file was written (at its default) is no change."""
    saved = {"model": {"a": 1}, "train": {"steps": 2}, "world_size": 1}
    now = {"model": {"a": 1}, "train": {"steps": 2, "init_model": None}, "world_size": 1}
    check_resumable("s", saved, now)
    # settings added later with other defaults: distill_steps (0), the model's distilled_steps
    now["train"]["distill_steps"] = 0
    now["model"]["distilled_steps"] = 0
    check_resumable("s", saved, now)
    now["model"]["distilled_steps"] = 4
    with pytest.raises(ValueError, match=r"model settings differ \(distilled_steps\)"):
        check_resumable("s", saved, now)
    now["model"]["distilled_steps"] = 0
    now["train"]["init_model"] = "m.safetensors"
    with pytest.raises(ValueError, match=r"train settings differ \(init_model\)"):
        check_resumable("s", saved, now)


def test_bad_data(tmp_path, small_source):
    a = small_source
    image = a.image.copy()
    image[50, 3] = np.nan
    with pytest.raises(ValueError, match="NaN or inf in 'image'"):
        train(
            ArrayDataset(image, a.peak_time, a.conditions, a.meta),
            tmp_path / "m.safetensors",
            PRESETS["tiny"],
            _config(steps=2),
        )
    meta = {k: v for k, v in a.meta.items() if k != "thrown"}
    with pytest.raises(ValueError, match="meta lacks thrown"):
        train(
            ArrayDataset(a.image, a.peak_time, a.conditions, meta),
            tmp_path / "m.safetensors",
            PRESETS["tiny"],
            _config(steps=2),
        )
    with pytest.raises(ValueError, match="fewer than one batch"):
        train(
            ArrayDataset(a.image[:5], a.peak_time[:5], a.conditions[:5], a.meta),
            tmp_path / "m.safetensors",
            PRESETS["tiny"],
            _config(steps=2, batch_size=8),
        )
    assert not (tmp_path / "m.safetensors").exists()


def test_split_dataset(small_source):
    train_src, val_src = split_dataset(small_source, 0.2)
    assert len(train_src) == 80 and len(val_src) == 20
    np.testing.assert_array_equal(val_src.read(0, 20)["image"], small_source.image[80:])
    assert split_dataset(small_source, 0.0)[1] is None
    with pytest.raises(ValueError, match="validation fraction"):
        split_dataset(small_source, 1.0)


def _ddp_worker(rank, world, init_file, arrays, out_dir):
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        source = ArrayDataset(*arrays)
        cfg = _config(steps=3, checkpoint_interval=3, shower_steps=5)
        result = train(source, f"{out_dir}/model.safetensors", PRESETS["tiny"], cfg)
        # each rank saves what it holds, to compare outside
        from safetensors.torch import save_file

        tensors = {
            f"{name}.{k}": v for name, m in result.models.items() for k, v in m.state_dict().items()
        }
        save_file(tensors, f"{out_dir}/rank{rank}.safetensors")
    finally:
        dist.destroy_process_group()


def test_ddp_two_cpu_ranks_agree(tmp_path, small_source):
    """Two gloo processes train on their own shards; both end with the same weights."""
    import torch.multiprocessing as mp

    a = small_source
    arrays = (a.image, a.peak_time, a.conditions, a.meta)
    mp.spawn(
        _ddp_worker, args=(2, str(tmp_path / "init"), arrays, str(tmp_path)), nprocs=2, join=True
    )
    meta = read_metadata(tmp_path / "model.safetensors")
    assert meta["config"]["world_size"] == 2 and meta["provenance"]["steps"] == 3
    r0, r1 = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    assert r0.keys() == r1.keys()
    for key in r0:
        assert torch.equal(r0[key], r1[key]), key
    # and training moved the weights (the ranks did not just keep their identical init)
    init = PRESETS["tiny"].unet
    from ctapipe_genshower.model.networks import UNet

    with torch.random.fork_rng():
        torch.manual_seed(0)
        fresh = UNet(init).state_dict()
    assert not torch.equal(fresh["out.weight"], r0["net.out.weight"])


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, smooth_source):
    """A tiny model trained on the smooth blobs: the teacher of the distillation tests."""
    path = tmp_path_factory.mktemp("teacher") / "teacher.safetensors"
    fast = dict(learning_rate=1e-2, warmup_steps=1, checkpoint_interval=100)
    train(smooth_source, path, PRESETS["tiny"], _config(steps=16, **fast))
    return path


def _distill_config(teacher, **kwargs):
    settings = dict(
        init_model=str(teacher),
        distill_steps=2,
        teacher_substeps=3,
        learning_rate=5e-3,
        warmup_steps=1,
        ema_decay=0.0,
        checkpoint_interval=100,
    )
    return _config(**{**settings, **kwargs})


def test_distillation_makes_a_student_of_the_teacher(tmp_path, smooth_source, teacher):
    from ctapipe_genshower.generator import ShowerGenerator

    records, student = [], tmp_path / "student.safetensors"
    train(
        smooth_source,
        student,
        PRESETS["tiny"],
        _distill_config(teacher, steps=12, validation_interval=1),
        validation=smooth_source,
        callback=records.append,
    )
    # no shower phase: the student keeps the teacher's shower-level model
    assert {r["kind"] for r in records} == {"train", "validation", "checkpoint", "progress"}
    val = [r["val_loss"] for r in records if r["kind"] == "validation"]
    assert val[-1] < 0.8 * val[0], val
    meta = read_metadata(student)
    assert meta["config"]["model"]["distilled_steps"] == 2
    assert meta["config"]["model"]["default_n_steps"] == 2
    assert meta["provenance"]["init_model_sha256"] == file_sha256(teacher)
    assert meta["domain"] == read_metadata(teacher)["domain"]
    a, b = load_file(teacher), load_file(student)
    shower = [k for k in a if k.startswith("shower.")]
    assert shower and all(torch.equal(a[k], b[k]) for k in shower)
    assert any(not torch.equal(a[k], b[k]) for k in a if k.startswith("pixel."))

    gen = ShowerGenerator.from_file(student, device="cpu")
    conditions = smooth_source.conditions[:3].astype(np.float64)
    assert gen.generate(conditions, np.arange(3))["image"].shape == (3, gen.n_pixels)
    with pytest.raises(ValueError, match="distilled for the ddim solver at 2 steps"):
        gen.generate(conditions, np.arange(3), n_steps=4)


def test_distillation_resumes_to_the_same_weights(tmp_path, smooth_source, teacher):
    cfg = _distill_config(teacher, steps=6, checkpoint_interval=3, validation_interval=100)
    full = tmp_path / "full.safetensors"
    train(smooth_source, full, PRESETS["tiny"], cfg)

    def kill_at_3(record):
        if record["kind"] == "checkpoint" and record["step"] == 3:
            raise Killed

    part = tmp_path / "part.safetensors"
    with pytest.raises(Killed):
        train(smooth_source, part, PRESETS["tiny"], cfg, callback=kill_at_3)
    assert train(smooth_source, part, PRESETS["tiny"], cfg, resume=True).step == 6
    a, b = load_file(full), load_file(part)
    assert all(torch.equal(a[key], b[key]) for key in a)


def test_the_teachers_solver_is_a_choice(tmp_path, smooth_source, teacher):
    with pytest.raises(ValueError, match="teacher_solver must be one of dpmpp-2m, ddim"):
        _distill_config(teacher, teacher_solver="heun")

    def first_validation(solver):
        records = []
        config = _distill_config(teacher, steps=1, validation_interval=1, teacher_solver=solver)
        train(
            smooth_source,
            tmp_path / f"{solver}.safetensors",
            PRESETS["tiny"],
            config,
            validation=smooth_source,
            callback=records.append,
        )
        meta = read_metadata(tmp_path / f"{solver}.safetensors")
        assert meta["config"]["train"]["teacher_solver"] == solver
        return next(r["val_loss"] for r in records if r["kind"] == "validation")

    # the same student, noise and grid steps against another target: another loss
    assert first_validation("ddim") != pytest.approx(first_validation("dpmpp-2m"), rel=1e-3)


def test_a_student_teaches_on_its_own_grid(tmp_path, smooth_source, teacher):
    with pytest.raises(ValueError, match="distill_steps needs the teacher model"):
        _config(distill_steps=2)
    student = tmp_path / "student.safetensors"
    train(smooth_source, student, PRESETS["tiny"], _distill_config(teacher, steps=1))
    # a further round: 2 steps x 1 sub-step on the 2-step student's grid
    again = tmp_path / "again.safetensors"
    config = _distill_config(student, steps=1, distill_steps=1, teacher_substeps=2)
    train(smooth_source, again, PRESETS["tiny"], config)
    assert read_metadata(again)["config"]["model"]["distilled_steps"] == 1
    with pytest.raises(ValueError, match=r"distilled for 2 DDIM steps.*got 1 x 3"):
        train(
            smooth_source,
            tmp_path / "bad.safetensors",
            PRESETS["tiny"],
            _distill_config(student, steps=1, distill_steps=1, teacher_substeps=3),
        )


def test_warm_start_with_the_asinh_time_transform(tmp_path, small_source):
    """A linear-time model continued as ``-asinh-time``: same weights and charge/condition
    normalisations, a time transform refitted in the asinh form; a student may not switch."""
    first = tmp_path / "first.safetensors"
    train(small_source, first, PRESETS["tiny"], _config(steps=1))
    continued = tmp_path / "asinh.safetensors"
    train(
        small_source,
        continued,
        PRESETS["tiny-asinh-time"],
        _config(steps=1, init_model=str(first)),
    )
    a, b = read_metadata(first)["transforms"], read_metadata(continued)["transforms"]
    assert a["image"] == b["image"] and a["conditions"] == b["conditions"]
    assert "softening" not in a["time"] and b["time"]["softening"] > 0
    assert read_metadata(continued)["config"]["model"]["time_transform"] == "asinh"
    with pytest.raises(ValueError, match="a student must keep its teacher's time transform"):
        train(
            small_source,
            tmp_path / "student.safetensors",
            PRESETS["tiny-asinh-time"],
            _config(steps=1, init_model=str(first), distill_steps=2, teacher_substeps=2),
        )


def test_warm_start_with_night_sky_times(tmp_path, small_source):
    """A plain model fine-tuned with night-sky times: same weights' normalisations, the table
    fitted on this data in the kept time transform; a student may not switch."""
    from dataclasses import replace

    first = tmp_path / "first.safetensors"
    train(small_source, first, PRESETS["tiny"], _config(steps=1))
    night_sky = replace(PRESETS["tiny"], night_sky_charge=1.0, night_sky_target="plane")
    tuned = tmp_path / "tuned.safetensors"
    train(small_source, tuned, night_sky, _config(steps=1, init_model=str(first)))
    a, b = read_metadata(first)["transforms"], read_metadata(tuned)["transforms"]
    assert all(a[k] == b[k] for k in ("image", "time", "conditions"))
    assert "night_sky" not in a
    assert b["night_sky"]["charge"] == 1.0 and b["night_sky"]["target"] == "plane"
    assert b["night_sky"]["target_time"] == a["time"]["center"]
    with pytest.raises(ValueError, match="the initial model's night-sky times differ"):
        train(
            small_source,
            tmp_path / "student.safetensors",
            night_sky,
            _config(steps=1, init_model=str(first), distill_steps=2, teacher_substeps=2),
        )


def test_time_transform_is_a_checked_setting_not_an_architecture():
    from ctapipe_genshower.model.config import ModelConfig

    small, asinh = PRESETS["small"], PRESETS["small-asinh-time"]
    assert small.architecture_dict() == asinh.architecture_dict()
    assert small.network_dict() != asinh.network_dict()
    assert ModelConfig.from_dict(asinh.to_dict()) == asinh
    old = small.to_dict()
    del old["time_transform"]  # files written before the setting existed
    assert ModelConfig.from_dict(old).time_transform == "linear"
    with pytest.raises(ValueError, match="time_transform must be one of"):
        ModelConfig(time_transform="log")


def test_bf16_autocast_on_the_cpu(tmp_path, small_source):
    """``mixed_precision='bf16'`` runs the CPU's network under bf16 autocast: a loss within
    bf16 rounding of float32's, and reproducible (the same seed, the same weights)."""
    losses, files = {}, {}
    for name, precision in (("fp32", "no"), ("bf16", "bf16"), ("bf16_again", "bf16")):
        files[name] = tmp_path / f"{name}.safetensors"
        cfg = _config(steps=3, mixed_precision=precision, validation_interval=100)
        result = train(small_source, files[name], PRESETS["tiny"], cfg)
        losses[name] = next(r["loss"] for r in result.history if r["kind"] == "train")
    assert losses["bf16"] != losses["fp32"]  # autocast ran
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.05)
    a, b = load_file(files["bf16"]), load_file(files["bf16_again"])
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert read_metadata(files["bf16"])["config"]["train"]["mixed_precision"] == "bf16"
