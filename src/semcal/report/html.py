"""The HTML report: one self-contained page per experiment directory (and a comparison page).

:func:`write_report` renders :class:`~semcal.analysis.RunAnalysis` results with the jinja2
templates in ``report/templates`` (autoescaping on: every model-generated or dataset string
is HTML-escaped). Plots are PNG images embedded as base64 data URIs, so the page needs no
other file and no network. The per-question table is exported next to it as CSV (and
Parquet when pyarrow is installed).
"""

from __future__ import annotations

import base64
import datetime as _dt
import io
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from semcal import __version__
from semcal.analysis import write_table
from semcal.analysis.compare import silent_note
from semcal.analysis.timing import sampling_note
from semcal.errors import InputError, SemcalError
from semcal.files import write_text
from semcal.label.check import unchecked_note

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
#: at most this many example questions are shown per run
MAX_EXAMPLES = 60
#: at most this many sample texts are shown per example question
MAX_TEXTS = 20


def _env():  # -> jinja2.Environment
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,  # every template, whatever its extension
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _num
    env.filters["pct"] = lambda v: "-" if _bad(v) else f"{100 * float(v):.0f}%"
    return env


def _bad(v: Any) -> bool:
    if v is None:
        return True
    try:
        return math.isnan(float(v))
    except (TypeError, ValueError):
        return True


def _num(v: Any, nd: int = 3) -> str:
    return "-" if _bad(v) else f"{float(v):.{nd}f}"


# ----------------------------------------------------------------------------- figures


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


#: resamples of the reliability curve's band (a picture; the legend's interval is the summary's)
BAND_RESAMPLES = 200


def figure_curves(runs: Sequence[tuple[str, Any]]) -> list[Any]:
    """The smoothed curves of (label, RunAnalysis) pairs, ready to draw: each curve's smECE,
    interval and bandwidth are its run's summary (the numbers of the table beside the figure),
    and its band is :func:`semcal.metrics.reliability_band` over at most
    :data:`BAND_RESAMPLES` of the summary's resamples. Runs of fewer than 2 questions are left
    out."""
    from semcal.report.reliability import reliability_curve  # matplotlib: only when drawn

    out = []
    for label, a in runs:
        if len(a.questions) < 2:
            continue
        nb = min(int(a.summary.get("n_boot") or 0), BAND_RESAMPLES)
        out.append(reliability_curve(a.confidences, a.correct, label, summary=a.summary,
                                     n_boot=nb))
    return out


def reliability_figure(runs: Sequence[tuple[str, Any]]) -> str:
    """Smoothed reliability diagram of one or more (label, RunAnalysis) pairs, as a data URI,
    drawn by :func:`semcal.report.reliability.plot_reliability` from :func:`figure_curves`."""

    from semcal.report.reliability import plot_reliability  # matplotlib: only when drawn

    _plt()
    fig = plot_reliability(figure_curves(runs), title="Smoothed reliability diagram",
                           density="both", figsize=(4.8, 4.8), dpi=100, legend="below")
    return _png(fig)


def histogram_figure(runs: Sequence[tuple[str, np.ndarray, np.ndarray]]) -> str:
    """Histogram of confidences, split into correct and wrong answers, as a data URI."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(runs), figsize=(4.0 * len(runs), 2.8), squeeze=False)
    bins = np.linspace(0, 1, 11)
    for ax, (label, conf, correct) in zip(axes[0], runs):
        conf = np.asarray(conf, dtype=float)
        correct = np.asarray(correct, dtype=bool)
        ax.hist([conf[correct], conf[~correct]], bins=bins, stacked=True,
                color=["#2ca02c", "#d62728"], label=["correct", "wrong"])
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("confidence")
        ax.set_xlim(0, 1)
        ax.legend(fontsize=7, frameon=False)
    axes[0][0].set_ylabel("questions")
    fig.tight_layout()
    return _png(fig)


# ----------------------------------------------------------------------------- run status


def run_status(a: Any) -> dict[str, Any]:
    """Whether an analysed run is finished: every question stored with the run (its planned
    set) is sampled and the run is marked finished. ``questions_done`` counts the analysed
    questions. A run analysed while it is sampled, or interrupted, is not finished."""
    planned = a.summary.get("n_questions_total")
    done = int(a.summary.get("n") or 0)
    if planned is None:  # not known (an analysis built by hand): taken as finished
        return {"finished": True, "questions_done": done, "questions_planned": done}
    finished = getattr(a.run, "finished", None) is not None and 0 < int(planned) <= done
    return {"finished": finished, "questions_done": done, "questions_planned": int(planned)}


def unfinished_note(a: Any) -> str:
    """``"unfinished: 12 of 40 questions"`` for a run that is not finished, else ``""``."""
    st = run_status(a)
    if st["finished"]:
        return ""
    return f"unfinished: {st['questions_done']} of {st['questions_planned']} questions"


def _dataset_id(a: Any) -> str:
    """The dataset a run sampled: the absolute path or bundled name stored in its spec."""
    return str((getattr(a.run, "spec", None) or {}).get("dataset") or a.run.dataset)


def dataset_labels(analyses: Sequence[Any]) -> list[str]:
    """A short dataset name per run (a file's name, a bundled set's name); the full path
    where two different datasets would otherwise get the same short name."""
    ids = [_dataset_id(a) for a in analyses]
    short = {i: Path(i).name or i for i in ids}
    clash = {n for n in short.values() if len({i for i in ids if short[i] == n}) > 1}
    return [i if short[i] in clash else short[i] for i in ids]


def run_labels(analyses: Sequence[Any]) -> list[str]:
    """A label per run that tells runs apart: the run name, with its directory added where
    two runs (of different stores) share a name."""
    names = [a.run.name for a in analyses]
    twice = {n for n in names if names.count(n) > 1}
    return [f"{a.run.name} ({a.directory})" if a.run.name in twice else a.run.name
            for a in analyses]


def compare_notes(analyses: Sequence[Any]) -> tuple[list[Any], list[str]]:
    """The runs a comparison shows, and its notes (one line each): runs without a single
    analysed question are left out, naming them, and runs on different datasets are warned
    about (their numbers are not about the same questions)."""
    labels = run_labels(analyses)
    empty = [lab for a, lab in zip(analyses, labels) if not a.questions]
    kept = [a for a in analyses if a.questions]
    notes = []
    if empty:
        notes.append(f"left out (no sampled questions, n = 0): {', '.join(empty)}")
    datasets = dict.fromkeys(dataset_labels(kept))
    if len(datasets) > 1:
        notes.append(f"the runs are on different datasets ({', '.join(datasets)}): their "
                     "numbers are about different questions")
    return kept, notes


# ----------------------------------------------------------------------------- context


def _settings(a: Any) -> list[tuple[str, str]]:
    r = a.run
    spec = r.spec
    ad = spec.get("adaptive") or {}
    items = [
        ("model", r.model),
        ("kind", "unknown" if r.is_chat is None else ("instruct (chat)" if r.is_chat else "base")),
        ("backend", r.backend),
        ("dataset", r.dataset),
        ("style", r.style),
        ("samples per question (M)", str(r.samples)),
        ("temperature", f"{r.temperature:g}"),
        ("top-p", f"{r.top_p:g}"),
        ("max tokens", str(r.max_tokens)),
        ("seed", str(r.seed)),
        ("few-shot examples", str(spec.get("k_shot", "-")) if not r.is_chat else "- (chat)"),
        ("engine", "; ".join(a.audit.get("engines") or ()) or "-"),
        ("sampling time", sampling_note(a.audit.get("sampling") or {}) or "-"),
        ("collapsing function B", a.collapse_label),
        ("grader", a.grader_label),
        ("created", r.created),
        ("semcal", r.semcal_version),
    ]
    if ad.get("enabled"):
        items.insert(6, ("adaptive", f"rounds of {ad.get('round')}, ε={ad.get('epsilon')}, "
                                     f"δ={ad.get('delta')}, min {ad.get('min_samples')}"))
    return items


def _examples(a: Any) -> list[dict[str, Any]]:
    qs = list(a.questions)
    # a spread: the least and most confident questions first, then the rest in order
    out = []
    for q in qs[:MAX_EXAMPLES]:
        out.append({
            "qid": q.qid,
            "question": q.question,
            "gold": list(q.gold),
            "prediction": q.prediction,
            "count": q.count,
            "n": q.n_samples,
            "confidence": q.confidence,
            "correct": q.correct,
            "classes": q.class_counts,
            "texts": list(zip(q.texts[:MAX_TEXTS], q.labels[:MAX_TEXTS])),
            "more_texts": max(0, len(q.texts) - MAX_TEXTS),
            "greedy": q.greedy_text,
        })
    return out


def _run_context(a: Any, idx: int) -> dict[str, Any]:
    conf, corr = a.confidences, a.correct
    figs = {}
    if len(conf) >= 2:
        figs["reliability"] = reliability_figure([(a.run.name, a)])
        figs["histogram"] = histogram_figure([(a.run.name, conf, corr)])
    return {
        "anchor": f"run-{idx}",
        "name": a.run.name,
        "unfinished": unfinished_note(a),
        "silent": silent_note(a.summary),
        "settings": _settings(a),
        "summary": a.summary,
        "estimators": a.estimators,
        "audit": a.audit,
        "b_check": getattr(a, "b_check", None),
        "b_unchecked": ("" if getattr(a, "b_check", None) else
                        unchecked_note(a.run.style, a.run.name, str(a.directory))),
        "collapse": a.collapse_label,
        "examples": _examples(a),
        "n_shown": min(len(a.questions), MAX_EXAMPLES),
        "figs": figs,
    }


def _overview_rows(analyses: Sequence[Any]) -> list[dict[str, Any]]:
    return [
        {**a.summary, "name": label, "model": a.run.model, "style": a.run.style,
         "dir": str(a.directory), "chat": a.run.is_chat, "dataset": dataset,
         "unfinished": unfinished_note(a)}
        for a, label, dataset in zip(analyses, run_labels(analyses), dataset_labels(analyses))
    ]


def render_report(analyses: Sequence[Any], title: str | None = None) -> str:
    """The report page for one or more analysed runs, as an HTML string."""
    if not analyses:
        raise InputError("nothing to report: no analysed runs")
    runs = [(a.run.name, a) for a in analyses if len(a.questions) >= 2]
    ctx = {
        "title": title or f"semcal report — {', '.join(a.run.name for a in analyses)}",
        "version": __version__,
        "generated": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "overview": _overview_rows(analyses),
        "overall_fig": reliability_figure(runs) if len(runs) > 1 else None,
        "runs": [_run_context(a, i) for i, a in enumerate(analyses)],
    }
    return _env().get_template("report.html.j2").render(**ctx)


def render_compare(analyses: Sequence[Any], title: str | None = None) -> str:
    """The comparison page: every run's reliability curve on one axes, and a table (runs with
    no analysed question are left out; the page names them, and warns about runs on different
    datasets: :func:`compare_notes`)."""
    if not analyses:
        raise InputError("nothing to compare: no analysed runs")
    analyses, notes = compare_notes(analyses)
    if not analyses:
        raise InputError(f"nothing to compare: {notes[0]}")
    curves = [(label, a.confidences, a.correct)
              for a, label in zip(analyses, run_labels(analyses)) if len(a.questions) >= 2]
    runs = [(label, a) for a, label in zip(analyses, run_labels(analyses))
            if len(a.questions) >= 2]
    ctx = {
        "title": title or "semcal comparison",
        "version": __version__,
        "generated": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "overview": _overview_rows(analyses),
        "notes": notes,
        "fig": reliability_figure(runs) if runs else None,
        "hist": histogram_figure(curves) if curves else None,
    }
    return _env().get_template("compare.html.j2").render(**ctx)


def _write(path: Path, text: str) -> None:
    write_text(path, text)


def write_report(analyses: Sequence[Any], path: str | Path, export: bool = True) -> dict[str, Path]:
    """Write the report to ``path`` and, with ``export``, the per-question table next to it
    (``questions.csv``, and ``questions.parquet`` when pyarrow is available), named after the
    report when it is not ``report.html`` (``x.html`` -> ``x.questions.csv``), so that two
    reports in one folder never overwrite each other's tables.

    Returns {"html": ..., "csv": ..., "parquet": ...} (the keys of the files written).
    """

    path = Path(path)
    _write(path, render_report(analyses))
    out = {"html": path}
    rows = [r for a in analyses for r in a.table()]
    if export and rows:
        stem = "questions" if path.name == "report.html" else f"{path.stem}.questions"
        out["csv"] = write_table(rows, path.with_name(f"{stem}.csv"))
        try:
            out["parquet"] = write_table(rows, path.with_name(f"{stem}.parquet"))
        except SemcalError as exc:  # pyarrow missing
            log.info("no Parquet export: %s", exc)
    return out


def write_compare(analyses: Sequence[Any], path: str | Path) -> Path:
    """Write the comparison page to ``path``."""
    path = Path(path)
    _write(path, render_compare(analyses))
    return path
