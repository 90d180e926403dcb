"""The plan of a training run: settings and data refused in one line before anything runs."""

import numpy as np
import pytest

from ctapipe_genshower.training.config import TrainConfig
from ctapipe_genshower.training.dataset import ArrayDataset
from ctapipe_genshower.training.plan import check_settings, plan_training


def _dataset(n=40, thrown=True, path=None):
    meta = {
        "grid_shape": [2, 2],
        "grid_index": [0, 1, 2, 3],
        "subarray": {},
        "thrown": {"kind": "power_law"} if thrown else None,
        "n_thrown": 1000,
        "n_selected": n,
    }
    zeros = np.zeros((n, 4), np.float32)
    dataset = ArrayDataset(zeros, zeros, np.zeros((n, 5), np.float32), meta)
    if path is not None:
        dataset.path = path
    return dataset


def test_check_settings():
    assert check_settings({"steps": 3}) == TrainConfig(steps=3)
    with pytest.raises(ValueError, match=r"^Invalid training setting: .*steps"):
        check_settings({"steps": 0})
    with pytest.raises(ValueError, match=r"^Invalid training setting: epochs must be > 0"):
        check_settings({}, epochs=0)
    with pytest.raises(ValueError, match=r"log_snr_shift must be finite"):
        check_settings({"log_snr_shift": float("nan")})
    # distillation trains at the student's grid times: a shift would be ignored, so refused
    with pytest.raises(ValueError, match=r"log_snr_shift applies to diffusion training"):
        check_settings({"log_snr_shift": 1.0, "distill_steps": 4, "init_model": "t.safetensors"})
    assert check_settings({"log_snr_shift": -1.5}).log_snr_shift == -1.5


def test_plan_splits_and_resolves_the_run_length():
    plan = plan_training(_dataset(40), {"batch_size": 4}, epochs=2, validation_fraction=0.1)
    assert len(plan.train_set) == 36 and len(plan.validation) == 4
    assert plan.train_config.steps == 18 and plan.start_step == 0
    plan = plan_training(_dataset(40), {"batch_size": 4, "steps": 5}, validation_fraction=0)
    assert plan.validation is None and plan.train_config.steps == 5


def test_plan_refuses_unusable_data_naming_the_file():
    with pytest.raises(
        ValueError, match=r"^data\.ts: 36 training events .* fewer than one batch of 8"
    ):
        plan_training(_dataset(40, path="data.ts"), {"batch_size": 8}, world_size=5)
    with pytest.raises(ValueError, match=r"^data\.ts: the simulation settings are not a thrown"):
        plan_training(_dataset(40, thrown=False, path="data.ts"), {"batch_size": 4})
    empty = ArrayDataset(np.zeros((1, 4)), np.zeros((1, 4)), np.zeros((1, 5)), {})
    with pytest.raises(ValueError, match=r"^training data meta lacks"):
        plan_training(empty, {})


def test_plan_refuses_an_unreadable_state_file(tmp_path):
    state = tmp_path / "m.state.safetensors"
    state.write_bytes(b"not a state file")
    with pytest.raises(ValueError, match=r"^cannot resume: "):
        plan_training(_dataset(40), {"batch_size": 4}, state_path=state, resume=True)
