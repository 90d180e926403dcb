"""``ctapipe-genshower-generate``: the main job, generated protons through ctapipe's processing.

This is ``ctapipe-process`` (it subclasses ctapipe's :class:`~ctapipe.tools.process.ProcessorTool`,
so every option and the output are the same) with the input defaulting to the bundled model,
short options for the generator settings, DL1 images and parameters written by default, a
progress bar on by default, the model and settings recorded as ``CONTEXT GENSHOWER ...``
attributes of the output file, and no output file left behind when a run fails.
"""

from pathlib import Path

from ctapipe.core import ToolConfigurationError
from ctapipe.core.traits import Bool, classes_with_traits, flag
from ctapipe.io import DataWriter
from ctapipe.tools.process import ProcessorTool
from traitlets.config import Config

from ..checkpoint import CheckpointError, read_metadata
from ..io.diffusion import DiffusionEventSource, default_model_path

__all__ = ["GenerateTool", "main"]


class GenerateTool(ProcessorTool):
    """Generate proton events with a ctapipe-genshower model and process them with ctapipe.

    Without ``--model`` (or ``--input``) the bundled default model is used. All options of
    ``ctapipe-process`` apply; the generator settings are the ``DiffusionEventSource`` traits.
    """

    name = "ctapipe-genshower-generate"
    description = __doc__
    examples = """
    The main job with the bundled model (DL1 images and parameters, progress bar):
    > ctapipe-genshower-generate -o protons.dl1.h5 --n-showers 100000

    Another model, run 7 of a production, 16 sampler steps, parameters only:
    > ctapipe-genshower-generate --model my_model.safetensors --obs-id 7 --seed 42 \\
        --n-steps 16 --no-write-images -o run7.dl1.h5

    Equivalent plain ctapipe command:
    > ctapipe-process -i $(ctapipe-genshower-info --model-path) -o protons.dl1.h5 \\
        --write-images --write-parameters --DiffusionEventSource.n_showers=100000
    """

    progress_bar = Bool(True, help="show progress bar during generation").tag(config=True)

    aliases = {
        **ProcessorTool.aliases,
        "model": "EventSource.input_url",
        "n-showers": "DiffusionEventSource.n_showers",
        "seed": "DiffusionEventSource.seed",
        "obs-id": "DiffusionEventSource.obs_id",
        "n-steps": "DiffusionEventSource.n_steps",
        "batch-size": "DiffusionEventSource.batch_size",
        "device": "DiffusionEventSource.device",
        "energy-min": "DiffusionEventSource.energy_min",
        "energy-max": "DiffusionEventSource.energy_max",
        "spectral-index": "DiffusionEventSource.spectral_index",
        "max-scatter-radius": "DiffusionEventSource.max_scatter_radius",
        "min-viewcone": "DiffusionEventSource.min_viewcone",
        "max-viewcone": "DiffusionEventSource.max_viewcone",
    }

    flags = {
        **ProcessorTool.flags,
        **flag(
            "progress",
            "GenerateTool.progress_bar",
            "show a progress bar during generation",
            "don't show a progress bar during generation",
        ),
        **flag(
            "allow-extrapolation",
            "DiffusionEventSource.allow_extrapolation",
            "generate even outside the trained domain (recorded in the output)",
            "refuse requests outside the trained domain",
        ),
    }

    classes = list(
        dict.fromkeys([*ProcessorTool.classes, *classes_with_traits(DiffusionEventSource)])
    )

    def setup(self):
        self._failed = False
        model = self._model_path()
        self._check_model(model)

        defaults = Config()
        defaults.EventSource.input_url = str(model)
        for key in ("write_dl1_images", "write_dl1_parameters"):
            defaults.DataWriter[key] = True
        defaults.merge(self.config)  # user settings win over these defaults
        self.update_config(defaults)

        output = self.config.DataWriter.get("output_path", DataWriter.output_path.default_value)
        output = Path(output).expanduser()
        if output.exists() and not self.config.DataWriter.get("overwrite", False):
            raise ToolConfigurationError(
                f"Output file {output} exists, use --overwrite or choose another output path"
            )
        # registered before the DataWriter exists, so it runs after the writer has closed
        # the file (the exit stack unwinds last-in first-out)
        self._exit_stack.callback(self._remove_output_on_failure)

        try:
            super().setup()
            if not isinstance(self.event_source, DiffusionEventSource):
                raise ToolConfigurationError(f"{model} is not a ctapipe-genshower model")
        except BaseException:
            self._failed = True
            raise
        self.write.context_metadata = {
            **self.write.context_metadata,
            **self.event_source.generation_metadata,
        }

    def _model_path(self):
        configured = self.config.EventSource.get("input_url")
        if configured:
            return Path(configured).expanduser()
        model = default_model_path()
        if not model.is_file():
            raise ToolConfigurationError(
                f"The bundled default model is missing ({model}); pass a model with --model"
            )
        return model

    @staticmethod
    def _check_model(model):
        """Fail early with the checkpoint reader's one-line error for a bad model file."""
        try:
            read_metadata(model)
        except CheckpointError as err:
            raise ToolConfigurationError(f"Cannot use model: {err}") from None
        except OSError as err:
            raise ToolConfigurationError(f"Cannot read model {model}: {err}") from None

    def start(self):
        try:
            super().start()
        except BaseException:
            self._failed = True
            raise

    def finish(self):
        try:
            super().finish()
        except BaseException:
            self._failed = True
            raise

    def _remove_output_on_failure(self):
        writer = getattr(self, "write", None)  # None: no output file was created
        if self._failed and writer is not None:
            output = Path(writer.output_path)
            self.log.error("Run failed, removing incomplete output %s", output)
            output.unlink(missing_ok=True)


def main():
    """Run the tool."""
    GenerateTool().run()


if __name__ == "__main__":
    main()
