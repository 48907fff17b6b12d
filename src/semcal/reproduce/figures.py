"""The figures of a reproduction: reliability diagrams per comparison, smECE against
accuracy, the temperature sweep, and the theory diagnostics' plots."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from semcal.files import save_figure
from semcal.report.reliability import ReliabilityCurve, plot_reliability_grid, reliability_curve
from semcal.reproduce.plan import ReproduceResult, RunOutcome, _dataset_name
from semcal.reproduce.spec import GROUP_COLORS
from semcal.reproduce.summary import _ci
from semcal.theory.selfpredict import plot_self_prediction
from semcal.theory.trajectories import plot_trajectories

# ----------------------------------------------------------------------------- figures


def make_figures(result: ReproduceResult, fig_dir: Path) -> dict[str, Path]:
    """Draw every figure the results allow; returns name -> PNG path."""
    figs: dict[str, Path] = {}
    fig_dir.mkdir(parents=True, exist_ok=True)
    runs = result.runs
    for comp, title in (
        ("styles", "concise vs sentence"),
        ("tuning", "Base vs instruct-tuned"),
        ("cot", "Direct vs chain-of-thought"),
        ("temperature", "Sampling temperature (base model)"),
    ):
        sel = [o for o in runs if comp in o.run.comparisons]
        if comp == "styles":  # the spec's style_roles say whose styles: name them
            title = f"{_roles_title(sel)}: {title}"
        if sel:
            drawn = reliability_figure(sel, fig_dir / f"reliability_{comp}.png", title=title,
                                       n_boot=min(result.spec.n_boot, 200), seed=result.spec.seed)
            if drawn is not None:
                figs[f"reliability_{comp}"] = drawn
    scatter = [o for o in runs if o.run.temperature == 1.0 and o.metrics.get("n")]
    if scatter:
        figs["scatter"] = plot_smece_accuracy(scatter, fig_dir / "smece_vs_accuracy.png")
    temps = [o for o in runs if "temperature" in o.run.comparisons and o.metrics.get("n")]
    if temps:
        figs["temperature"] = plot_temperature(temps, fig_dir / "temperature.png")
    if result.trajectories:
        figs["trajectories"] = plot_trajectories(
            [v["result"] for v in result.trajectories.values()], fig_dir / "trajectories.png"
        )
    if result.selfpredict:
        figs["selfpredict"] = plot_self_prediction(
            {k: v["rows"] for k, v in result.selfpredict.items()}, fig_dir / "selfpredict.png"
        )
    return figs


def _roles_title(outcomes: Sequence[RunOutcome]) -> str:
    """"Base models", "Instruct models" (chat-tuned: instruct or sft) or "Base and instruct
    models", after the roles of the runs a figure shows."""
    tuned = {o.run.model.role != "base" for o in outcomes}
    return ("Base and instruct models" if len(tuned) > 1 else
            "Instruct models" if tuned == {True} else "Base models")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def reliability_figure(outcomes: Sequence[RunOutcome], path: Path, title: str = "",
                       n_boot: int = 200, seed: int = 0) -> Path | None:
    """One comparison's smoothed reliability diagrams, drawn by the report's
    :func:`~semcal.report.reliability.plot_reliability_grid`: one panel per dataset, one curve
    per condition (full model name, style, temperature), each with its pointwise bootstrap band
    (``n_boot`` resamples) and, in a legend below the axes, smECE with its interval and n from
    the run's summary (``RunOutcome.metrics``, the numbers of summary.md)."""

    panels = outcome_curves(outcomes, n_boot=n_boot, seed=seed)
    if panels:
        fig = plot_reliability_grid(panels, None, title=title or None, ncols=3,
                                    panel_size=4.6, dpi=90, legend="below")
        save_figure(fig, path)
        return path
    return None


def outcome_curves(outcomes: Sequence[RunOutcome], n_boot: int = 200,
                   seed: int = 0) -> dict[str, dict[str, ReliabilityCurve]]:
    """{dataset: {condition: curve}} of the runs with questions; each curve takes smECE, its
    interval and bandwidth from the run's summary (``RunOutcome.metrics``)."""
    panels: dict[str, dict[str, ReliabilityCurve]] = {}
    for o in sorted(outcomes, key=lambda o: (o.run.model.role, o.run.model.model, o.run.style,
                                             o.run.temperature)):
        if not o.metrics.get("n"):
            continue
        t = "" if o.run.temperature == 1.0 else f" T={o.run.temperature:g}"
        label = f"{o.run.model.name} ({o.run.model.role}) {o.run.style}{t}"
        panels.setdefault(_dataset_name(o.run.dataset), {})[label] = reliability_curve(
            np.asarray(o.confidence, dtype=float), np.asarray(o.correct, dtype=float), label,
            summary=o.metrics, n_boot=min(n_boot, int(o.metrics.get("n_boot") or 0)),
            seed=seed)
    return panels


def plot_smece_accuracy(outcomes: Sequence[RunOutcome], path: Path) -> Path:
    """smECE against accuracy, one point per (model, dataset, style), coloured base/instruct/cot,
    with bootstrap-CI error bars."""
    plt = _plt()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(4.6, 3.6), dpi=80)
    seen = set()
    for o in outcomes:
        g = o.run.group
        mt = o.metrics
        xe = np.abs(np.array(_ci(mt, "accuracy")) - mt["accuracy"])[:, None]
        ye = np.abs(np.array(_ci(mt, "smece")) - mt["smece"])[:, None]
        ax.errorbar(mt["accuracy"], mt["smece"], xerr=xe, yerr=ye, fmt="o", ms=5,
                    color=GROUP_COLORS[g], alpha=0.8, elinewidth=0.7,
                    label=g if g not in seen else None)
        seen.add(g)
        ax.annotate(f"{o.run.model.name} / {_dataset_name(o.run.dataset)} / {o.run.style}",
                    (mt["accuracy"], mt["smece"]), fontsize=5, alpha=0.7,
                    xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("accuracy")
    ax.set_ylabel("smECE")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("smECE vs accuracy (95% bootstrap CIs)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path


def plot_temperature(outcomes: Sequence[RunOutcome], path: Path) -> Path:
    """smECE and signed calibration error (mean confidence - accuracy) against temperature."""
    plt = _plt()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(7.2, 3.1), dpi=80)
    by_ds: dict[str, list[RunOutcome]] = {}
    for o in outcomes:
        by_ds.setdefault(_dataset_name(o.run.dataset), []).append(o)
    for ds, items in by_ds.items():
        items = sorted(items, key=lambda o: o.run.temperature)
        t = np.array([o.run.temperature for o in items])
        for ax, key in zip(axes, ("smece", "overconfidence")):
            v = np.array([o.metrics[key] for o in items])
            ci = np.array([_ci(o.metrics, key) for o in items])
            ax.errorbar(t, v, yerr=np.abs(ci.T - v), marker="o", ms=4, capsize=2, label=ds)
    axes[0].set_ylabel("smECE")
    axes[1].set_ylabel("mean confidence - accuracy")
    axes[1].axhline(0, color="k", lw=0.8)
    for ax in axes:
        ax.axvline(1.0, color="grey", ls=":", lw=0.8)
        ax.set_xlabel("sampling temperature T")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Temperature perturbation (>0: overconfident)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path
