"""Training the generator: no CLI, no ctapipe, no model-file format.

``config`` (``TrainConfig``; standard library only) · ``dataset`` (training events read in
row ranges) · ``stream`` (shuffled batches positioned by the step) · ``shower_fit`` (the
shower-level model) · ``loop`` (the pixel model, EMA, validation, checkpoints) · ``state``
(the resume file) · ``distributed`` (torchrun, DDP) · ``history`` (loss log and plot) ·
``plan`` (a run's data, settings and resume state checked before it starts) · ``progress``
(progress bars driven by the loop's records).

``ctapipe_genshower.fit.train`` runs the loop and writes the model file;
``ctapipe-genshower-train`` is the command line. Import the submodules directly: this
package imports nothing, so ``training.config`` stays free of torch.
"""
