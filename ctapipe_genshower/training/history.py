"""The loss history of a run: a CSV log of the training records and its loss-curve plot.

``model.loss.csv`` has the columns
``kind,step,epoch,loss,val_loss,val_size_nll,lr,grad_norm,clipped,val_loss_charge,
val_loss_time``: the running training loss (``train``, with the mean gradient norm before
clipping and the fraction of steps clipped since the previous row), the validation loss of
the EMA weights (``validation``, with each channel's unweighted part) and the shower-model
loss (``shower``). ``model.loss.png`` plots the first two against the step.
"""

import csv
from pathlib import Path

from ..atomic import atomic_output

__all__ = ["CSV_COLUMNS", "LossLog", "plot_loss_curve"]

CSV_COLUMNS = (
    "kind",
    "step",
    "epoch",
    "loss",
    "val_loss",
    "val_size_nll",
    "lr",
    "grad_norm",
    "clipped",
    "val_loss_charge",
    "val_loss_time",
)


class LossLog:
    """Append training records (``train.loop`` callback records) to the CSV log.

    The log is written in place and flushed after every row, so it can be followed while
    a long run trains; only the rewrite on resume goes through a temporary file.

    Parameters
    ----------
    path : path-like
        The CSV file.
    resume_step : int, optional
        Continue the log of a resumed run: keep its shower rows and the rows up to this
        step (later ones were not saved in the state the run resumes from).
    """

    def __init__(self, path, resume_step=None):
        self.path = Path(path)
        rows = []
        if resume_step is not None and self.path.is_file():
            with self.path.open(newline="") as f:
                rows = [
                    r
                    for r in csv.DictReader(f)
                    if r["kind"] == "shower" or int(r["step"]) <= resume_step
                ]
            with atomic_output(self.path) as tmp, Path(tmp).open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
                writer.writeheader()
                writer.writerows(rows)
            self._file = self.path.open("a", newline="")
        else:
            self._file = self.path.open("w", newline="")
            csv.DictWriter(self._file, fieldnames=CSV_COLUMNS).writeheader()
        self._csv = csv.DictWriter(self._file, fieldnames=CSV_COLUMNS)
        self._file.flush()

    def write(self, record):
        """Write one record (kinds ``train``, ``validation``, ``shower``; others are skipped)."""
        kind = record["kind"]
        if kind == "train":
            values = {
                "loss": record["loss"],
                "lr": record["lr"],
                "grad_norm": record.get("grad_norm"),
                "clipped": record.get("clipped"),
            }
        elif kind == "validation":
            channels = record.get("val_loss_channels") or (None, None)
            values = {
                "loss": record["train_loss"],
                "val_loss": record["val_loss"],
                "val_size_nll": record["val_size_nll"],
                "val_loss_charge": channels[0],
                "val_loss_time": channels[1],
            }
        elif kind == "shower":
            values = {"loss": record["loss"]}
        else:
            return
        epoch = record.get("epoch")
        row = {"kind": kind, "step": record["step"], "epoch": "" if epoch is None else epoch}
        row.update({k: f"{v:.6g}" for k, v in values.items() if v is not None})
        self._csv.writerow(row)
        self._file.flush()

    def close(self):
        """Close the file (idempotent)."""
        if not self._file.closed:
            self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def plot_loss_curve(csv_path, png_path):
    """PNG of the running training loss and the validation loss versus step.

    Returns
    -------
    pathlib.Path
        ``png_path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, val = ([], []), ([], [])
    with Path(csv_path).open(newline="") as f:
        for row in csv.DictReader(f):
            if row["kind"] == "train":
                train[0].append(int(row["step"]))
                train[1].append(float(row["loss"]))
            elif row["kind"] == "validation" and row["val_loss"]:
                val[0].append(int(row["step"]))
                val[1].append(float(row["val_loss"]))
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    try:
        ax.plot(*train, label="training (running mean)", lw=1)
        ax.plot(*val, "o-", label="validation (EMA weights)", ms=3)
        ax.set_xlabel("step")
        ax.set_ylabel("v-prediction loss")
        ax.set_yscale("log")
        ax.legend()
        with atomic_output(png_path) as tmp:
            fig.savefig(tmp, dpi=100, format="png")
    finally:
        plt.close(fig)
    return Path(png_path)
