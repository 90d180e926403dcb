"""``ctapipe-genshower-refine``: fit a model's refiner and write the refined model.

The refiner is a classifier between the training simulation's selected images and the
model's own images of the same showers (:mod:`ctapipe_genshower.refine`); the refined model
keeps each generated image with the classifier's density ratio (capped) and redraws the
others for the same shower, so that its images follow the simulation where the plain model
misses it. The output is the input model file plus the refiner's tensors and metadata.
"""

from pathlib import Path

from ctapipe.core import Tool, ToolConfigurationError
from ctapipe.core.traits import Bool, Float, Int, List, Unicode, flag
from ctapipe.core.traits import Path as PathTrait

from ..atomic import exit_on_sigterm
from ..checkpoint import CheckpointError, read_metadata
from ..data.training_file import is_training_file
from ..model.config import SOLVER_NAMES
from ..model.density_ratio import REFINER_FEATURES, TIME_RESIDUAL_FEATURE
from . import refuse_extra_arguments

__all__ = ["RefineTool", "main"]


def _as_list(value):
    """A provenance record of one file (str) or several (list), as a list."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


class RefineTool(Tool):
    """Fit the refiner of a model on its training file and write the refined model."""

    name = "ctapipe-genshower-refine"
    description = __doc__
    examples = """
    > ctapipe-genshower-refine --model student4.safetensors \\
        --input train.training.safetensors -o student4_refined.safetensors

    Keep the image pairs, and later add a training file (only its pairs are generated):
    > ctapipe-genshower-refine --model student4.safetensors --input train.training.safetensors \\
        --pairs train.pairs.safetensors -o refined.safetensors
    > ctapipe-genshower-refine --model student4.safetensors \\
        --input train.training.safetensors --input more.training.safetensors \\
        --pairs train.pairs.safetensors --pairs more.pairs.safetensors -o refined2.safetensors

    Then generate with it like with any model (--no-refine turns the refiner off):
    > ctapipe-genshower-generate --model student4_refined.safetensors -o protons.dl1.h5
    """

    # existence and type of the files are checked in setup (one-line error, exit code 2)
    model = PathTrait(None, allow_none=True, help="The model file to refine").tag(config=True)
    input_files = List(
        PathTrait(),
        default_value=[],
        help=(
            "Prepared training file(s) of the simulation (ctapipe-genshower-train"
            " --prepare-only), ideally the model's own training data; several are fitted as"
            " one sample"
        ),
    ).tag(config=True)
    output = PathTrait(None, allow_none=True, directory_ok=False, help="Refined model file").tag(
        config=True
    )
    n_events = Int(
        None,
        allow_none=True,
        min=40,
        help=(
            "Simulated images used from each training file (and as many generated); default:"
            " all (the refiner's held-out loss still falls with more pairs, docs/refiner.md)"
        ),
    ).tag(config=True)
    seed = Int(
        0, min=0, help="Choice of images, generated events and (see fit_seed) the classifier's fit"
    ).tag(config=True)
    fit_seed = Int(
        None,
        allow_none=True,
        min=0,
        help=(
            "Seed of the classifier's fit (its split into fit and held-out images, initial"
            " weights, batch order); default: the seed. With --pairs, another fit of the same"
            " pairs"
        ),
    ).tag(config=True)
    draws_per_image = Int(
        1,
        min=1,
        help=(
            "Generated images per simulated image: more sharpen the ratio where simulated"
            " images are scarce (fit time grows with them)"
        ),
    ).tag(config=True)
    max_redraws = Int(10, min=1, help="Redraws of generated images failing the selection").tag(
        config=True
    )
    n_steps = Int(None, allow_none=True, min=1, help="Sampler steps (default: the model's)").tag(
        config=True
    )
    solver = Unicode("ddim", help=f"Sampler: {', '.join(SOLVER_NAMES)}").tag(config=True)
    batch_size = Int(64, min=1, help="Events per network call").tag(config=True)
    epochs = Int(60, min=1, help="Epochs of the classifier").tag(config=True)
    # the classifier's defaults: the best held-out score of a search on refiner v4's image
    # pairs (runs/2026-12-04_refined_v5/fit_search.md)
    classifier_width = Int(128, min=1, help="Hidden units per layer of the classifier").tag(
        config=True
    )
    classifier_depth = Int(4, min=1, help="Hidden layers of the classifier").tag(config=True)
    classifier_weight_decay = Float(0.1, min=0, help="AdamW weight decay of the classifier").tag(
        config=True
    )
    classifier_batch_size = Int(256, min=1, help="Feature rows per classifier step").tag(
        config=True
    )
    classifier_members = Int(
        1,
        min=1,
        help=(
            "Classifiers fitted on the same images, each with its own initial weights and"
            " batch order, whose log-odds are averaged (docs/refiner.md)"
        ),
    ).tag(config=True)
    cap_quantile = Float(
        0.99,
        help=(
            "The ratio's cap r_max is this quantile over generated images: images more"
            " under-represented than that are corrected only up to it"
        ),
    ).tag(config=True)
    calibrate = Bool(
        True,
        help=(
            "Fit a temperature of the classifier's log-odds on the held-out images (the"
            " trained classifier is over-confident; docs/refiner.md)"
        ),
    ).tag(config=True)
    marginals = Bool(
        False,
        help=(
            "Also fit the marginal calibration (per-parameter factors that bring the kept"
            " images' one-dimensional distributions to the simulation's) on the held-out pairs"
        ),
    ).tag(config=True)
    marginal_parameters = List(
        Unicode(),
        default_value=None,
        allow_none=True,
        help=(
            "The image parameters the marginal calibration corrects (default: all of the"
            " refiner's): a few that the classifier leaves wrong, since the factors of"
            " correlated parameters trade one marginal for another (docs/refiner.md)"
        ),
    ).tag(config=True)
    keep_classifier = Bool(
        False,
        help=(
            "Keep the model's refiner classifier and fit only its marginal calibration on the"
            " pairs of this training file, whose showers the classifier must not have seen"
        ),
    ).tag(config=True)
    eta = List(
        Float(min=0.0),
        default_value=None,
        allow_none=True,
        help=(
            "DDIM eta of each step to sample the model with, recorded in the output as its"
            " default sampler (e.g. 1 1 0: fresh noise at the first two steps of a 4-step"
            " student; docs/sampling.md). Default: the model's own"
        ),
    ).tag(config=True)
    eta_channels = List(
        Int(min=0, max=1),
        default_value=None,
        allow_none=True,
        help="The channels --eta adds noise to (0: charge, 1: peak time; default: both)",
    ).tag(config=True)
    time_residual = Bool(
        False,
        help=(
            "Add the largest peak-time residual of a cleaned pixel to the refiner's features:"
            " timing_deviation closer to the simulation, fewer G/H-cut survivors"
            " (docs/refiner.md)"
        ),
    ).tag(config=True)
    pairs = List(
        PathTrait(directory_ok=False),
        default_value=None,
        allow_none=True,
        help=(
            "Pairs file of each training file, in the same order: read the image pairs from"
            " it when it exists (made from the same model, training file, images, seed and"
            " sampling), else make them and write it. Generating the pairs is nearly all of a"
            " fit's time; a refit with other classifier settings or features then takes about"
            " a minute, and a fit with one more training file generates only its pairs"
        ),
    ).tag(config=True)
    bf16 = Bool(
        False,
        help=(
            "Generate the model's images under bf16 autocast (faster on CPUs with bf16"
            " instructions): for a model that will generate with --bf16"
        ),
    ).tag(config=True)
    progress_bar = Bool(True, help="Show progress bars").tag(config=True)

    aliases = {
        ("m", "model"): "RefineTool.model",
        ("i", "input"): "RefineTool.input_files",
        ("o", "output"): "RefineTool.output",
        "n-events": "RefineTool.n_events",
        "seed": "RefineTool.seed",
        "fit-seed": "RefineTool.fit_seed",
        "draws-per-image": "RefineTool.draws_per_image",
        "max-redraws": "RefineTool.max_redraws",
        "n-steps": "RefineTool.n_steps",
        "solver": "RefineTool.solver",
        "batch-size": "RefineTool.batch_size",
        "epochs": "RefineTool.epochs",
        "classifier-width": "RefineTool.classifier_width",
        "classifier-depth": "RefineTool.classifier_depth",
        "classifier-weight-decay": "RefineTool.classifier_weight_decay",
        "classifier-batch-size": "RefineTool.classifier_batch_size",
        "classifier-members": "RefineTool.classifier_members",
        "cap-quantile": "RefineTool.cap_quantile",
        "eta": "RefineTool.eta",
        "eta-channels": "RefineTool.eta_channels",
        "pairs": "RefineTool.pairs",
        "marginal-parameters": "RefineTool.marginal_parameters",
    }
    flags = {
        **flag("progress", "RefineTool.progress_bar", "Show progress bars", "No progress bars"),
        **flag(
            "calibrate",
            "RefineTool.calibrate",
            "Calibrate the classifier's temperature on held-out images",
            "Use the classifier's log-odds as they are (temperature 1)",
        ),
        **flag(
            "marginals",
            "RefineTool.marginals",
            "Fit the marginal calibration too (docs/refiner.md)",
            "The classifier alone",
        ),
        "time-residual": (
            {"RefineTool": {"time_residual": True}},
            "Add the largest peak-time residual to the refiner's features",
        ),
        "keep-classifier": (
            {"RefineTool": {"keep_classifier": True}},
            "Keep the model's refiner classifier, fit only its marginal calibration",
        ),
        "bf16": (
            {"RefineTool": {"bf16": True}},
            "Generate the model's images under bf16 autocast (for a model run with --bf16)",
        ),
        "overwrite": ({"RefineTool": {"overwrite": True}}, "Replace an existing output file"),
    }

    def setup(self):
        exit_on_sigterm(self._exit_stack, self.log)
        for name, option in (("model", "--model"), ("input_files", "--input"), ("output", "-o")):
            if not getattr(self, name):
                raise ToolConfigurationError(f"No {name.replace('_', ' ')}: give it with {option}")
        if self.solver not in SOLVER_NAMES:
            raise ToolConfigurationError(
                f"Unknown solver {self.solver!r}, choose from {', '.join(SOLVER_NAMES)}"
            )
        # e.g. "--eta 1 1 0": a list option takes one value each time
        refuse_extra_arguments(
            self, "a list option is repeated: --input=a --input=b, --eta=1 --eta=1 --eta=0"
        )
        if self.time_residual and self.keep_classifier:
            raise ToolConfigurationError(
                "--time-residual chooses a new classifier's features; --keep-classifier keeps"
                " the model's"
            )
        if self.fit_seed is not None and self.keep_classifier:
            raise ToolConfigurationError(
                "--fit-seed seeds a new classifier's fit; --keep-classifier keeps the model's"
            )
        if self.marginal_parameters is not None and not (self.marginals or self.keep_classifier):
            raise ToolConfigurationError(
                "--marginal-parameters chooses what the marginal calibration corrects:"
                " give --marginals or --keep-classifier with it"
            )
        if self.eta_channels is not None and self.eta is None:
            raise ToolConfigurationError("--eta-channels needs --eta (the per-step eta)")
        if not 0 < self.cap_quantile <= 1:
            raise ToolConfigurationError(f"cap_quantile must be in (0, 1], got {self.cap_quantile}")
        for path in (self.model, *self.input_files):
            if not path.is_file():
                raise ToolConfigurationError(f"Input file not found: {path}")
        for path in self.input_files:
            if not is_training_file(path):
                raise ToolConfigurationError(
                    f"{path} is not a ctapipe-genshower training file (make one from DL1 files"
                    " with ctapipe-genshower-train --prepare-only)"
                )
        try:
            meta = read_metadata(self.model)
        except CheckpointError as err:
            raise ToolConfigurationError(str(err)) from None
        if self.marginal_parameters is not None:
            self._check_marginal_parameters(meta)
        fitted_on = ((meta.get("provenance") or {}).get("refinement") or {}).get("training_file")
        fitted_on = {Path(name).name for name in _as_list(fitted_on)}
        for path in self.input_files if self.keep_classifier else ():
            if path.name in fitted_on:
                # its ratio is over-confident on the showers it was fitted on (docs/refiner.md)
                self.log.warning(
                    "%s is a training file the classifier was fitted on: fit the calibration"
                    " on showers the classifier has not seen",
                    path.name,
                )
        if self.pairs is not None:
            if len(self.pairs) != len(self.input_files):
                raise ToolConfigurationError(
                    f"{len(self.pairs)} pairs files for {len(self.input_files)} training files:"
                    " give one pairs file per training file, in the same order"
                )
            for pairs in self.pairs:
                if not pairs.exists() and not pairs.parent.is_dir():
                    # checked now: the pairs are written after the long part, their generation
                    raise ToolConfigurationError(f"Directory of the pairs file not found: {pairs}")
        self.check_output(self.output)

    def _check_marginal_parameters(self, meta):
        """Refuse names the calibrated classifier does not read, before any pairs are made:
        the kept classifier's features, or those of the new fit."""
        if self.keep_classifier:
            features = (meta.get("refiner") or {}).get("features") or []
        elif self.time_residual:
            features = (*REFINER_FEATURES, TIME_RESIDUAL_FEATURE)
        else:
            features = REFINER_FEATURES
        known = list(dict.fromkeys(name for name, *_ in features))
        unknown = sorted(set(self.marginal_parameters) - set(known))
        if known and (unknown or not self.marginal_parameters):
            raise ToolConfigurationError(
                f"--marginal-parameters: {', '.join(unknown) or 'none given'} not among the"
                f" refiner's parameters ({', '.join(known)})"
            )

    def start(self):
        from ..refine import refine_model

        try:
            self.refiner = refine_model(
                self.model,
                self.input_files,
                self.output,
                n_events=self.n_events,
                seed=self.seed,
                max_redraws=self.max_redraws,
                n_steps=self.n_steps,
                solver=self.solver,
                batch_size=self.batch_size,
                draws_per_image=self.draws_per_image,
                fit_options={
                    "epochs": self.epochs,
                    "cap_quantile": self.cap_quantile,
                    "width": self.classifier_width,
                    "depth": self.classifier_depth,
                    "weight_decay": self.classifier_weight_decay,
                    "batch_size": self.classifier_batch_size,
                    "members": self.classifier_members,
                    "calibrate": self.calibrate,
                    "marginal_calibration": self.marginals,
                    "marginal_parameters": self.marginal_parameters,
                },
                keep_classifier=self.keep_classifier,
                progress=self.progress_bar,
                eta=self.eta,
                eta_channels=self.eta_channels,
                features=(*REFINER_FEATURES, TIME_RESIDUAL_FEATURE)
                if self.time_residual
                else REFINER_FEATURES,
                pairs=self.pairs,
                bf16=self.bf16,
                fit_seed=self.fit_seed,
            )
        except (CheckpointError, ValueError, KeyError, OSError) as err:
            raise ToolConfigurationError(str(err)) from None

    def finish(self):
        info = self.refiner.info
        if self.refiner.calibration is not None:
            fit = info["marginal_calibration"]
            self.log.info(
                "Marginal calibration of %d parameters on %d simulated vs %d generated images:"
                " largest |log(simulated / kept)| per bin %.3f -> %.3f, expected acceptance"
                " %.3f (classifier alone %.3f)",
                len(self.refiner.calibration.columns),
                fit["n_simulated"],
                fit["n_generated"],
                fit["worst_log_mismatch_before"],
                fit["worst_log_mismatch_after"],
                info["acceptance"],
                info["acceptance_uncalibrated"],
            )
        self.log.info(
            "Refiner: %d simulated vs %d generated images, held-out AUC %.3f (0.5: the model"
            " is already indistinguishable), temperature %.3f, expected acceptance %.3f;"
            " written to %s",
            info["n_simulated"],
            info["n_generated"],
            info["auc_validation"],
            info.get("temperature", 1.0),
            info["acceptance"],
            self.output,
        )


def main():
    RefineTool().run()


if __name__ == "__main__":
    main()
