"""``ctapipe-genshower-validate``: compare generated with reference DL1 images, write a report.

Both samples' stored images are cleaned and parameterised again with the same ctapipe
``ImageProcessor`` configuration and selected with the same ``ValidationSelection``; the
output folder gets ``metrics.json``, one PNG per plot and a self-contained ``report.html``.
"""

import json

from ctapipe.core import Tool, ToolConfigurationError
from ctapipe.core.traits import Bool, Int, List, classes_with_traits, flag
from ctapipe.core.traits import Path as PathTrait

from ..atomic import atomic_output, exit_on_sigterm
from ..validation.comparison import GALLERY_PAIRS, compare_samples, write_outputs
from ..validation.metrics import CLASSIFIER_FOLDS, CLASSIFIER_MAX_PER_CLASS
from ..validation.samples import DL1ValidationReader
from . import refuse_extra_arguments

__all__ = ["ValidateTool", "main"]


class ValidateTool(Tool):
    """Validate generated DL1 images against reference DL1 images (metrics, plots, HTML)."""

    name = "ctapipe-genshower-validate"
    description = __doc__
    examples = """
    > ctapipe-genshower-validate --generated gen.dl1.h5 --reference ref.dl1.h5 -o report_dir

    Several files, another telescope type of a sim_telarray reference, 10^6 images each:
    > ctapipe-genshower-validate --generated gen_*.dl1.h5 --reference ref_*.dl1.h5 \\
        --telescope-type FlashCam --max-events 1000000 -o report_dir --overwrite
    """

    generated_files = List(
        # existence and type are checked in setup (one-line error, exit code 2)
        PathTrait(),
        default_value=[],
        help="Generated DL1 files with images",
    ).tag(config=True)
    reference_files = List(
        # existence and type are checked in setup (one-line error, exit code 2)
        PathTrait(),
        default_value=[],
        help="Reference (simulated) DL1 files with images",
    ).tag(config=True)
    output_dir = PathTrait(
        None, allow_none=True, file_ok=False, help="Output folder (metrics.json, PNGs, report.html)"
    ).tag(config=True)
    seed = Int(0, help="Seed of the subsamples, the floors, the classifier and the gallery").tag(
        config=True
    )
    n_folds = Int(
        CLASSIFIER_FOLDS, help="Cross-validation folds of the classifier two-sample test"
    ).tag(config=True)
    max_classifier_events = Int(
        CLASSIFIER_MAX_PER_CLASS, help="At most this many events per class in each classifier test"
    ).tag(config=True)
    classifier_threads = Int(
        None, allow_none=True, help="Threads of the classifier (default: all cores)"
    ).tag(config=True)
    n_gallery = Int(
        GALLERY_PAIRS,
        help="Reference images shown with their nearest generated ones (twice as many random)",
    ).tag(config=True)
    low_level_classifier = Bool(
        True,
        help=(
            "Run the low-level classifier test (a small CNN on the images, torch on the CPU; "
            "about a minute for 5000 images per sample)"
        ),
    ).tag(config=True)
    progress_bar = Bool(True, help="Show progress bars").tag(config=True)

    aliases = {
        ("g", "generated"): "ValidateTool.generated_files",
        ("r", "reference"): "ValidateTool.reference_files",
        ("o", "output"): "ValidateTool.output_dir",
        "telescope-type": "DL1ValidationReader.telescope_type",
        "max-events": "DL1ValidationReader.max_events",
        "chunk-size": "DL1ValidationReader.chunk_size",
        "seed": "ValidateTool.seed",
    }
    flags = {
        **flag("progress", "ValidateTool.progress_bar", "Show progress bars", "No progress bars"),
        **flag(
            "low-level",
            "ValidateTool.low_level_classifier",
            "Run the CNN classifier test on the images",
            "Skip the CNN classifier test (quick runs)",
        ),
        "overwrite": ({"ValidateTool": {"overwrite": True}}, "Replace an existing output folder"),
    }
    classes = [DL1ValidationReader, *classes_with_traits(DL1ValidationReader)]

    def setup(self):
        exit_on_sigterm(self._exit_stack, self.log)
        refuse_extra_arguments(
            self, "files are given with --generated and --reference, the folder with -o"
        )
        if not self.generated_files:
            raise ToolConfigurationError("No generated files: give them with --generated")
        if not self.reference_files:
            raise ToolConfigurationError("No reference files: give them with --reference")
        if self.output_dir is None:
            raise ToolConfigurationError("No output folder: give one with -o/--output")
        self.check_output(self.output_dir)
        self.reader = DL1ValidationReader(parent=self, progress_bar=self.progress_bar)
        if not self.low_level_classifier:
            self.reader.max_classifier_images = 0
        try:
            self.telescope_type = self.reader.check_inputs(
                self.generated_files, self.reference_files
            )
        except (ValueError, OSError) as err:
            raise ToolConfigurationError(str(err)) from None

    def start(self):
        try:
            self.generated = self.reader.read(
                self.generated_files, name="generated", telescope_type=self.telescope_type
            )
            self.reference = self.reader.read(
                self.reference_files, name="reference", telescope_type=self.telescope_type
            )
            metrics = compare_samples(
                self.generated,
                self.reference,
                seed=self.seed,
                n_folds=self.n_folds,
                max_per_class=self.max_classifier_events,
                n_threads=self.classifier_threads,
                progress=self.progress_bar,
                low_level=self.low_level_classifier,
            )
        except ValueError as err:
            raise ToolConfigurationError(str(err)) from None
        for warning in metrics["warnings"]:
            self.log.warning(warning)
        metrics["selection"] = [list(c) for c in self.reader.selection.quality_criteria]
        metrics["image_processor"] = self._image_processor_config()
        metrics["max_events"] = self.reader.max_events
        self.metrics = metrics

        with atomic_output(self.output_dir, directory=True) as tmp:
            write_outputs(
                self.generated,
                self.reference,
                metrics,
                tmp,
                seed=self.seed,
                n_gallery=self.n_gallery,
                progress=self.progress_bar,
            )

    def finish(self):
        overall = self.metrics["classifier"]["overall"]
        conditional = self.metrics["classifier_conditional"]["overall"]
        low = self.metrics.get("classifier_low_level")
        self.log.info(
            "Classifier AUC %s (%d events per class), conditional %s, low-level %s; report: %s",
            _auc(overall),
            overall["n_per_class"],
            _auc(conditional),
            "skipped" if low is None else f"{_auc(low)} ({low['n_folds']} folds)",
            self.output_dir / "report.html",
        )

    def _image_processor_config(self):
        config = self.config.get("ImageProcessor", {})
        return json.loads(json.dumps(config, default=str)) if config else "ctapipe defaults"


def _auc(result):
    auc, error = result.get("auc"), result.get("auc_error")
    return "-" if auc is None else f"{auc:.3f} +- {error:.3f}"


def main():
    ValidateTool().run()


if __name__ == "__main__":
    main()
