"""Output formatting: the summary table, the B audit, the B check, the estimator table,
the B sensitivity lines, and strict JSON. Pure functions of analysed runs (no printing)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any


def _f(v: Any, nd: int = 3) -> str:
    if v is None:
        return "-"
    try:
        x = float(v)
    except (TypeError, ValueError):
        return str(v)
    return "-" if math.isnan(x) else f"{x:.{nd}f}"


def format_summary_table(analyses: Sequence[Any], *, compare: bool = False) -> str:
    """The printed table: model, accuracy, smECE ± CI, ECE, Brier, AUROC (one row per run).
    A run that is not finished says so after its name ("(unfinished: 12 of 40 questions)").
    ``compare``: a dataset column, and runs of one name told apart by their directory."""
    from semcal.report.html import dataset_labels, run_labels, unfinished_note

    header = ["run", "model", "style", "B", "grader", "n", "M", "accuracy", "conf",
              "smECE [95% CI]", "ECE", "Brier", "AUROC"]
    names = run_labels(analyses) if compare else [a.run.name for a in analyses]
    rows = []
    for a, name in zip(analyses, names):
        s = a.summary
        ci = f"{_f(s['smece'])} [{_f(s['smece_lo'])}, {_f(s['smece_hi'])}]"
        note = unfinished_note(a)
        rows.append([
            f"{name} ({note})" if note else name, a.run.model, a.run.style, a.collapse_label,
            a.grader_label, str(s["n"]), _f(s.get("mean_samples"), 1),
            _f(s["accuracy"]), _f(s["mean_confidence"]), ci, _f(s["ece"]), _f(s["brier"]),
            _f(s["auroc"]),
        ])
    if compare:
        header.insert(3, "dataset")
        for r, d in zip(rows, dataset_labels(analyses)):
            r.insert(3, d)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(out)


def _pct(v: Any) -> str:
    x = float(v) if v is not None else math.nan
    return "-" if math.isnan(x) else f"{100 * x:.1f}%"


def format_audit(a: Any, listed: int = 10) -> str:
    """The B audit of one analysed run (see :func:`semcal.analysis.collapse_audit`)."""
    au = a.audit
    if not au:
        return ""
    out = [f"B audit, run {a.run.name} (B {a.collapse_label}, grader {a.grader_label}): "
           f"{_f(au.get('classes_per_question'), 2)} classes per question, "
           f"{_pct(au.get('singleton_share'))} of answer classes are singletons, "
           f"no answer {_pct(au.get('no_answer_rate'))}, refusals {_pct(au.get('refusal_rate'))} "
           f"of samples, ties {_pct(au.get('tie_rate'))} of questions"]
    from semcal.analysis.compare import silent_note  # the analysis package: only when an
    from semcal.analysis.timing import sampling_note  # audit is shown

    silent = silent_note(a.summary)
    if silent:
        out.append(f"  silent: {silent}")
    timing = sampling_note(au.get("sampling") or {})
    if timing:
        out.append(f"  sampling time: {timing}")
    if len(au.get("engines") or ()) > 1:
        out.append(f"  sampled by more than one engine build ({'; '.join(au['engines'])}): "
                   "samples of different builds need not be comparable")
    if "judged" in au:
        out.append(f"  judge: {au['judged']} responses judged ({au['judge_calls']} calls), "
                   f"{au['judge_fallbacks']} answers not found in their response (rule-based "
                   f"label kept), same label as the rule-based B for "
                   f"{_pct(au['judge_agrees_with_rules'])}")
    ag = au.get("against")
    if ag:
        out.append(f"  against B {ag['against']}: {_pct(ag['agreement'])} of samples in the same "
                   f"class, same plurality on {_pct(ag['same_plurality'])} of questions; "
                   f"{ag['disagreements']} samples disagree"
                   + (f" (first {min(listed, len(ag['listed']))}):" if ag["listed"] else ""))
        for d in ag["listed"][:listed]:
            text = " ".join(d["text"].split())[:70]
            out.append(f"    {d['qid']} [{d['sample']}] {d['label']!r} vs {d['other_label']!r}: {text!r}")
    return "\n".join(out)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def format_b_check(a: Any) -> str:
    """The B check of one analysed run against its hand labels (``semcal label``), or ""
    when the run has no label file (:func:`semcal.label.check.b_check`)."""
    bc = getattr(a, "b_check", None)
    if not bc:
        return ""
    out = [f"B check, run {a.run.name} (B {a.collapse_label} against hand labels in "
           f"{bc['file']}): {_count(bc['questions'], 'question')} labelled"
           + (f", {bc['incomplete']} unfinished" if bc["incomplete"] else "")]
    if bc["questions"]:
        out.append(f"  same-class pairs: precision {_f(bc['precision'])}, recall "
                   f"{_f(bc['recall'])}, F1 {_f(bc['f1'])} [{_f(bc['f1_lo'])}, "
                   f"{_f(bc['f1_hi'])}]; grade error {_pct(bc['grade_error'])} "
                   f"[{_pct(bc['grade_error_lo'])}, {_pct(bc['grade_error_hi'])}]")
    d = bc.get("deltas")
    if d:
        for m, name in (("accuracy", "accuracy"), ("mean_confidence", "mean conf"),
                        ("smece", "smECE")):
            out.append(f"  {name:<10} B {_f(d[m + '_b'])}  hand {_f(d[m + '_hand'])}  "
                       f"B - hand {d[m + '_delta']:+.3f} [{_f(d[m + '_delta_lo'])}, "
                       f"{_f(d[m + '_delta_hi'])}]")
    out.append(f"  {bc['verdict']}")
    return "\n".join(out)


def format_b_unchecked(a: Any, directory: str) -> str:
    """For a run in a style where B's error is known to matter (sentences, chains of thought)
    and that has no hand labels: one line saying that its B is unchecked and how to check it;
    "" otherwise (:func:`semcal.label.check.unchecked_note`)."""
    from semcal.label.check import unchecked_note

    if getattr(a, "b_check", None):
        return ""
    note = unchecked_note(getattr(a.run, "style", ""), a.run.name, directory)
    return f"B check, run {a.run.name}: {note}" if note else ""


def format_estimator_table(a: Any) -> str:
    header = ["estimator", "kind", "n", "smECE", "ECE", "Brier", "AUROC"]
    rows = [[e["estimator"], e["kind"], str(e["n"]), _f(e.get("smece")), _f(e.get("ece")),
             _f(e.get("brier")), _f(e.get("auroc"))] for e in a.estimators]
    if not rows:
        return ""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(out)


def format_b_sensitivity(analyses: Sequence[Any]) -> str:
    """For each run analysed under several Bs: the spread of its numbers across the Bs, and
    whether B changes what the run says (smECE intervals that do not overlap)."""
    by_run: dict[tuple[str, str], list[Any]] = {}
    for a in analyses:
        by_run.setdefault((str(a.run.name), str(getattr(a.run, "id", ""))), []).append(a)
    lines = []
    for (name, _), group in by_run.items():
        if len(group) < 2:
            continue

        def spread(key: str, group: list[Any] = group) -> str:
            vals = [a.summary.get(key) for a in group]
            vals = [v for v in vals if v is not None and math.isfinite(v)]
            return "-" if not vals else f"{min(vals):.3f}-{max(vals):.3f}"

        los = [a.summary.get("smece_lo") for a in group]
        his = [a.summary.get("smece_hi") for a in group]
        known = all(v is not None and math.isfinite(v) for v in los + his)
        apart = known and max(los) > min(his)
        verdict = ("their smECE intervals do not all overlap: the choice of B changes this "
                   "run's calibration result" if apart else
                   "their smECE intervals overlap: the Bs agree within the metric's own interval"
                   if known else "no intervals (--n-boot 0 or too few questions)")
        bs = ", ".join(a.collapse_label for a in group)
        lines.append(f"B sensitivity, run {name} ({bs}): accuracy {spread('accuracy')}, "
                     f"mean confidence {spread('mean_confidence')}, smECE {spread('smece')}; "
                     f"{verdict}")
    return "\n".join(lines)


def _json_safe(v: Any) -> Any:
    """``v`` with every NaN or infinity as None (JSON has no such numbers: Python's bare
    ``NaN`` is not JSON) and NumPy scalars as Python ones."""
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    if type(v).__module__ == "numpy" and hasattr(v, "item"):
        try:  # a NumPy scalar or array
            return _json_safe(v.item() if getattr(v, "ndim", 0) == 0 else v.tolist())
        except (TypeError, ValueError):
            return str(v)
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _strict_json(v: Any) -> str:
    """Valid JSON (RFC 8259) of ``v``: NaN and infinities become null."""
    return json.dumps(_json_safe(v), indent=2, default=str, allow_nan=False)


def _status(a: Any) -> dict[str, Any]:
    from semcal.report.html import run_status

    st = run_status(a)
    return {"finished": st["finished"], "questions_planned": st["questions_planned"]}
