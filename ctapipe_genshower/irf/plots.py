"""Plots of the background comparison (matplotlib, imported when a plot is made)."""

import astropy.units as u
import numpy as np

from .background import BACKGROUND_UNIT

__all__ = ["plot_comparison"]


def _log_safe_errors(value, error):
    """Asymmetric error bars whose lower end stays positive on a log axis."""
    return np.array([np.minimum(error, 0.95 * value), error])


def _set_log_y(ax):
    """Log y axis if anything positive was drawn (an empty log axis cannot be saved)."""
    if any(np.any(np.asarray(line.get_ydata()) > 0) for line in ax.get_lines()):
        ax.set_yscale("log")


def plot_comparison(comparison, path, labels=("test", "reference"), effective_areas=None):
    """Plot rates, ratio per FoV offset bin and (optionally) the proton effective areas.

    Parameters
    ----------
    comparison : BackgroundComparison
    path : path-like
        Output image.
    labels : tuple of str
    effective_areas : tuple, optional
        ``(true_energy_bins, (area_test, err_test), (area_ref, err_ref))``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_panels = 3 if effective_areas is not None else 2
    fig, axes = plt.subplots(1, n_panels, figsize=(5 * n_panels, 4.2), constrained_layout=True)
    e_bins = comparison.reco_energy_bins.to_value(u.TeV)
    e_center = np.sqrt(e_bins[:-1] * e_bins[1:])
    o_bins = comparison.fov_offset_bins.to_value(u.deg)
    for j in range(len(o_bins) - 1):
        label = f"{o_bins[j]:.1f}-{o_bins[j + 1]:.1f} deg"
        (line,) = axes[0].plot([], [])
        color = line.get_color()
        for rate, err, style, name in (
            (comparison.rate_test, comparison.error_test, "o", labels[0]),
            (comparison.rate_ref, comparison.error_ref, "s", labels[1]),
        ):
            ok = rate[:, j].value > 0
            value = rate[ok, j].to_value(BACKGROUND_UNIT)
            axes[0].errorbar(
                e_center[ok],
                value,
                yerr=_log_safe_errors(value, err[ok, j].to_value(BACKGROUND_UNIT)),
                fmt=style,
                color=color,
                mfc="none" if style == "s" else color,
                label=f"{name}, {label}",
            )
        ok = np.isfinite(comparison.ratio[:, j])
        axes[1].errorbar(
            e_center[ok] * (1 + 0.03 * j),
            comparison.ratio[ok, j],
            yerr=comparison.ratio_error[ok, j],
            fmt="o",
            color=color,
            label=label,
        )
    _set_log_y(axes[0])
    axes[0].set(
        xlim=(e_bins[0], e_bins[-1]),
        xscale="log",
        xlabel="E_reco / TeV",
        ylabel=f"background rate / ({BACKGROUND_UNIT.to_string()})",
    )
    axes[0].legend(fontsize="x-small")
    axes[1].axhline(1, color="gray", lw=1)
    axes[1].set(
        xlim=(e_bins[0], e_bins[-1]),
        xscale="log",
        xlabel="E_reco / TeV",
        ylabel=f"{labels[0]} / {labels[1]}",
        title=f"chi2/ndf = {comparison.chi2:.1f}/{comparison.ndf}",
    )
    axes[1].legend(fontsize="x-small")
    if effective_areas is not None:
        t_bins, test, ref = effective_areas
        t = t_bins.to_value(u.TeV)
        t_center = np.sqrt(t[:-1] * t[1:])
        for (area, err), name, style in ((test, labels[0], "o"), (ref, labels[1], "s")):
            ok = area.value > 0
            value = area[ok].to_value(u.m**2)
            axes[2].errorbar(
                t_center[ok], value, yerr=_log_safe_errors(value, err[ok].to_value(u.m**2)),
                fmt=style, label=name,
            )  # fmt: skip
        axes[2].set(xlim=(t[0], t[-1]), xscale="log", xlabel="E_true / TeV", ylabel="A_eff(p) / m2")
        _set_log_y(axes[2])
        axes[2].legend(fontsize="x-small")
    fig.savefig(path, dpi=120)
    plt.close(fig)
