"""Progress bars of a training run, driven by the loop's records and by conversion counts."""

import io

from ctapipe_genshower.training.progress import ChunkProgress, PhaseProgress


def test_a_bar_per_phase_with_the_running_loss():
    out = io.StringIO()
    with PhaseProgress(file=out) as progress:
        for step in range(1, 4):
            progress({"kind": "progress", "phase": "shower", "step": step, "steps": 3})
        progress({"kind": "progress", "phase": "pixel", "step": 1, "steps": 2})
        progress({"kind": "train", "step": 1, "loss": 0.5, "lr": 1e-3})
        progress({"kind": "progress", "phase": "pixel", "step": 2, "steps": 2})
        progress({"kind": "checkpoint", "step": 2, "path": "m"})
    text = out.getvalue()
    assert "shower model: 100%" in text and "3/3" in text
    assert "pixel model: 100%" in text and "2/2" in text and "loss=0.5000" in text
    assert progress.bar is None and progress.phase is None


def test_disabled_bars_show_nothing():
    out = io.StringIO()
    progress = PhaseProgress(enabled=False, file=out)
    progress({"kind": "progress", "phase": "pixel", "step": 1, "steps": 2})
    progress({"kind": "train", "step": 1, "loss": 0.5, "lr": 1e-3})
    with ChunkProgress(enabled=False, file=out) as chunks:
        chunks(10, 3)
    assert out.getvalue() == "" and progress.bar is None and chunks.bar is None


def test_chunk_progress_counts_read_and_selected():
    out = io.StringIO()
    with ChunkProgress("DL1 images", unit="img", file=out) as bar:
        bar(100, 20)
        bar(250, 41)
        assert bar.bar.n == 250
    assert "DL1 images" in out.getvalue() and "selected=41" in out.getvalue()
