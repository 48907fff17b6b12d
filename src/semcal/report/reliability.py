"""Reliability diagrams: smoothed (kernel regression, as in relplot) and binned.

Everything draws on plain :class:`matplotlib.figure.Figure` objects (no pyplot, no display, no
global backend switch); files are rendered by matplotlib's Agg (PNG) or SVG/PDF writers, chosen
by the path's extension.

Typical use::

    from semcal.report.reliability import plot_reliability, plot_reliability_grid
    plot_reliability({"base": (conf_b, ok_b), "instruct": (conf_i, ok_i)}, "cmp.png")
    plot_reliability_grid({"concise": {...}, "cot": {...}}, "grid.svg")

The smoothed diagram shows, for each curve, the Nadaraya-Watson regression of correctness on
confidence with the reflected Gaussian kernel at the smECE bandwidth (the same kernel and grid
as :func:`semcal.metrics.smece`), a percentile bootstrap band around it, the density of the
confidences (as the line's width and/or a strip along the bottom), the diagonal, a marker for
the share of confidences exactly 1.0 (and their accuracy), and smECE with its bootstrap
interval in the legend.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from semcal.errors import InputError
from semcal.files import atomic_path
from semcal.metrics import bin_stats, reliability_band, smooth_reliability, summarize
from semcal.metrics._validate import check_alpha, check_n_boot, check_pair
from semcal.metrics.binned import BinStats, _check_bins

__all__ = [
    "DENSITY_STYLES",
    "FORMATS",
    "BinnedCurve",
    "ReliabilityCurve",
    "binned_curve",
    "plot_reliability",
    "plot_reliability_binned",
    "plot_reliability_grid",
    "reliability_curve",
    "save_figure",
    "smooth_legend",
]

#: File formats understood by :func:`save_figure` (from the path's extension).
FORMATS = ("png", "svg", "pdf")
#: How the confidence density is shown on the smoothed diagram.
DENSITY_STYLES = ("width", "strip", "both", "none")
_COLORS = ("#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")


# ----------------------------------------------------------------------------- data


@dataclass(frozen=True)
class ReliabilityCurve:
    """Everything needed to draw one smoothed reliability curve.

    ``mesh``, ``mu``, ``density``, ``lower``, ``upper`` have shape (m,). ``mu`` is the estimate
    of P(correct | confidence) (NaN where there is no data nearby); ``lower``/``upper`` the
    pointwise percentile bootstrap band (None without bootstrap); ``density`` the kernel density
    of the confidences. ``smece`` with its interval ``smece_lo``/``smece_hi`` (NaN without
    bootstrap), ``sigma`` the bandwidth, ``n`` the number of questions, ``share_at_one`` the
    fraction of confidences exactly 1.0 and ``accuracy_at_one`` their accuracy (NaN if none).
    """

    label: str
    mesh: np.ndarray
    mu: np.ndarray
    density: np.ndarray
    lower: np.ndarray | None
    upper: np.ndarray | None
    smece: float
    smece_lo: float
    smece_hi: float
    sigma: float
    n: int
    share_at_one: float
    accuracy_at_one: float
    alpha: float = 0.05


@dataclass(frozen=True)
class BinnedCurve:
    """One binned reliability curve: per-bin statistics plus the binned ECE and its interval."""

    label: str
    stats: BinStats
    n: int
    n_bins: int
    strategy: str
    ece: float
    ece_lo: float
    ece_hi: float
    alpha: float = 0.05


#: what a summary must hold for a smoothed curve (the keys of :func:`semcal.metrics.summarize`)
SUMMARY_KEYS = ("n", "alpha", "smece", "smece_lo", "smece_hi", "smece_sigma")


def _check_summary(summary: Any, n: int, where: str) -> dict[str, Any]:
    if not isinstance(summary, Mapping):
        raise InputError(f"summary must be a summarize() dict, got {type(summary).__name__}",
                         where=where)
    missing = [k for k in SUMMARY_KEYS if k not in summary]
    if missing:
        raise InputError(f"summary lacks {', '.join(missing)}", where=where)
    if summary["n"] != n:
        raise InputError(f"summary is of {summary['n']} questions, the data of {n}", where=where)
    return dict(summary)


def reliability_curve(
    conf: Any,
    correct: Any,
    label: str = "",
    *,
    summary: Mapping[str, Any] | None = None,
    n_boot: int = 200,
    alpha: float = 0.05,
    seed: int | None = 0,
    mesh_pts: int = 200,
    sigma: float | None = None,
    method: str = "percentile",
) -> ReliabilityCurve:
    """A smoothed reliability curve with a ``1 - alpha`` bootstrap band, ready to draw.

    ``conf``, ``correct``: arrays (n,). smECE, its interval, its bandwidth and ``alpha`` are
    read from ``summary``, the run's :func:`semcal.metrics.summarize` dict (a run's
    ``RunAnalysis.summary``), so the legend shows the numbers of the table beside it; without
    one they come from ``summarize(..., n_boot, seed, alpha, method, only="smece")``. The
    band is :func:`semcal.metrics.reliability_band` over ``n_boot`` resamples (``n_boot=0``:
    no band) at the curve's bandwidth; ``sigma`` defaults to the smECE bandwidth.
    """
    where = "reliability_curve"
    c, y = check_pair(conf, correct, where=where)
    nb = check_n_boot(n_boot, where, allow_zero=True)
    if summary is None:
        summary = summarize(c, y, n_boot=nb, seed=seed, alpha=alpha, method=method,
                            only="smece")
    s = _check_summary(summary, c.size, where)
    a = check_alpha(s["alpha"], where)
    curve = smooth_reliability(c, y, sigma=s["smece_sigma"] if sigma is None else sigma,
                               mesh_pts=mesh_pts)
    lower, upper = (reliability_band(c, y, curve.sigma, n_boot=nb, alpha=a, seed=seed,
                                     mesh_pts=mesh_pts) if nb else (None, None))
    at_one = c == 1.0
    return ReliabilityCurve(
        label=str(label), mesh=curve.mesh, mu=curve.mu, density=curve.density, lower=lower,
        upper=upper, smece=float(s["smece"]), smece_lo=float(s["smece_lo"]),
        smece_hi=float(s["smece_hi"]), sigma=curve.sigma, n=c.size,
        share_at_one=float(at_one.mean()),
        accuracy_at_one=float(y[at_one].mean()) if at_one.any() else float("nan"), alpha=a,
    )


def binned_curve(
    conf: Any,
    correct: Any,
    label: str = "",
    *,
    n_bins: int = 15,
    strategy: str = "width",
    n_boot: int = 200,
    alpha: float = 0.05,
    seed: int | None = 0,
    method: str = "percentile",
) -> BinnedCurve:
    """Per-bin statistics and the binned ECE with its bootstrap interval (from
    :func:`semcal.metrics.summarize`, ``ece`` or ``ece_mass`` at ``n_bins``) of one data set."""
    where = "binned_curve"
    c, y = check_pair(conf, correct, where=where)
    nbins, strat = _check_bins(n_bins, strategy, where)
    nb = check_n_boot(n_boot, where, allow_zero=True)
    key = "ece" if strat == "width" else "ece_mass"
    s = summarize(c, y, n_boot=nb, seed=seed, alpha=alpha, n_bins=nbins, method=method, only=key)
    stats = bin_stats(c, y, nbins, strat)
    return BinnedCurve(str(label), stats, c.size, nbins, strat, s[key], s[f"{key}_lo"],
                       s[f"{key}_hi"], s["alpha"])


# ----------------------------------------------------------------------------- input handling


def _is_pair(obj: Any) -> bool:
    """A (conf, correct) pair of arrays (not a pair of precomputed curves or strings)."""
    return (
        isinstance(obj, (tuple, list))
        and len(obj) == 2
        and not any(isinstance(o, (ReliabilityCurve, BinnedCurve, str)) for o in obj)
    )


def _collect(curves: Any, make: Any, kind: type, where: str) -> list[Any]:
    """Turn the accepted ``curves`` forms into a list of ``kind`` objects.

    Accepted: one ``kind`` object; a ``(conf, correct)`` pair; a ``{label: pair or kind}``
    mapping; a sequence of ``kind`` objects. ``make(conf, correct, label)`` builds a curve.
    """
    if isinstance(curves, kind):
        return [curves]
    if isinstance(curves, Mapping):
        out = []
        for label, value in curves.items():
            if isinstance(value, kind):
                out.append(value)
            elif _is_pair(value):
                out.append(make(value[0], value[1], str(label)))
            else:
                raise InputError(
                    f"curve {label!r}: expected a (conf, correct) pair or a {kind.__name__}, "
                    f"got {type(value).__name__}",
                    where=where,
                )
    elif _is_pair(curves):
        out = [make(curves[0], curves[1], "")]
    elif isinstance(curves, Sequence) and not isinstance(curves, (str, bytes)):
        out = list(curves)
        bad = [type(c).__name__ for c in out if not isinstance(c, kind)]
        if bad:
            raise InputError(
                f"expected a list of {kind.__name__} objects, found {bad[0]}", where=where
            )
    else:
        raise InputError(
            "curves must be a (conf, correct) pair, a {label: (conf, correct)} mapping, or "
            f"{kind.__name__} objects; got {type(curves).__name__}",
            where=where,
        )
    if not out:
        raise InputError("no curves given", where=where)
    return out


def _check_path(path: str | Path, where: str) -> tuple[Path, str]:
    p = Path(path)
    ext = p.suffix.lower().lstrip(".")
    if ext not in FORMATS:
        raise InputError(
            f"cannot tell the image format of {str(p)!r}: use one of "
            + ", ".join("." + f for f in FORMATS),
            where=where,
        )
    return p, ext


def save_figure(fig: Figure, path: str | Path, dpi: int | None = None) -> Path:
    """Write ``fig`` to ``path`` (PNG, SVG or PDF by extension), creating parent folders.

    PNG is rendered by Agg at ``dpi`` (default: the figure's). SVG keeps text as text (not
    outlines), so labels stay searchable and the file small in an HTML report.
    """

    p, ext = _check_path(path, "save_figure")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot write {str(p)!r}: {exc}", where="save_figure") from exc
    with atomic_path(p, "save_figure") as tmp:
        try:
            with matplotlib.rc_context({"svg.fonttype": "none"}):
                fig.savefig(tmp, format=ext, dpi=dpi)
        except OSError as exc:
            raise InputError(f"cannot write {str(p)!r}: {exc}", where="save_figure") from exc
    return p


def _setup_axes(ax: Any, title: str | None) -> None:
    ax.plot([0, 1], [0, 1], ls="--", color="0.55", lw=1.0, zorder=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.grid(True, color="0.92", lw=0.8, zorder=0)
    if title:
        ax.set_title(title)


def _interval_text(value: float, lo: float, hi: float, alpha: float) -> str:
    if np.isnan(lo) or np.isnan(hi):
        return f"{value:.3f}"
    return f"{value:.3f}, {100 * (1 - alpha):.0f}% CI [{lo:.3f}, {hi:.3f}]"


def _palette(colors: Sequence[str] | None) -> list[str]:
    return list(colors) if colors else list(_COLORS)


# ----------------------------------------------------------------------------- smoothed


def _draw_smooth(ax: Any, cv: ReliabilityCurve, color: str, density: str, band: bool,
                 row: int, rows: int) -> Line2D:
    t, mu = cv.mesh, cv.mu
    dmax = float(np.max(cv.density)) if np.max(cv.density) > 0 else 1.0
    if band and cv.lower is not None and cv.upper is not None:
        ok = ~(np.isnan(cv.lower) | np.isnan(cv.upper))
        ax.fill_between(t, np.where(ok, cv.lower, 0.0), np.where(ok, cv.upper, 0.0), where=ok,
                        color=color, alpha=0.18, lw=0, zorder=2)
    if density in ("strip", "both"):
        # filled density profile along the bottom; one thin row per curve
        height = 0.12 / rows
        base = row * height
        ax.fill_between(t, base, base + height * cv.density / dmax, color=color, alpha=0.35,
                        lw=0, zorder=2)
    pts = np.column_stack([t, mu])
    segs = np.stack([pts[:-1], pts[1:]], axis=1)
    keep = ~np.isnan(segs).any(axis=(1, 2))
    if density in ("width", "both"):
        dseg = (cv.density[:-1] + cv.density[1:]) / 2
        widths = 0.6 + 5.4 * np.sqrt(np.clip(dseg / dmax, 0.0, 1.0))  # width ~ sqrt(density)
    else:
        widths = np.full(len(segs), 2.0)
    ax.add_collection(LineCollection(segs[keep], linewidths=widths[keep], colors=color,
                                     capstyle="round", joinstyle="round", zorder=3))
    if cv.share_at_one >= 0.01 and not np.isnan(cv.accuracy_at_one):
        ax.scatter([1.0], [cv.accuracy_at_one], s=20 + 280 * cv.share_at_one,
                   facecolor="none", edgecolor=color, lw=1.5, zorder=4, clip_on=False)
    return Line2D([], [], color=color, lw=3, label=smooth_legend(cv))


def smooth_legend(cv: ReliabilityCurve) -> str:
    """The legend entry of a smoothed curve: its label, smECE with its interval, n and the
    share of confidences at 1.0."""
    name = f"{cv.label}: " if cv.label else ""
    at_one = f", {cv.share_at_one:.0%} at 1.0" if cv.share_at_one >= 0.01 else ""
    text = _interval_text(cv.smece, cv.smece_lo, cv.smece_hi, cv.alpha)
    return f"{name}smECE {text}\n(n={cv.n}{at_one})"


#: characters a line of a legend below the axes may hold: a longer name (semcal's run names
#: run to 60 and more) is wrapped, since a legend wider than the axes shrinks them to nothing
LEGEND_WIDTH = 48


def _wrapped(label: str) -> str:
    return "\n".join(textwrap.fill(line, LEGEND_WIDTH, break_on_hyphens=True)
                     for line in label.split("\n"))


def _place_legend(ax: Any, handles: list[Line2D], legend: str, where: str) -> None:
    if legend == "below":  # outside the axes: it never covers a curve
        for h in handles:
            h.set_label(_wrapped(str(h.get_label())))
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.13),
                  fontsize="x-small", frameon=False, ncols=1)
    elif legend == "inside":
        ax.legend(handles=handles, loc="best", fontsize="x-small", framealpha=0.85)
    else:
        raise InputError(f"legend must be 'inside' or 'below', got {legend!r}", where=where)


def _draw_reliability(ax: Any, curves: Any, *, title: str | None, density: str, band: bool,
                      n_boot: int, alpha: float, seed: int | None,
                      colors: Sequence[str] | None, where: str,
                      method: str = "percentile", legend: str = "inside") -> None:
    if density not in DENSITY_STYLES:
        raise InputError(
            f"density must be one of {', '.join(DENSITY_STYLES)}; got {density!r}", where=where
        )

    def make(c: Any, y: Any, label: str) -> ReliabilityCurve:
        return reliability_curve(c, y, label, n_boot=n_boot if band else 0, alpha=alpha,
                                 seed=seed, method=method)

    items = _collect(curves, make, ReliabilityCurve, where)
    _setup_axes(ax, title)
    pal = _palette(colors)
    handles = [_draw_smooth(ax, cv, pal[i % len(pal)], density, band, i, len(items))
               for i, cv in enumerate(items)]
    _place_legend(ax, handles, legend, where)


def plot_reliability(
    curves: Any,
    path: str | Path | None = None,
    *,
    ax: Any = None,
    title: str | None = None,
    density: str = "width",
    band: bool = True,
    n_boot: int = 200,
    alpha: float = 0.05,
    seed: int | None = 0,
    colors: Sequence[str] | None = None,
    method: str = "percentile",
    figsize: tuple[float, float] = (5.5, 5.5),
    dpi: int = 150,
    legend: str = "inside",
) -> Figure:
    """Draw one or several smoothed reliability curves on one axes; optionally save them.

    ``curves``: a ``(conf, correct)`` pair, a ``{label: (conf, correct)}`` mapping (e.g.
    ``{"base": ..., "instruct": ...}``), a :class:`ReliabilityCurve` or a list of them.
    ``path``: a ``.png``, ``.svg`` or ``.pdf`` file to write (parent folders are created).
    ``ax``: draw into this matplotlib axes instead of a new figure. ``density``: ``"width"``
    (line width grows with the square root of the confidence density), ``"strip"`` (filled
    density profiles along the bottom), ``"both"`` or ``"none"``. ``band``: shade the pointwise
    ``1 - alpha`` bootstrap band (``n_boot`` resamples, seeded). Legend entries give smECE with
    its bootstrap interval (``method``: ``"percentile"`` or ``"basic"``, see
    :func:`semcal.metrics.bootstrap_ci`); a hollow circle at confidence 1.0 marks the share of
    confidences of exactly 1.0 (its area) and their accuracy (its height). ``legend``:
    ``"inside"`` (the best corner) or ``"below"`` (under the axes, long names wrapped).
    Returns the figure.
    """
    where = "plot_reliability"
    if path is not None:
        _check_path(path, where)
    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained") if ax is None else ax.figure
    ax = fig.add_subplot() if ax is None else ax
    _draw_reliability(ax, curves, title=title, density=density, band=band, n_boot=n_boot,
                      alpha=alpha, seed=seed, colors=colors, where=where, method=method,
                      legend=legend)
    if path is not None:
        save_figure(fig, path)
    return fig


# ----------------------------------------------------------------------------- binned


def _draw_binned(ax: Any, cv: BinnedCurve, color: str, bars: bool) -> Line2D:
    st = cv.stats
    filled = st.count > 0
    share = st.count / max(cv.n, 1)
    if bars:
        left = st.edges[:-1]
        width = np.diff(st.edges)
        shade = 0.25 + 0.6 * share / max(share.max(), 1e-12)
        for i in np.flatnonzero(filled):
            ax.bar(left[i], st.accuracy[i], width=width[i], align="edge", color=color,
                   alpha=float(shade[i]), edgecolor="white", lw=0.8, zorder=2)
            # the gap between accuracy and mean confidence, hatched
            lo, hi = sorted((st.accuracy[i], st.mean_conf[i]))
            ax.bar(left[i], hi - lo, bottom=lo, width=width[i], align="edge", fill=False,
                   hatch="///", edgecolor="0.35", lw=0.0, zorder=2.5)
    ax.plot(st.mean_conf[filled], st.accuracy[filled], color=color, lw=1.2, zorder=3)
    ax.scatter(st.mean_conf[filled], st.accuracy[filled], s=12 + 250 * share[filled],
               color=color, edgecolor="white", lw=0.6, zorder=4, clip_on=False)
    name = f"{cv.label}: " if cv.label else ""
    text = _interval_text(cv.ece, cv.ece_lo, cv.ece_hi, cv.alpha)
    kind = "" if cv.strategy == "width" else ", equal mass"
    return Line2D([], [], color=color, marker="o", lw=1.2,
                  label=f"{name}ECE$_{{{cv.n_bins}}}$ {text}\n(n={cv.n}{kind})")


def _draw_reliability_binned(ax: Any, curves: Any, *, title: str | None, n_bins: int,
                             strategy: str, n_boot: int, alpha: float, seed: int | None,
                             colors: Sequence[str] | None, bars: bool | None,
                             where: str, method: str = "percentile",
                             legend: str = "inside") -> None:
    def make(c: Any, y: Any, label: str) -> BinnedCurve:
        return binned_curve(c, y, label, n_bins=n_bins, strategy=strategy, n_boot=n_boot,
                            alpha=alpha, seed=seed, method=method)

    items = _collect(curves, make, BinnedCurve, where)
    _setup_axes(ax, title)
    pal = _palette(colors)
    draw_bars = len(items) == 1 if bars is None else bool(bars)
    handles = [_draw_binned(ax, cv, pal[i % len(pal)], draw_bars) for i, cv in enumerate(items)]
    _place_legend(ax, handles, legend, where)


def plot_reliability_binned(
    curves: Any,
    path: str | Path | None = None,
    *,
    ax: Any = None,
    title: str | None = None,
    n_bins: int = 15,
    strategy: str = "width",
    bars: bool | None = None,
    n_boot: int = 200,
    alpha: float = 0.05,
    seed: int | None = 0,
    colors: Sequence[str] | None = None,
    method: str = "percentile",
    figsize: tuple[float, float] = (5.5, 5.5),
    dpi: int = 150,
) -> Figure:
    """Binned reliability diagram of one or several curves; optionally saved to ``path``.

    ``curves`` as in :func:`plot_reliability` (with :class:`BinnedCurve` objects instead).
    Each bin is a dot at (mean confidence, accuracy) whose area is the bin's share of the data.
    ``bars`` (default: only for a single curve) also draws accuracy bars, shaded by bin share,
    with the gap to the mean confidence hatched. Legend: binned ECE with its ``1 - alpha``
    bootstrap interval (``method`` as in :func:`plot_reliability`).
    """
    where = "plot_reliability_binned"
    if path is not None:
        _check_path(path, where)
    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained") if ax is None else ax.figure
    ax = fig.add_subplot() if ax is None else ax
    _draw_reliability_binned(ax, curves, title=title, n_bins=n_bins, strategy=strategy,
                             n_boot=n_boot, alpha=alpha, seed=seed, colors=colors, bars=bars,
                             where=where, method=method)
    if path is not None:
        save_figure(fig, path)
    return fig


# ----------------------------------------------------------------------------- grid


#: inches of figure height a legend entry below the axes takes (three wrapped lines); a panel
#: with more than two curves grows by this much for each further curve
LEGEND_ENTRY_HEIGHT = 0.55


def plot_reliability_grid(
    panels: Mapping[str, Any],
    path: str | Path | None = None,
    *,
    kind: str = "smooth",
    ncols: int = 3,
    panel_size: float = 4.2,
    title: str | None = None,
    dpi: int = 150,
    **options: Any,
) -> Figure:
    """Side-by-side reliability diagrams, one panel per entry of ``panels``.

    ``panels``: ``{panel title: curves}``, each ``curves`` accepted by :func:`plot_reliability`
    (e.g. ``{"concise": {"base": pair, "instruct": pair}, "cot": {...}}``). ``kind``:
    ``"smooth"`` or ``"binned"``. ``options`` go to the per-panel drawing: ``n_boot``,
    ``alpha``, ``seed``, ``method``, ``colors``, plus ``density`` and ``band`` (smooth) or
    ``n_bins``, ``strategy`` and ``bars`` (binned), and ``legend``: ``"inside"`` (default) or
    ``"below"`` (outside the axes, never over a curve). A curve label keeps its
    colour across panels when ``colors`` is not given.
    """
    where = "plot_reliability_grid"
    if kind not in ("smooth", "binned"):
        raise InputError(f"kind must be 'smooth' or 'binned', got {kind!r}", where=where)
    if not isinstance(panels, Mapping) or not panels:
        raise InputError("panels must be a non-empty {title: curves} mapping", where=where)
    if isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1:
        raise InputError(f"ncols must be a positive integer, got {ncols!r}", where=where)
    common = {"n_boot", "alpha", "seed", "colors", "method", "legend"}
    allowed = common | ({"density", "band"} if kind == "smooth" else {"n_bins", "strategy", "bars"})
    unknown = set(options) - allowed
    if unknown:
        raise InputError(f"unknown option(s) for kind={kind!r}: {', '.join(sorted(unknown))}",
                         where=where)
    if path is not None:
        _check_path(path, where)
    ncol = min(ncols, len(panels))
    nrow = -(-len(panels) // ncol)
    height = panel_size * nrow
    if options.get("legend") == "below":  # each entry takes about three wrapped lines under
        most = max((len(c) for c in panels.values() if isinstance(c, Mapping)), default=0)
        height += LEGEND_ENTRY_HEIGHT * max(0, most - 2) * nrow  # the axes: keep them square
    fig = Figure(figsize=(panel_size * ncol, height), dpi=dpi, layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False)).ravel()
    # consistent colours: the same label gets the same colour in every panel
    labels: list[str] = []
    for curves in panels.values():
        if isinstance(curves, Mapping):
            labels.extend(str(k) for k in curves if str(k) not in labels)
    base = _palette(options.pop("colors", None))
    defaults = dict(density="width", band=True) if kind == "smooth" else \
        dict(n_bins=15, strategy="width", bars=None)
    defaults.update(n_boot=200, alpha=0.05, seed=0, method="percentile", legend="inside")
    defaults.update(options)
    for ax, (name, curves) in zip(axes, panels.items()):
        if isinstance(curves, Mapping) and labels:
            colors = [base[labels.index(str(k)) % len(base)] for k in curves]
        else:
            colors = base
        if kind == "smooth":
            _draw_reliability(ax, curves, title=str(name), colors=colors,
                              where=f"{where}[{name!r}]", **defaults)
        else:
            _draw_reliability_binned(ax, curves, title=str(name), colors=colors,
                                     where=f"{where}[{name!r}]", **defaults)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    if path is not None:
        save_figure(fig, path)
    return fig
