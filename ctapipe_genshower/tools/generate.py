"""``ctapipe-genshower-generate``: the main job, generated protons through ctapipe's processing.

This is ``ctapipe-process`` (it subclasses ctapipe's :class:`~ctapipe.tools.process.ProcessorTool`,
so every option and the output are the same) with the input defaulting to the bundled model,
short options for the generator settings, DL1 images and parameters written by default, a
progress bar on by default, the model, the settings and the redraw counts recorded as
``CONTEXT GENSHOWER ...`` attributes of the output file, and an output that appears under its
name only when the run is complete: ctapipe's DataWriter writes to a hidden temporary file
beside the target, which is renamed onto the target in :meth:`GenerateTool.finish` after the
file has been closed, and removed when the run fails, is interrupted (Ctrl-C) or terminated
(SIGTERM, a batch system's time limit). A run killed outright (SIGKILL, the OOM killer) leaves
only that hidden ``.<name>.*.tmp.h5`` file, so resubmitting the same command works.
"""

from contextlib import ExitStack
from pathlib import Path

from ctapipe.core import Provenance, ToolConfigurationError
from ctapipe.core.traits import Bool, classes_with_traits, flag
from ctapipe.io import DataWriter
from ctapipe.tools.process import ProcessorTool
from traitlets import TraitError
from traitlets.config import Config

from ..atomic import SIGTERM_EXIT_CODE, atomic_output, exit_on_sigterm
from ..checkpoint import CheckpointError, read_metadata
from ..io.diffusion import DiffusionEventSource, default_model_path
from . import refuse_extra_arguments

__all__ = ["SIGTERM_EXIT_CODE", "GenerateTool", "main"]


_MODEL_HELP = (
    "Generator model file (*.safetensors written by ctapipe-genshower-train); "
    "default: the bundled model (ctapipe-genshower-info --model-path)"
)


class _RunIncomplete(Exception):
    """Thrown into the temporary output when the run did not finish: discard the file."""


class _FinishOnce:
    """The DataWriter in the tool's exit stack, closable once from ``finish`` before the rename.

    The writer's ``output_path`` is the temporary file again when it closes it (ctapipe's
    provenance reads the file's metadata from that path).
    """

    def __init__(self, writer, temporary):
        self.writer = writer
        self.temporary = temporary
        self.closed = False

    def __enter__(self):
        return self.writer

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        if not self.closed:
            self.closed = True
            self.writer.output_path = self.temporary
            self.writer.finish()


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
        ("i", "input"): ("EventSource.input_url", f"Same as --model. {_MODEL_HELP}"),
        "model": ("EventSource.input_url", _MODEL_HELP),
        "n-showers": "DiffusionEventSource.n_showers",
        "seed": "DiffusionEventSource.seed",
        "obs-id": "DiffusionEventSource.obs_id",
        "n-steps": "DiffusionEventSource.n_steps",
        "solver": "DiffusionEventSource.solver",
        "eta": "DiffusionEventSource.eta",
        "batch-size": "DiffusionEventSource.batch_size",
        "events-per-batch": "DiffusionEventSource.events_per_batch",
        "device": "DiffusionEventSource.device",
        "energy-min": "DiffusionEventSource.energy_min",
        "energy-max": "DiffusionEventSource.energy_max",
        "spectral-index": "DiffusionEventSource.spectral_index",
        "max-scatter-radius": "DiffusionEventSource.max_scatter_radius",
        "min-viewcone": "DiffusionEventSource.min_viewcone",
        "max-viewcone": "DiffusionEventSource.max_viewcone",
        "max-redraws": "DiffusionEventSource.max_redraws",
        "pixel-response-file": "DiffusionEventSource.pixel_response_file",
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
        **flag(
            "bf16",
            "DiffusionEventSource.bf16",
            "run the pixel network under bf16 autocast (default on CUDA)",
            "run the pixel network in float32 (default on the CPU)",
        ),
        **flag(
            "refine",
            "DiffusionEventSource.refine",
            "apply the model's refiner when it has one (default)",
            "ignore the model's refiner (the network's images as they are)",
        ),
        **flag(
            "channels-last",
            "DiffusionEventSource.channels_last",
            "channels-last memory format for the pixel network (default)",
            "the network's default memory format (images differ at float32 rounding)",
        ),
        **flag(
            "device-noise",
            "DiffusionEventSource.device_noise",
            "draw the image noise on the device (counter-based streams; default on CUDA)",
            "draw the image noise with one CPU generator per event (default on the CPU)",
        ),
        **flag(
            "compile",
            "DiffusionEventSource.compile",
            "torch.compile the pixel network (2.6x on a GPU in bf16; slower on the CPU)",
            "run the pixel network as it is (default)",
        ),
    }

    classes = list(
        dict.fromkeys([*ProcessorTool.classes, *classes_with_traits(DiffusionEventSource)])
    )

    def setup(self):
        self._finished = False
        self._writer_closer = None
        exit_on_sigterm(self._exit_stack, self.log)
        refuse_extra_arguments(self, "give the model with --model and the output with -o")
        self._check_generator_options()
        model = self._model_path()
        self._check_model(model)

        defaults = Config()
        defaults.EventSource.input_url = str(model)
        for key in ("write_dl1_images", "write_dl1_parameters"):
            defaults.DataWriter[key] = True
        defaults.merge(self.config)  # user settings win over these defaults
        self.update_config(defaults)

        self.output_path = self._check_output_path()
        self._temporary = self._open_temporary_output(self.output_path)
        self.update_config(Config({"DataWriter": {"output_path": str(self._temporary)}}))
        super().setup()
        if not isinstance(self.event_source, DiffusionEventSource):
            raise ToolConfigurationError(f"{model} is not a ctapipe-genshower model")
        # the run's configuration (provenance) names the output, not its temporary name
        self.write.output_path = self.output_path
        self.update_config(Config({"DataWriter": {"output_path": str(self.output_path)}}))
        self.write.context_metadata = {
            **self.write.context_metadata,
            **self.event_source.generation_metadata,
        }

    # -- checks before anything is generated ----------------------------------------------
    def _check_generator_options(self):
        """One-line errors naming the option for generator settings of the wrong kind."""
        options = {}
        for alias, target in self.aliases.items():
            target = target[0] if isinstance(target, tuple) else target
            options.setdefault(target, f"--{alias}")
        traits = DiffusionEventSource.class_traits(config=True)
        for section in ("DiffusionEventSource", "EventSource"):
            for name, value in self.config[section].items():
                if name not in traits or name in ("input_url", "model_path"):
                    continue
                target = f"DiffusionEventSource.{name}"
                option = options.get(target, options.get(f"EventSource.{name}", "--" + target))
                try:
                    traits[name].validate(None, value)
                except (TraitError, TypeError, ValueError) as err:
                    raise ToolConfigurationError(
                        f"Bad value {value!r} for {option} ({target}): {err}"
                    ) from None

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

    def _check_output_path(self):
        """The output file: its folder must exist, the file only with ``--overwrite``."""
        output = self.config.DataWriter.get("output_path", DataWriter.output_path.default_value)
        output = Path(output).expanduser()
        if output.is_dir():
            raise ToolConfigurationError(f"Output {output} is a directory, expected a file name")
        if not output.parent.is_dir():
            raise ToolConfigurationError(
                f"Output directory {output.parent} does not exist (create it first)"
            )
        if output.exists() and not self.config.DataWriter.get("overwrite", False):
            raise ToolConfigurationError(
                f"Output file {output} exists, use --overwrite or choose another output path"
            )
        return output

    # -- the output: a temporary file beside the target, renamed in finish ----------------
    def _open_temporary_output(self, output):
        """A free temporary name beside ``output``; discarded unless :meth:`finish` completes.

        Registered in the exit stack before the DataWriter exists, so the discard runs after
        the writer has closed the file (the stack unwinds last-in first-out).
        """
        self._output_stack = ExitStack()
        temporary = self._output_stack.enter_context(atomic_output(output))
        temporary.unlink()  # the DataWriter creates the file itself
        self._exit_stack.callback(self._discard_incomplete_output)
        self.log.debug("Writing to %s, renamed to %s at the end", temporary, output)
        return temporary

    def enter_context(self, context_manager):
        if isinstance(context_manager, DataWriter):
            # so that finish can close the file before renaming it
            self._writer_closer = _FinishOnce(context_manager, self._temporary)
            context_manager = self._writer_closer
        return super().enter_context(context_manager)

    def finish(self):
        # the redraw counts are known only now; the DataWriter writes these when it closes
        self.write.context_metadata = {
            **self.write.context_metadata,
            **self.event_source.generation_metadata,
        }
        self.write.output_path = self._temporary  # ctapipe's statistics tables append to it
        super().finish()
        self._writer_closer.close()
        self._output_stack.close()  # renames the closed temporary file onto the output
        self.write.output_path = self.output_path
        self._finished = True
        self._provenance_output(rename_to=self.output_path)
        self.log.info("Wrote %s", self.output_path)

    def _discard_incomplete_output(self):
        if self._finished:
            return
        if self._writer_closer is not None:
            self.log.error(
                "Run incomplete: %s not written, temporary file %s removed",
                self.output_path,
                self._temporary.name,
            )
        error = _RunIncomplete()
        self._output_stack.__exit__(type(error), error, None)  # removes the temporary file
        self._provenance_output(rename_to=None)

    def _provenance_output(self, rename_to):
        """The DataWriter registered the temporary file: name the output, or drop it."""
        outputs = Provenance().current_activity.output
        temporary = str(self._temporary.absolute())
        for entry in [e for e in outputs or [] if e.get("url") == temporary]:
            if rename_to is None:
                outputs.remove(entry)
            else:
                entry["url"] = str(Path(rename_to).absolute())


def main():
    """Run the tool."""
    GenerateTool().run()


if __name__ == "__main__":
    main()
