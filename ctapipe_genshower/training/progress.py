"""Progress bars of a training run: one per training phase, one for a data conversion.

:class:`PhaseProgress` takes the records of the training loop (its ``callback``) and shows a
tqdm bar per phase (shower model, pixel model) with the running loss;
:class:`ChunkProgress` takes the counts of a chunked conversion (the ``progress`` callback of
``DL1TrainingReader.to_training_file``). Disabled, neither imports tqdm::

    from ctapipe_genshower.fit import train
    from ctapipe_genshower.training.progress import PhaseProgress

    with PhaseProgress() as progress:
        train(train_set, "model.safetensors", callback=progress)
"""

__all__ = ["PHASE_TITLES", "ChunkProgress", "PhaseProgress"]

#: Bar titles of the training phases (the ``phase`` of the loop's ``progress`` records).
PHASE_TITLES = {"shower": "shower model", "pixel": "pixel model"}


class _Bar:
    """One tqdm bar at a time (a new one closes the previous); nothing when disabled."""

    def __init__(self, enabled=True, **tqdm_kwargs):
        self.enabled = enabled
        self.bar = None
        self._tqdm_kwargs = tqdm_kwargs

    def _open(self, desc, **kwargs):
        self.close()
        if self.enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(desc=desc, **kwargs, **self._tqdm_kwargs)
        return self.bar

    def close(self):
        """Close the open bar, if any."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class PhaseProgress(_Bar):
    """A bar per training phase, driven by the training loop's records.

    A phase's bar opens at its first ``progress`` record (total: the phase's steps) and
    follows its ``step``; ``train`` records put the running loss beside it. Other records
    are ignored, so the object can be the loop's callback or be called from one.

    Parameters
    ----------
    enabled : bool
        False: no bars (tqdm is not imported).
    titles : dict, optional
        Bar title of each phase, default :data:`PHASE_TITLES` (unknown phases show their name).
    **tqdm_kwargs
        Passed to every ``tqdm`` bar (e.g. ``file``).
    """

    def __init__(self, enabled=True, titles=None, **tqdm_kwargs):
        super().__init__(enabled, **tqdm_kwargs)
        self.titles = PHASE_TITLES if titles is None else titles
        self.phase = None

    def __call__(self, record):
        """Move the bars with one record of the training loop."""
        kind = record["kind"]
        if kind == "progress":
            phase = record["phase"]
            if self.phase != phase:
                self._open(self.titles.get(phase, phase), total=record["steps"], unit="step")
                self.phase = phase
            if self.bar is not None:
                self.bar.update(record["step"] - self.bar.n)
        elif kind == "train" and self.bar is not None:
            self.bar.set_postfix(loss=f"{record['loss']:.4f}", refresh=False)

    def close(self):
        """Close the bar of the current phase; the next record of a phase opens a new one."""
        super().close()
        self.phase = None


class ChunkProgress(_Bar):
    """A bar of items read chunk by chunk, with the selected ones beside it.

    The bar opens at once; calling the object with the running counts moves it.

    Parameters
    ----------
    desc : str
        Bar title.
    unit : str
        What is counted.
    enabled : bool
        False: no bar (tqdm is not imported).
    **tqdm_kwargs
        Passed to ``tqdm`` (e.g. ``file``).
    """

    def __init__(self, desc="DL1 images", unit="img", enabled=True, **tqdm_kwargs):
        super().__init__(enabled, **tqdm_kwargs)
        self._open(desc, unit=unit)

    def __call__(self, n_read, n_selected):
        """Show ``n_read`` items read so far, ``n_selected`` of them selected."""
        if self.bar is not None:
            self.bar.set_postfix(selected=n_selected, refresh=False)
            self.bar.update(n_read - self.bar.n)
