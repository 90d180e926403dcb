"""``ctapipe-genshower-info``: version, bundled model path and a model's card.

Reads only the checkpoint header (standard library), so it is fast and needs no torch.
``--model-path`` prints nothing but the bundled model's path, for use in shell commands::

    ctapipe-process -i $(ctapipe-genshower-info --model-path) -o protons.dl1.h5
"""

import json
from pathlib import Path

from ctapipe.core import Tool, ToolConfigurationError
from ctapipe.core.traits import Bool, flag
from ctapipe.core.traits import Path as PathTrait

from .._version import __version__
from ..checkpoint import CheckpointError, file_sha256, parameter_counts, read_metadata
from ..io.diffusion import default_model_path
from . import refuse_extra_arguments

__all__ = ["InfoTool", "main", "model_card"]


#: How a refiner's generated images got their sizes (``refiner.info["sizes"]``).
_REFINER_SIZES = {
    "simulated": "at the simulated images' sizes",
    None: "sizes drawn by the model: fitted before the size rule, refit it",
}

#: How a refiner's trigonometric features read angle columns (``refiner["angles"]``).
_REFINER_ANGLES = {
    "degrees": "angles in degrees",
    "unconverted": "hillas_phi/psi read in rad as degrees: fitted before the angle fix, refit it",
}


def _quantity(value):
    """``{"value": v, "unit": u}`` (``ThrownDistribution.to_dict``) as text."""
    if isinstance(value, dict) and "value" in value:
        return f"{value['value']:g} {value.get('unit', '')}".strip()
    return str(value)


def _scalars(mapping, indent="    "):
    """Lines ``key: value`` for the scalar (or short) entries of a dict."""
    lines = []
    for key, value in mapping.items():
        if isinstance(value, dict | list) and len(json.dumps(value)) > 100:
            continue
        lines.append(f"{indent}{key}: {value if not isinstance(value, dict) else _quantity(value)}")
    return lines


def model_card(path):
    """A human-readable summary of a model file's metadata (no weights are loaded).

    Parameters
    ----------
    path : str or pathlib.Path
        A ctapipe-genshower checkpoint.

    Returns
    -------
    str
    """
    path = Path(path)
    meta = read_metadata(path)
    n_parameters = parameter_counts(path)
    training = meta.get("training_meta") or {}
    lines = [
        f"model: {path.resolve()}",
        f"  format: {meta['format']} version {meta['format_version']}",
        f"  size: {path.stat().st_size / 1e6:.2f} MB, sha256: {file_sha256(path)}",
        "  parameters: " + ", ".join(f"{k} {v:,}" for k, v in sorted(n_parameters.items())),
        f"  telescope: {training.get('telescope_type', '?')},"
        f" camera {training.get('camera_name', '?')} ({training.get('n_pixels', '?')} pixels)",
        f"  training data: {training.get('n_selected', '?')} selected images"
        f" of {training.get('n_thrown', '?')} thrown showers,"
        f" {len(training.get('input_files', []))} input file(s)",
    ]
    model_config = (meta.get("config") or {}).get("model") or {}
    if model_config.get("distilled_steps"):
        lines.append(
            f"  sampler: distilled student, DDIM at exactly {model_config['distilled_steps']}"
            " steps (no other solver or step count)"
        )
    elif "default_n_steps" in model_config:
        lines.append(f"  sampler: DDIM, default n_steps {model_config['default_n_steps']}")
    if any(model_config.get("default_eta") or ()):
        channels = model_config.get("eta_channels") or []
        named = ", ".join(("charge", "peak time")[c] for c in channels) or "all channels"
        lines.append(
            f"  sampler's eta per step: {model_config['default_eta']} on {named}"
            " (stochastic; docs/sampling.md)"
        )
    if model_config.get("pixel_response"):
        response = (meta.get("transforms") or {}).get("response") or {}
        n_bins = len(response.get("bin_edges", []))
        lines.append(
            "  images: the network generates the signal (true p.e., signal times); DL1 charge"
            f" and noise times from the learned pixel response ({n_bins} true-p.e. bins)"
        )
    night_sky = (meta.get("transforms") or {}).get("night_sky")
    if night_sky:
        n_bins = len(night_sky["bin_upper"])
        lines.append(
            f"  night-sky times: pixels at or below {night_sky['charge']:g} p.e. get peak times"
            f" drawn from tables of {sum(night_sky.get('n_pixels_fitted') or [])} training"
            f" pixels in {n_bins} charge bin{'s' if n_bins > 1 else ''}, not from the network"
            f" (its training target there: {night_sky.get('target', 'centre')})"
        )
    time = (meta.get("transforms") or {}).get("time") or {}
    if time.get("softening") is not None:
        lines.append(
            f"  peak times: {model_config.get('time_transform', 'asinh')} transform around"
            f" {time['center']:.2f} ns (softening {time['softening']:.2f} ns, docs/model.md)"
        )
    selection = training.get("selection") or []
    if selection:
        lines.append("  selection: " + ", ".join(f"{name}: {expr}" for name, expr in selection))
    refiner = (meta.get("refiner") or {}).get("info")
    if refiner is not None:
        sampling = refiner.get("sampling", {})
        sizes = refiner.get("sizes")
        angles = meta["refiner"].get("angles", "unconverted")
        members = meta["refiner"].get("members", 1)
        ensemble = (
            f"the mean log-odds of {members} classifiers, "
            if isinstance(members, int) and members > 1
            else ""
        )
        lines.append(
            f"  refiner: {ensemble}fitted on {refiner.get('n_simulated')} simulated vs"
            f" {refiner.get('n_generated')} generated images ({sampling.get('solver')},"
            f" {sampling.get('n_steps')} steps{', bf16' if sampling.get('bf16') else ''},"
            f" {_REFINER_SIZES.get(sizes, sizes)},"
            f" {_REFINER_ANGLES.get(angles, angles)}),"
            " held-out AUC"
            f" {refiner.get('auc_validation', 0):.3f},"
            f" temperature {meta['refiner'].get('temperature', 1.0):.3f};"
            f" cap quantile {refiner.get('cap_quantile')}, expected acceptance"
            f" {refiner.get('acceptance', 0):.3f} (docs/refiner.md)"
        )
        calibration = meta["refiner"].get("calibration")
        if calibration:
            fit = calibration.get("info", {})
            names = [name for name, *_ in meta["refiner"].get("features", [])]
            calibrated = list(dict.fromkeys(names[k] for k in calibration["columns"]))
            if len(calibrated) < len(set(names)):
                calibrated = f"{', '.join(calibrated)} ({len(calibrated)} parameters)"
            else:
                calibrated = f"{len(calibrated)} parameters"
            lines.append(
                f"  refiner's marginal calibration: {calibrated},"
                f" fitted on {fit.get('n_simulated')} simulated vs {fit.get('n_generated')}"
                " generated images (largest |log(simulated / kept)| per bin"
                f" {fit.get('worst_log_mismatch_before', 0):.3f} ->"
                f" {fit.get('worst_log_mismatch_after', 0):.3f})"
            )
    thrown = training.get("thrown") or {}
    if thrown:
        lines.append("  thrown distribution (defaults of DiffusionEventSource):")
        lines.extend(f"    {key}: {_quantity(value)}" for key, value in thrown.items())
    domain = meta.get("domain") or {}
    if domain:
        lines.append("  trained domain:")
        for key, value in domain.items():
            if isinstance(value, list | tuple) and len(value) == 2:
                lines.append(f"    {key}: {value[0]:.4g} .. {value[1]:.4g}")
            else:
                lines.append(f"    {key}: {value}")
    for section in ("config", "provenance"):
        entries = _scalars(meta.get(section) or {})
        if entries:
            lines.append(f"  {section}:")
            lines.extend(entries)
    return "\n".join(lines)


class InfoTool(Tool):
    """Print the ctapipe-genshower version, the bundled model's path and a model card."""

    name = "ctapipe-genshower-info"
    description = __doc__
    examples = """
    > ctapipe-genshower-info
    > ctapipe-genshower-info --model-path
    > ctapipe-genshower-info --model my_model.safetensors
    > ctapipe-genshower-info my_model.safetensors
    """

    model = PathTrait(
        default_value=None,
        allow_none=True,
        directory_ok=False,
        help="Model whose card to print (default: the bundled model)",
    ).tag(config=True)
    only_model_path = Bool(
        False, help="Print only the path of the bundled model (or of --model)"
    ).tag(config=True)

    aliases = {"model": "InfoTool.model"}
    flags = {
        **flag(
            "model-path",
            "InfoTool.only_model_path",
            "print only the model path",
            "print version and model card",
        ),
    }

    def setup(self):
        # "ctapipe-genshower-info model.safetensors" means --model
        if len(self.extra_args) == 1 and self.model is None:
            self.model = self.extra_args.pop()
        refuse_extra_arguments(self, "give one model, with --model or alone")
        self.model_file = Path(self.model) if self.model is not None else default_model_path()

    def start(self):
        if self.only_model_path:
            print(self.model_file)
            return
        print(f"ctapipe-genshower {__version__}")
        print(f"bundled model: {default_model_path()}")
        if not self.model_file.is_file():
            if self.model is not None:
                raise ToolConfigurationError(f"Model file not found: {self.model_file}")
            print("  (not present in this installation; pass a model with --model)")
            return
        try:
            print(model_card(self.model_file))
        except CheckpointError as err:
            raise ToolConfigurationError(f"Cannot read model: {err}") from None

    def write_provenance(self):
        """Nothing to record: this tool reads a header and prints."""


def main():
    """Run the tool."""
    InfoTool().run()


if __name__ == "__main__":
    main()
