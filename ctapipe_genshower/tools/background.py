"""``ctapipe-genshower-background``: background IRFs from (generated and/or simulated) protons.

Reads proton DL2 files, mixes samples with different simulation settings with the
balance heuristic, applies the G/H cuts of ``ctapipe-optimize-event-selection``, writes
GADF 2D and 3D background HDUs and, with ``--reference``, compares against a reference
proton sample (ratio, z-scores, chi2/ndf, proton effective areas; JSON, markdown, plot).
Warns about sparse tables (empty and low-statistics bins) and can smooth them over the FoV.
"""

import os

import astropy.units as u
import numpy as np
from astropy.io import fits
from ctapipe.core import Provenance, Tool, ToolConfigurationError
from ctapipe.core.traits import (
    AstroQuantity,
    Bool,
    CaselessStrEnum,
    Float,
    Integer,
    List,
    classes_with_traits,
    flag,
)
from ctapipe.core.traits import Path as PathTrait
from ctapipe.irf.irfs import BackgroundRate2dMaker, EffectiveArea2dMaker
from ctapipe.irf.optimize import OptimizationResult

from ..atomic import atomic_output
from ..irf.background import OCCUPANCY_QUANTILE, bin_occupancy
from ..irf.compare import MIN_EFFECTIVE_EVENTS, compare_backgrounds, proton_effective_area
from ..irf.pipeline import background_hdus, read_samples, table_counts, weight_and_select
from ..irf.plots import plot_comparison
from ..irf.samples import (
    DL2SampleReader,
    check_dl2_file,
    check_pointing,
    combine_samples,
    selection_mismatch,
)
from ..irf.weights import TARGET_SPECTRA
from . import refuse_extra_arguments

__all__ = ["BackgroundTool", "main"]


class BackgroundTool(Tool):
    """Background IRFs from proton DL2 files, with mixing of samples and comparison."""

    name = "ctapipe-genshower-background"
    description = __doc__
    examples = """
    ctapipe-genshower-background -i generated.dl2.h5 --reference simulated.dl2.h5 \\
        --cuts cuts.fits --config irf.yaml -o background.fits.gz \\
        --plot background.png --summary background.json
    """

    # no ``exists=True``: a missing file would be a TraitError at parse time (exit 1 and a
    # traitlets message); ``setup`` checks the files instead (exit 2, one line)
    input_files = List(
        PathTrait(),
        help="Proton DL2 files of the sample under study (mixed with the balance heuristic)",
    ).tag(config=True)
    reference_files = List(
        PathTrait(),
        default_value=[],
        help="Reference proton DL2 files (e.g. simulated protons) to compare with",
    ).tag(config=True)
    cuts_file = PathTrait(
        None,
        allow_none=True,
        help="G/H cuts and quality criteria from ctapipe-optimize-event-selection",
    ).tag(config=True)
    # outputs likewise: ``setup`` refuses directories and missing or read-only parents
    output_path = PathTrait(help="Output FITS file").tag(config=True)
    plot_path = PathTrait(None, allow_none=True, help="Comparison plot").tag(config=True)
    summary_path = PathTrait(
        None,
        allow_none=True,
        help="Comparison summary JSON (a markdown table is written beside it, .md)",
    ).tag(config=True)
    target_spectrum = CaselessStrEnum(
        list(TARGET_SPECTRA), default_value="IRFDOC_PROTON_SPECTRUM", help="Proton target spectrum"
    ).tag(config=True)
    obs_time = AstroQuantity(
        default_value=u.Quantity(50, u.hour),
        physical_type=u.physical.time,
        help="Observation time the rates are normalised to",
    ).tag(config=True)
    fov_lonlat_max = AstroQuantity(
        default_value=u.Quantity(5, u.deg),
        physical_type=u.physical.angle,
        help="Half width of the 3D background's lon/lat grid",
    ).tag(config=True)
    fov_lonlat_n_bins = Integer(10, help="Bins per axis of the 3D background").tag(config=True)
    progress_bar = Bool(True, help="Show a progress bar while reading").tag(config=True)
    min_effective_events = Float(
        MIN_EFFECTIVE_EVENTS,
        help="Bins enter chi2 when both samples have this many effective events",
    ).tag(config=True)
    min_events_per_bin = Integer(
        10,
        min=1,
        help="Warn about background table bins with fewer raw events than this",
    ).tag(config=True)
    fov_smoothing = AstroQuantity(
        default_value=u.Quantity(0, u.deg),
        physical_type=u.physical.angle,
        help=(
            "Gaussian sigma with which the rate of every FoV bin (offset; lon and lat) is "
            "shared with its neighbours, per reco-energy bin, keeping each energy bin's total; "
            "0: none. Applies to the written background HDUs; the comparison statistics "
            "always use the unsmoothed rates"
        ),
    ).tag(config=True)

    aliases = {
        ("i", "input"): "BackgroundTool.input_files",
        "reference": "BackgroundTool.reference_files",
        "cuts": "BackgroundTool.cuts_file",
        ("o", "output"): "BackgroundTool.output_path",
        "plot": "BackgroundTool.plot_path",
        "summary": "BackgroundTool.summary_path",
        "target-spectrum": "BackgroundTool.target_spectrum",
        "fov-smoothing": "BackgroundTool.fov_smoothing",
    }

    flags = {
        **flag(
            "progress",
            "BackgroundTool.progress_bar",
            "Show a progress bar",
            "Do not show a progress bar",
        ),
    }

    classes = [
        DL2SampleReader,
        BackgroundRate2dMaker,
        EffectiveArea2dMaker,
        *classes_with_traits(DL2SampleReader),
    ]

    def setup(self):
        refuse_extra_arguments(self, "files are given with -i/--input, the output with -o")
        if not self.input_files:
            raise ToolConfigurationError("No input files: give at least one with -i/--input")
        if self.output_path is None:
            raise ToolConfigurationError("No output file: give one with -o/--output")
        outputs = [self.output_path, self.plot_path, self.summary_path]
        if self.summary_path is not None:
            outputs.append(self.summary_path.with_suffix(".md"))
        self.check_output(*outputs)
        _check_output_directories(outputs)
        if (self.plot_path or self.summary_path) and not self.reference_files:
            raise ToolConfigurationError("--plot/--summary need --reference files to compare with")
        if self.fov_smoothing < 0 * u.deg:
            raise ToolConfigurationError(f"fov_smoothing must be >= 0, got {self.fov_smoothing}")
        self.reader = DL2SampleReader(parent=self)
        self.cuts = None
        if self.cuts_file is not None:
            self.cuts = _read_cuts(self.cuts_file)
            if self.reader.preprocessor.gammaness_classifier != self.cuts.clf_prefix:
                raise ToolConfigurationError(
                    f"G/H cuts were made for classifier {self.cuts.clf_prefix!r}, but "
                    f"DL2EventPreprocessor.gammaness_classifier is "
                    f"{self.reader.preprocessor.gammaness_classifier!r}"
                )
            self.reader.set_quality_criteria(self.cuts.quality_query.quality_criteria)
        for path in [*self.input_files, *self.reference_files]:
            try:
                check_dl2_file(path, self.reader.preprocessor)
            except (ValueError, OSError) as err:
                raise ToolConfigurationError(str(err)) from None
        self.binning = BackgroundRate2dMaker(parent=self)
        self.aeff_binning = EffectiveArea2dMaker(parent=self)
        n = self.fov_lonlat_n_bins
        self.fov_lonlat_bins = np.linspace(-self.fov_lonlat_max, self.fov_lonlat_max, n + 1)

    def start(self):
        self.events, self.components, self.samples = self._load(self.input_files, "input")
        self.reference = None
        if self.reference_files:
            self.reference = self._load(self.reference_files, "reference")
            # samples within each set were checked when mixed; the two sets not yet
            first, ref = self.samples[0], self.reference[2][0]
            try:
                check_pointing(
                    [(first.pointing_alt, first.pointing_az), (ref.pointing_alt, ref.pointing_az)],
                    [first.name, ref.name],
                    self.reader.pointing_tolerance * u.deg,
                )
            except ValueError as err:
                raise ToolConfigurationError(f"Input and reference: {err}") from None
            mismatch = selection_mismatch(
                np.concatenate([s.image_sizes for s in self.samples]),
                np.concatenate([s.image_sizes for s in self.reference[2]]),
            )
            if mismatch:
                self.log.warning(mismatch)
        bins = (
            self.binning.reco_energy_bins,
            self.binning.fov_offset_bins,
            self.fov_lonlat_bins,
            self.aeff_binning.true_energy_bins,
            self.obs_time,
        )
        smoothing = dict(fov_smoothing=self.fov_smoothing)
        self.occupancy = {}  # table name -> bin_occupancy
        self.hdus = [fits.PrimaryHDU()]
        self.hdus += background_hdus(self.events, self.components, *bins, **smoothing)
        self._warn_sparse(self.events, "")
        if self.reference is not None:
            events, components, _ = self.reference
            self.hdus += background_hdus(
                events, components, *bins, suffix=" REFERENCE", **smoothing
            )
            self._warn_sparse(events, " REFERENCE")

    def _warn_sparse(self, events, suffix):
        """One warning per background table with empty or low-statistics bins."""
        b = self.binning
        counts = table_counts(events, b.reco_energy_bins, b.fov_offset_bins, self.fov_lonlat_bins)
        for name, n_events in counts.items():
            occ = bin_occupancy(n_events, self.min_events_per_bin)
            self.occupancy[name + suffix] = occ
            if occ["n_empty"] == 0 and occ["n_low"] == 0:
                continue
            if occ["n_empty"] == occ["n_bins"]:
                self.log.warning(
                    "%s: all %d bins are empty: no selected event in the table's range",
                    name + suffix,
                    occ["n_bins"],
                )
                continue
            self.log.warning(
                "%s: %d of %d bins (%.0f %%) are empty and %d have fewer than %d events "
                "(before any smoothing); %d events in %.0f %% of the non-empty bins need at "
                "least ~%.3g times these statistics. gammapy interpolates such tables badly "
                "between bin centres: coarsen the binning or set --fov-smoothing (docs/irf.md, "
                "'Sparse background tables')",
                name + suffix,
                occ["n_empty"],
                occ["n_bins"],
                100 * occ["n_empty"] / occ["n_bins"],
                occ["n_low"],
                self.min_events_per_bin,
                self.min_events_per_bin,
                100 * OCCUPANCY_QUANTILE,
                occ["scale"],
            )

    def _load(self, files, label):
        """Read, mix and weight one set of files; apply the cuts."""
        try:
            samples = read_samples(
                self.reader,
                files,
                self.binning.reco_energy_bins,
                self.binning.fov_offset_bins,
                label=label,
                progress=self.progress_bar,
            )
            events, components = combine_samples(
                samples, pointing_tolerance=self.reader.pointing_tolerance * u.deg
            )
        except (ValueError, OSError) as err:
            raise ToolConfigurationError(str(err)) from None
        n_events = len(events)
        try:
            events, outside = weight_and_select(
                events,
                components,
                TARGET_SPECTRA[self.target_spectrum],
                self.obs_time,
                gh_cuts=None if self.cuts is None else self.cuts.gh_cuts,
            )
        except ValueError as err:  # point-like mixed with diffuse, target spectrum unit
            raise ToolConfigurationError(f"{label}: {err}") from None
        if outside:
            self.log.warning(
                "%s: %d of %d events lie outside every sample's thrown support (weight 0)",
                label,
                outside,
                n_events,
            )
        self.log.info(
            "%s: %d selected events from %d samples, %d simulation settings",
            label,
            len(events),
            len(samples),
            len(components),
        )
        return events, components, samples

    def finish(self):
        with atomic_output(self.output_path) as tmp:
            fits.HDUList(self.hdus).writeto(tmp, overwrite=True)
        Provenance().add_output_file(self.output_path, role="IRF")
        if self.reference is None:
            return
        comparison = compare_backgrounds(
            self.events,
            self.reference[0],
            self.binning.reco_energy_bins,
            self.binning.fov_offset_bins,
            self.obs_time,
            self.min_effective_events,
        )
        self.comparison = comparison
        self.log.info(
            "chi2/ndf = %.2f/%d = %.3f", comparison.chi2, comparison.ndf, comparison.chi2_ndf
        )
        if self.summary_path is not None:
            with atomic_output(self.summary_path) as tmp:
                comparison.to_json(tmp)
            with atomic_output(self.summary_path.with_suffix(".md")) as tmp:
                tmp.write_text(comparison.to_markdown())
            Provenance().add_output_file(
                self.summary_path, role="background comparison", add_meta=False
            )
        if self.plot_path is not None:
            t_bins = self.aeff_binning.true_energy_bins
            areas = (
                t_bins,
                proton_effective_area(self.events, self.components, t_bins),
                proton_effective_area(self.reference[0], self.reference[1], t_bins),
            )
            with atomic_output(self.plot_path) as tmp:
                plot_comparison(
                    comparison, tmp, labels=("input", "reference"), effective_areas=areas
                )
            Provenance().add_output_file(
                self.plot_path, role="background comparison plot", add_meta=False
            )


def _check_output_directories(paths):
    """Every output must go into an existing, writable directory (checked before any work)."""
    for path in paths:
        if path is None:
            continue
        if path.is_dir():
            raise ToolConfigurationError(f"Output {path} is a directory, expected a file name")
        parent = path.absolute().parent
        if not parent.is_dir():
            raise ToolConfigurationError(f"Output directory {parent} of {path} does not exist")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise ToolConfigurationError(f"Output directory {parent} of {path} is not writable")


def _read_cuts(path):
    """``OptimizationResult.read`` with a one-line error for a missing or unreadable file."""
    if not path.is_file():
        raise ToolConfigurationError(f"Cuts file {path}: no such file")
    try:
        return OptimizationResult.read(path)
    except (OSError, KeyError, ValueError, TypeError) as err:
        raise ToolConfigurationError(
            f"Cuts file {path}: not a ctapipe-optimize-event-selection output ({err})"
        ) from None


def main():
    BackgroundTool().run()


if __name__ == "__main__":
    main()
