"""``ctapipe-genshower-background``: background IRFs from (generated and/or simulated) protons.

Reads proton DL2 files, mixes samples with different simulation settings with the
balance heuristic, applies the G/H cuts of ``ctapipe-optimize-event-selection``, writes
GADF 2D and 3D background HDUs and, with ``--reference``, compares against a reference
proton sample (ratio, z-scores, chi2/ndf, proton effective areas; JSON, markdown, plot).
"""

import os
import tempfile
from pathlib import Path

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
from pyirf.io import create_aeff2d_hdu
from tqdm.auto import tqdm

from ..irf.background import background_2d as pyirf_background_2d
from ..irf.background import (
    background_3d,
    create_background_2d_hdu,
    create_background_3d_hdu,
)
from ..irf.compare import compare_backgrounds, plot_comparison, proton_effective_area
from ..irf.samples import (
    DL2SampleReader,
    check_pointing,
    check_support,
    combine_samples,
    select_gh,
)
from ..irf.weights import TARGET_SPECTRA, balance_heuristic_weights

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

    input_files = List(
        PathTrait(exists=True, directory_ok=False),
        help="Proton DL2 files of the sample under study (mixed with the balance heuristic)",
    ).tag(config=True)
    reference_files = List(
        PathTrait(exists=True, directory_ok=False),
        default_value=[],
        help="Reference proton DL2 files (e.g. simulated protons) to compare with",
    ).tag(config=True)
    cuts_file = PathTrait(
        None,
        allow_none=True,
        exists=True,
        directory_ok=False,
        help="G/H cuts and quality criteria from ctapipe-optimize-event-selection",
    ).tag(config=True)
    output_path = PathTrait(directory_ok=False, help="Output FITS file").tag(config=True)
    plot_path = PathTrait(None, allow_none=True, directory_ok=False, help="Comparison plot").tag(
        config=True
    )
    summary_path = PathTrait(
        None,
        allow_none=True,
        directory_ok=False,
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
        10.0, help="Bins enter chi2 when both samples have this many effective events"
    ).tag(config=True)

    aliases = {
        ("i", "input"): "BackgroundTool.input_files",
        "reference": "BackgroundTool.reference_files",
        "cuts": "BackgroundTool.cuts_file",
        ("o", "output"): "BackgroundTool.output_path",
        "plot": "BackgroundTool.plot_path",
        "summary": "BackgroundTool.summary_path",
        "target-spectrum": "BackgroundTool.target_spectrum",
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
        if not self.input_files:
            raise ToolConfigurationError("No input files: give at least one with -i/--input")
        if self.output_path is None:
            raise ToolConfigurationError("No output file: give one with -o/--output")
        for path in (self.output_path, self.plot_path, self.summary_path):
            if path is not None and path.exists() and not self.overwrite:
                raise ToolConfigurationError(f"Output {path} exists, use --overwrite")
        if (self.plot_path or self.summary_path) and not self.reference_files:
            raise ToolConfigurationError("--plot/--summary need --reference files to compare with")
        self.reader = DL2SampleReader(parent=self)
        self.cuts = None
        if self.cuts_file is not None:
            self.cuts = OptimizationResult.read(self.cuts_file)
            if self.reader.preprocessor.gammaness_classifier != self.cuts.clf_prefix:
                raise ToolConfigurationError(
                    f"G/H cuts were made for classifier {self.cuts.clf_prefix!r}, but "
                    f"DL2EventPreprocessor.gammaness_classifier is "
                    f"{self.reader.preprocessor.gammaness_classifier!r}"
                )
            self.reader.set_quality_criteria(self.cuts.quality_query.quality_criteria)
        self.binning = BackgroundRate2dMaker(parent=self)
        self.aeff_binning = EffectiveArea2dMaker(parent=self)
        n = self.fov_lonlat_n_bins
        self.fov_lonlat_bins = np.linspace(-self.fov_lonlat_max, self.fov_lonlat_max, n + 1)

    def _load(self, files, label):
        samples = []
        for path in tqdm(files, desc=f"reading {label}", disable=not self.progress_bar):
            try:
                sample = self.reader.read(path)
            except (ValueError, FileNotFoundError) as err:
                raise ToolConfigurationError(str(err)) from None
            e_bins = self.binning.reco_energy_bins
            check_support(sample, (e_bins[0], e_bins[-1]), self.binning.fov_offset_bins[-1])
            samples.append(sample)
        try:
            events, components = combine_samples(samples)
        except ValueError as err:
            raise ToolConfigurationError(str(err)) from None
        target = TARGET_SPECTRA[self.target_spectrum]
        events["weight"] = balance_heuristic_weights(
            events["true_energy"],
            events["true_core_distance"],
            events["true_source_fov_offset"],
            components,
            target,
            self.obs_time,
        )
        outside = np.count_nonzero(events["weight"] == 0)
        if outside:
            self.log.warning(
                "%s: %d of %d events lie outside every sample's thrown support (weight 0)",
                label,
                outside,
                len(events),
            )
        if self.cuts is not None:
            events = events[select_gh(events, self.cuts.gh_cuts)]
        self.log.info(
            "%s: %d selected events from %d samples, %d simulation settings",
            label,
            len(events),
            len(samples),
            len(components),
        )
        return events, components, samples

    def start(self):
        self.events, self.components, self.samples = self._load(self.input_files, "input")
        self.reference = None
        if self.reference_files:
            self.reference = self._load(self.reference_files, "reference")
            first, ref = self.samples[0], self.reference[2][0]
            try:
                check_pointing(
                    [(first.pointing_alt, first.pointing_az), (ref.pointing_alt, ref.pointing_az)],
                    [first.name, ref.name],
                    self.reader.pointing_tolerance * u.deg,
                )
            except ValueError as err:
                raise ToolConfigurationError(f"Input and reference: {err}") from None
        self.hdus = self._make_hdus()

    def _make_hdus(self):
        e_bins = self.binning.reco_energy_bins
        o_bins = self.binning.fov_offset_bins
        hdus = [fits.PrimaryHDU()]
        sets = [("", self.events, self.components)]
        if self.reference is not None:
            sets.append((" REFERENCE", self.reference[0], self.reference[1]))
        for suffix, events, components in sets:
            rate = pyirf_background_2d(events, e_bins, o_bins, self.obs_time)
            hdus.append(
                create_background_2d_hdu(rate, e_bins, o_bins, extname="BACKGROUND" + suffix)
            )
            rate3 = background_3d(
                events, e_bins, self.fov_lonlat_bins, self.fov_lonlat_bins, self.obs_time
            )
            hdus.append(
                create_background_3d_hdu(
                    rate3,
                    e_bins,
                    self.fov_lonlat_bins,
                    self.fov_lonlat_bins,
                    extname="BACKGROUND_3D" + suffix,
                )
            )
            area, _ = proton_effective_area(events, components, self.aeff_binning.true_energy_bins)
            hdus.append(
                create_aeff2d_hdu(
                    area[:, np.newaxis],
                    self.aeff_binning.true_energy_bins,
                    u.Quantity([0 * u.deg, max(c.thrown.max_viewcone for c in components)]),
                    extname="EFFECTIVE AREA PROTONS" + suffix,
                    point_like=False,
                )
            )
        return hdus

    def finish(self):
        _write_atomic(self.output_path, lambda p: fits.HDUList(self.hdus).writeto(p))
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
            _write_atomic(self.summary_path, comparison.to_json)
            md = self.summary_path.with_suffix(".md")
            _write_atomic(md, lambda p: Path(p).write_text(comparison.to_markdown()))
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
            _write_atomic(
                self.plot_path,
                lambda p: plot_comparison(
                    comparison, p, labels=("input", "reference"), effective_areas=areas
                ),
            )
            Provenance().add_output_file(
                self.plot_path, role="background comparison plot", add_meta=False
            )


def _write_atomic(path, write):
    """Write via a temporary file in the same directory, then rename (no partial outputs)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.stem}.", suffix="".join(path.suffixes)
    )
    os.close(fd)
    try:
        os.unlink(tmp)
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def main():
    BackgroundTool().run()


if __name__ == "__main__":
    main()
