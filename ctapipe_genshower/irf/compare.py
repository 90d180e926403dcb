"""Compare a background IRF (e.g. from generated protons) with a reference one.

Per bin of reconstructed energy and FoV offset: ratio ``B_test / B_ref`` with its error
from the weighted counts (``sigma_B = sqrt(sum w**2)`` per sample, propagated), the
z-score ``(B_test - B_ref) / sqrt(sigma_test**2 + sigma_ref**2)`` and
``chi2 = sum z**2`` over the bins in which both samples have at least
``min_effective_events`` effective events ``(sum w)**2 / sum w**2`` (``ndf`` = that number
of bins; nothing is fitted). Also the proton effective area versus true energy, and the
plain ratio of the ``BKG_2D`` HDUs of two IRF files (:func:`background_hdu_ratio`). The
plots are in :mod:`ctapipe_genshower.irf.plots`.
"""

import json
from dataclasses import dataclass

import astropy.units as u
import numpy as np
from astropy.io import fits
from pyirf.spectral import DIFFUSE_FLUX_UNIT
from pyirf.utils import cone_solid_angle

from .background import (
    BACKGROUND_UNIT,
    background_2d_with_errors,
    read_background_2d_hdu,
    weighted_histogram,
)
from .weights import balance_heuristic_weights, merge_components

__all__ = [
    "BackgroundComparison",
    "background_hdu_ratio",
    "compare_backgrounds",
    "effective_events",
    "proton_effective_area",
]

#: Bins enter chi2 when both samples have at least this many effective events.
MIN_EFFECTIVE_EVENTS = 10


def effective_events(sum_w, sum_w2):
    """Kish effective number of events ``(sum w)**2 / sum w**2`` (0 for empty bins)."""
    sum_w, sum_w2 = np.asarray(sum_w, float), np.asarray(sum_w2, float)
    out = np.zeros_like(sum_w)
    ok = sum_w2 > 0
    out[ok] = sum_w[ok] ** 2 / sum_w2[ok]
    return out


@dataclass
class BackgroundComparison:
    """Result of ``compare_backgrounds``; rates in ``1 / (s TeV sr)``."""

    reco_energy_bins: u.Quantity
    fov_offset_bins: u.Quantity
    rate_test: u.Quantity
    error_test: u.Quantity
    rate_ref: u.Quantity
    error_ref: u.Quantity
    n_eff_test: np.ndarray
    n_eff_ref: np.ndarray
    ratio: np.ndarray
    ratio_error: np.ndarray
    z: np.ndarray
    used: np.ndarray
    chi2: float
    ndf: int
    min_effective_events: float

    @property
    def chi2_ndf(self):
        return self.chi2 / self.ndf if self.ndf > 0 else float("nan")

    def to_dict(self):
        """JSON-ready summary with per-bin values (nan written as null)."""

        def clean(a):
            a = np.asarray(a, dtype=float)
            return [[None if not np.isfinite(v) else float(v) for v in row] for row in a]

        return {
            "chi2": float(self.chi2),
            "ndf": int(self.ndf),
            "chi2_ndf": None if self.ndf == 0 else float(self.chi2_ndf),
            "min_effective_events": float(self.min_effective_events),
            "reco_energy_bins_TeV": self.reco_energy_bins.to_value(u.TeV).tolist(),
            "fov_offset_bins_deg": self.fov_offset_bins.to_value(u.deg).tolist(),
            "rate_unit": BACKGROUND_UNIT.to_string(),
            "rate_test": clean(self.rate_test.to_value(BACKGROUND_UNIT)),
            "error_test": clean(self.error_test.to_value(BACKGROUND_UNIT)),
            "rate_ref": clean(self.rate_ref.to_value(BACKGROUND_UNIT)),
            "error_ref": clean(self.error_ref.to_value(BACKGROUND_UNIT)),
            "n_eff_test": clean(self.n_eff_test),
            "n_eff_ref": clean(self.n_eff_ref),
            "ratio": clean(self.ratio),
            "ratio_error": clean(self.ratio_error),
            "z": clean(self.z),
            "used": np.asarray(self.used).astype(int).tolist(),
        }

    def to_json(self, path):
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=1)

    def to_markdown(self):
        """Markdown table of the bins with both rates > 0, and the chi2/ndf line."""
        e, o = self.reco_energy_bins.to_value(u.TeV), self.fov_offset_bins.to_value(u.deg)
        lines = [
            "| E_reco [TeV] | offset [deg] | n_eff test | n_eff ref | ratio | z | used |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for i in range(len(e) - 1):
            for j in range(len(o) - 1):
                if self.n_eff_test[i, j] == 0 and self.n_eff_ref[i, j] == 0:
                    continue
                lines.append(
                    f"| {e[i]:.3g}-{e[i + 1]:.3g} | {o[j]:.2g}-{o[j + 1]:.2g} "
                    f"| {self.n_eff_test[i, j]:.1f} | {self.n_eff_ref[i, j]:.1f} "
                    f"| {self.ratio[i, j]:.3f} ± {self.ratio_error[i, j]:.3f} "
                    f"| {self.z[i, j]:+.2f} | {'yes' if self.used[i, j] else 'no'} |"
                )
        lines.append("")
        lines.append(
            f"chi2/ndf = {self.chi2:.2f}/{self.ndf} = {self.chi2_ndf:.3f} "
            f"(bins with n_eff >= {self.min_effective_events:g} in both)"
        )
        return "\n".join(lines) + "\n"


@u.quantity_input(reco_energy_bins=u.TeV, fov_offset_bins=u.deg, obs_time=u.s)
def compare_backgrounds(
    test_events,
    ref_events,
    reco_energy_bins,
    fov_offset_bins,
    obs_time,
    min_effective_events=MIN_EFFECTIVE_EVENTS,
):
    """Compare the background rates of two weighted, selected event tables.

    Both tables need ``reco_energy``, ``reco_source_fov_offset`` and ``weight``.

    Returns
    -------
    BackgroundComparison
    """
    rates, errors, n_eff = [], [], []
    for events in (test_events, ref_events):
        rate, error, _ = background_2d_with_errors(
            events, reco_energy_bins, fov_offset_bins, obs_time
        )
        sum_w, sum_w2 = weighted_histogram(
            [events["reco_energy"], events["reco_source_fov_offset"]],
            [reco_energy_bins, fov_offset_bins],
            events["weight"],
        )
        rates.append(rate)
        errors.append(error)
        n_eff.append(effective_events(sum_w, sum_w2))

    t, r = rates[0].to_value(BACKGROUND_UNIT), rates[1].to_value(BACKGROUND_UNIT)
    st, sr = errors[0].to_value(BACKGROUND_UNIT), errors[1].to_value(BACKGROUND_UNIT)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(r > 0, t / r, np.nan)
        rel = np.sqrt(np.where(t > 0, (st / t) ** 2, 0) + (sr / r) ** 2)
        ratio_error = np.where(r > 0, np.abs(ratio) * rel, np.nan)
        sigma = np.hypot(st, sr)
        z = np.where(sigma > 0, (t - r) / sigma, np.nan)
    used = (n_eff[0] >= min_effective_events) & (n_eff[1] >= min_effective_events)
    chi2 = float(np.sum(z[used] ** 2))
    return BackgroundComparison(
        reco_energy_bins=reco_energy_bins,
        fov_offset_bins=fov_offset_bins,
        rate_test=rates[0],
        error_test=errors[0],
        rate_ref=rates[1],
        error_ref=errors[1],
        n_eff_test=n_eff[0],
        n_eff_ref=n_eff[1],
        ratio=ratio,
        ratio_error=ratio_error,
        z=z,
        used=used,
        chi2=chi2,
        ndf=int(np.count_nonzero(used)),
        min_effective_events=min_effective_events,
    )


def _flat_flux(energy):
    return np.ones(np.shape(energy)) * DIFFUSE_FLUX_UNIT


@u.quantity_input(true_energy_bins=u.TeV)
def proton_effective_area(events, components, true_energy_bins):
    """Effective area of selected protons versus true energy, averaged over the thrown FoV.

    With the balance heuristic for a flat target (``Phi = 1``, ``T = 1``), each event
    carries ``1 / sum_k n_k``; summing the selected events in a true-energy bin and dividing
    by the bin width and the solid angle of the union of the viewcones gives the effective
    area. For a single sample this is pyirf's ``A * N_selected / N_thrown`` per bin up to the
    variation of the spectrum inside the bin.

    Returns
    -------
    area, error : astropy.units.Quantity
        In m2, one value per true-energy bin.
    """
    components = merge_components(components)
    weights = balance_heuristic_weights(
        events["true_energy"],
        events["true_core_distance"],
        events["true_source_fov_offset"],
        components,
        _flat_flux,
        1 * u.s,
    )
    vc_min = min(c.thrown.min_viewcone for c in components)
    vc_max = max(c.thrown.max_viewcone for c in components)
    solid_angle = cone_solid_angle(vc_max) - cone_solid_angle(vc_min)
    if solid_angle <= 0 * u.sr:
        solid_angle = 1 * u.sr  # point-like: the weights carry no solid angle
    sum_w, sum_w2 = weighted_histogram([events["true_energy"]], [true_energy_bins], weights)
    # weights are in units of (flux unit * s)^-1 = TeV cm2 sr
    unit = (1 / (DIFFUSE_FLUX_UNIT * u.s)).unit
    norm = np.diff(true_energy_bins) * solid_angle
    area = (sum_w * unit / norm).to(u.m**2)
    error = (np.sqrt(sum_w2) * unit / norm).to(u.m**2)
    return area, error


def background_hdu_ratio(test_path, ref_path, extname="BACKGROUND"):
    """Ratio of the ``BKG_2D`` HDUs of two IRF files (e.g. two ``ctapipe-compute-irf`` outputs).

    The HDUs carry no statistical errors; use ``compare_backgrounds`` on the DL2 events
    (``ctapipe-genshower-background``) for errors, z-scores and chi2.

    Parameters
    ----------
    test_path, ref_path : path-like
        IRF FITS files.
    extname : str
        The HDU compared in both.

    Returns
    -------
    str
        A markdown table of test rate, reference rate and ratio per bin.

    Examples
    --------
    >>> from ctapipe_genshower.irf.compare import background_hdu_ratio
    >>> print(background_hdu_ratio("irf_generated.fits", "irf_simulated.fits"))  # doctest: +SKIP
    """
    with fits.open(test_path) as test, fits.open(ref_path) as ref:
        rate_t, e_bins, o_bins = read_background_2d_hdu(test[extname])
        rate_r, e_ref, o_ref = read_background_2d_hdu(ref[extname])
    if rate_t.shape != rate_r.shape or not (
        np.allclose(e_bins, e_ref) and np.allclose(o_bins, o_ref)
    ):
        raise ValueError(f"{test_path} and {ref_path} have different {extname} binnings")
    t, r = rate_t.to_value(BACKGROUND_UNIT), rate_r.to_value(BACKGROUND_UNIT)
    e, o = e_bins.to_value(u.TeV), o_bins.to_value(u.deg)
    lines = [
        f"{extname}: {test_path} / {ref_path} [{BACKGROUND_UNIT.to_string()}]",
        "",
        "| E_reco [TeV] | offset [deg] | test | reference | ratio |",
        "| --- | --- | --- | --- | --- |",
    ]
    for i in range(len(e) - 1):
        for j in range(len(o) - 1):
            if t[i, j] == 0 and r[i, j] == 0:
                continue
            ratio = t[i, j] / r[i, j] if r[i, j] > 0 else float("nan")
            lines.append(
                f"| {e[i]:.3g}-{e[i + 1]:.3g} | {o[j]:.2g}-{o[j + 1]:.2g} "
                f"| {t[i, j]:.3g} | {r[i, j]:.3g} | {ratio:.3f} |"
            )
    return "\n".join(lines) + "\n"
