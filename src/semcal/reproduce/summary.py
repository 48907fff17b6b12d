"""summary.md: the numbers of a reproduction, with their intervals, as Markdown."""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

from semcal.analysis import sampling_note
from semcal.analysis.compare import MAX_SILENT, is_silent
from semcal.cli import format_b_check
from semcal.reproduce.comparisons import AXES, COMPARISON_REGISTRY
from semcal.reproduce.plan import ReproduceResult, RunOutcome, _dataset_name

# ----------------------------------------------------------------------------- summary


def _fmt(v: Any, ci: Any = None, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    s = f"{v:+.{digits}f}" if ci == "signed" else f"{v:.{digits}f}"
    return s


def _ci(m: Mapping[str, Any], key: str) -> list[float] | None:
    """The interval of ``key``: ``key_lo``/``key_hi`` (metrics.summarize) or ``key_ci``."""
    if f"{key}_lo" in m:
        return [m[f"{key}_lo"], m[f"{key}_hi"]]
    ci = m.get(f"{key}_ci")
    return list(ci) if ci else None


def _fmt_gain(mt: Mapping[str, Any]) -> str:
    g = mt.get("tilt_gain")
    if g is None or not math.isfinite(g):
        return "-"
    return f"{mt['tilt_gain']:+.3f} ± {mt['tilt_gain_se']:.3f}"


def _fmt_ci(m: Mapping[str, Any], key: str, signed: bool = False) -> str:
    v = m.get(key)
    ci = _ci(m, key)
    if v is None or not isinstance(v, (int, float)) or not math.isfinite(v):
        return "n/a"
    s = f"{v:+.3f}" if signed else f"{v:.3f}"
    if ci and all(isinstance(x, (int, float)) and math.isfinite(x) for x in ci):
        s += f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if signed else f" [{ci[0]:.3f}, {ci[1]:.3f}]"
    return s


def _bs_text(bs: tuple[str, ...]) -> str:
    """``auto`` for one B; ``auto`` (also compared: ``exact``) for several."""
    if len(bs) == 1:
        return f"`{bs[0]}`"
    return f"`{bs[0]}` (also compared: {', '.join(f'`{b}`' for b in bs[1:])})"


def _pct(v: float) -> str:
    return "-" if v != v else f"{100 * v:.0f}%"


#: fewer questions than this and a diagnostic's conclusion is not drawn
MIN_QUESTIONS = 30


def _condition(o: Any) -> str:
    t = "" if o.run.temperature == 1.0 else f" T={o.run.temperature:g}"
    return f"{o.run.model.name} {o.run.style}{t}"


def _under(o: RunOutcome, collapse: str | None) -> Mapping[str, Any]:
    """The metrics of run ``o`` under B ``collapse`` (None or the primary B: its own)."""
    if collapse is None or collapse not in o.by_collapse:
        return o.metrics
    return o.by_collapse[collapse]


def comparison_verdicts(result: ReproduceResult, collapse: str | None = None
                        ) -> list[dict[str, Any]]:
    """Each pair of runs a comparison sets side by side (same dataset, differing only in what
    the comparison varies: the model for ``tuning``, the style for ``styles`` and ``cot``, the
    temperature for ``temperature``) with their smECE intervals and whether the intervals
    are apart. Overlapping intervals: the data do not tell the two conditions apart; nor do
    they when a condition is silent (``silent``: the conditions whose prediction is no answer
    on more than :data:`MAX_SILENT` of their questions; such a pair is never ``apart``).
    ``collapse`` names one of the experiment's further Bs (default: the primary B)."""
    out = []
    runs = [o for o in result.runs if _under(o, collapse).get("n")]
    # the one thing each comparison varies (its registered axis): model, style or temperature
    for comp in COMPARISON_REGISTRY:
        if COMPARISON_REGISTRY[comp].axis is None:
            continue  # a diagnostic, not a pair of runs
        axis = AXES.index(COMPARISON_REGISTRY[comp].axis)
        sel = [o for o in runs if comp in o.run.comparisons]
        for i, a in enumerate(sel):
            for b in sel[i + 1:]:
                if a.run.dataset != b.run.dataset:
                    continue
                diff = [a.run.model.model != b.run.model.model, a.run.style != b.run.style,
                        a.run.temperature != b.run.temperature]
                if sum(diff) != 1 or not diff[axis]:
                    continue
                ma, mb = _under(a, collapse), _under(b, collapse)
                ca, cb = _ci(ma, "smece"), _ci(mb, "smece")
                known = bool(ca and cb and all(math.isfinite(x) for x in (*ca, *cb)))
                silent = [(_condition(o), m["no_prediction_rate"])
                          for o, m in ((a, ma), (b, mb)) if is_silent(m)]
                apart = (known and not silent
                         and (ca[1] < cb[0] or cb[1] < ca[0]))  # type: ignore[index]
                out.append({"comparison": comp, "dataset": _dataset_name(a.run.dataset),
                            "a": _condition(a), "b": _condition(b),
                            "a_smece": _fmt_ci(ma, "smece"),
                            "b_smece": _fmt_ci(mb, "smece"),
                            "n": min(ma["n"], mb["n"]),
                            "apart": apart, "known": known, "silent": silent,
                            # the condition with the lower smECE, when the intervals are apart
                            "lower": (None if not apart else "a" if ma["smece"] < mb["smece"]
                                      else "b")})
    return out


def _outcome_text(v: Mapping[str, Any]) -> str:
    """A comparison's conclusion in a few words: which condition has the lower smECE, or
    no conclusion (direction and "no conclusion" are what a B could change)."""
    if not v["apart"]:
        return "no conclusion"
    lo, hi = (v["a"], v["b"]) if v["lower"] == "a" else (v["b"], v["a"])
    return f"smECE {lo} < {hi}"


def b_sensitivity(result: ReproduceResult) -> list[dict[str, Any]]:
    """Each comparison's conclusion under every B of the experiment, computed from the same
    samples: ``verdicts`` maps each B to :func:`_outcome_text`; ``agree`` is whether they
    are all the same. Empty with one B."""
    bs = result.spec.collapses
    if len(bs) < 2:
        return []
    per_b = [comparison_verdicts(result, None if i == 0 else b) for i, b in enumerate(bs)]
    out: dict[tuple, dict[str, Any]] = {}
    for b, verdicts in zip(bs, per_b):
        for v in verdicts:
            key = (v["comparison"], v["dataset"], v["a"], v["b"])
            row = out.setdefault(key, {"comparison": v["comparison"], "dataset": v["dataset"],
                                       "a": v["a"], "b": v["b"], "verdicts": {}})
            row["verdicts"][b] = _outcome_text(v)
    for row in out.values():
        row["agree"] = len(row["verdicts"]) == len(bs) and len(set(row["verdicts"].values())) == 1
    return list(out.values())


def _b_sensitivity_lines(result: ReproduceResult) -> list[str]:
    """The summary's section on whether the choice of B changes a comparison's conclusion."""
    rows = b_sensitivity(result)
    if not rows:
        return []
    bs = result.spec.collapses
    names = ", ".join(f"`{b}`" for b in bs)
    lines = ["## Do the conclusions depend on B?", "",
             f"The tables use B `{bs[0]}`; the same samples were also analysed under "
             + ", ".join(f"`{b}`" for b in bs[1:]) + ". A comparison's conclusion is the "
             "condition with the lower smECE when the intervals are apart, else no conclusion.",
             ""]
    changed = [r for r in rows if not r["agree"]]
    if changed:
        lines += [f"**The conclusion changes with B** for {len(changed)} of {len(rows)} "
                  "comparisons: read them as resting on the choice of B (label a sample by "
                  "hand, `semcal label`, to see which B is right):", ""]
        lines += [f"- {r['comparison']} · {r['dataset']} · {r['a']} vs {r['b']}: "
                  + "; ".join(f"`{b}`: {t}" for b, t in r["verdicts"].items()) for r in changed]
    else:
        lines.append(f"The Bs agree: every comparison reaches the same conclusion under each "
                     f"B ({names}).")
    lines += ["", "| comparison | dataset | condition A | condition B | "
              + " | ".join(f"`{b}`" for b in bs) + " | Bs agree |",
              "|---" * (5 + len(bs)) + "|"]
    for r in rows:
        lines.append(f"| {r['comparison']} | {r['dataset']} | {r['a']} | {r['b']} | "
                     + " | ".join(r["verdicts"].get(b, "-") for b in bs)
                     + f" | {'yes' if r['agree'] else '**no**'} |")
    return [*lines, ""]


def _b_check_lines(result: ReproduceResult) -> list[str]:
    """The B check of every run with hand labels (``semcal label``), under each B, as
    ``semcal analyze`` prints it."""
    blocks = []
    for o in result.runs:
        for m in (o.metrics, *o.by_collapse.values()):
            if m.get("b_check"):
                shown = SimpleNamespace(run=SimpleNamespace(name=o.run.spec.run_name),
                                        collapse_label=m.get("collapse_label", m.get("collapse")),
                                        b_check=m["b_check"])
                blocks += ["```", format_b_check(shown), "```", ""]
    if not blocks:
        return []
    return ["## B checked by hand", "",
            "Runs with a hand-label file (`semcal label`): B's classes against the hand "
            "classes on the labelled questions (see docs/labelling.md).", "", *blocks]


def _header_lines(result: ReproduceResult) -> list[str]:
    """The title and one paragraph with the experiment's settings and wall time."""
    exp = result.spec
    return [
        f"# semcal reproduce: {exp.name}",
        "",
        f"Backend `{exp.backend}`; models: "
        + ", ".join(f"`{m.model}` ({m.role})" for m in exp.models)
        + f"; datasets: {', '.join(f'`{d}`' for d in exp.datasets)}; "
        f"up to {exp.questions} questions per dataset, M = {exp.samples} samples per question, "
        f"collapse {_bs_text(exp.collapses)}, seed {exp.seed}, {exp.n_boot} bootstrap resamples. "
        f"Wall time of this invocation {result.seconds:.0f} s (a resumed reproduction counts "
        "only what it did this time; each run's sampling time over all its sessions is in the "
        "table of how B grouped the samples).",
        "",
    ]


def _run_table_lines(result: ReproduceResult) -> list[str]:
    """The calibration table: one row per run, sorted by role, model, dataset, style, T."""
    lines = [
        "## Calibration per run",
        "",
        "| model | role | dataset | style | T | n | accuracy | mean conf. | conf. - acc. | smECE "
        "| tilt gain (nats) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for o in sorted(result.runs, key=lambda o: (o.run.model.role, o.run.model.name,
                                                 _dataset_name(o.run.dataset), o.run.style,
                                                 o.run.temperature)):
        mt = o.metrics
        lines.append(
            f"| {o.run.model.name} | {o.run.model.role} | {_dataset_name(o.run.dataset)} | "
            f"{o.run.style} | {o.run.temperature:g} | {mt.get('n', 0)} | "
            f"{_fmt_ci(mt, 'accuracy')} | {_fmt_ci(mt, 'mean_confidence')} | "
            f"{_fmt_ci(mt, 'overconfidence', True)} | {_fmt_ci(mt, 'smece')} | "
            f"{_fmt_gain(mt)} |"
        )
    lines.append("")
    return lines


def _verdict_lines(result: ReproduceResult) -> list[str]:
    """The table of comparisons and whether their smECE intervals tell the conditions apart."""
    verdicts = comparison_verdicts(result)
    if not verdicts:
        return []
    lines = [
        "## Can the comparisons tell their conditions apart?",
        "",
        "Two conditions are told apart only when their smECE intervals do not overlap; "
        "otherwise no conclusion is drawn from this run, whatever the point estimates say. "
        f"Nor is one drawn when a condition predicts no answer on more than {MAX_SILENT:.0%} "
        "of its questions: such a question has confidence 0 and is wrong, so the smECE of a "
        "mostly silent condition is near 0 whatever the model knows.",
        "",
        "| comparison | dataset | condition A | smECE A | condition B | smECE B | n | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for v in verdicts:
        verdict = ("intervals apart" if v["apart"] else
                   "**no conclusion**: " + "; ".join(
                       f"{c} predicts no answer on {_pct(r)} of its questions"
                       for c, r in v["silent"]) if v["silent"] else
                   "**no conclusion**: intervals overlap" if v["known"] else
                   "**no conclusion**: no interval")
        if v["n"] < MIN_QUESTIONS:
            verdict += f"; only {v['n']} questions"
        lines.append(f"| {v['comparison']} | {v['dataset']} | {v['a']} | {v['a_smece']} | "
                     f"{v['b']} | {v['b_smece']} | {v['n']} | {verdict} |")
    lines.append("")
    return lines


def _audit_lines(result: ReproduceResult) -> list[str]:
    """How the primary B grouped each run's samples (runs without an audit are left out), and
    how long the run's sampling took over all its sessions (not only this invocation's)."""
    lines = [
        f"## How B (`{result.spec.primary_collapse}`) grouped the samples",
        "",
        "| model | dataset | style | T | classes per question | singleton answer classes "
        "| no answer | refusals | ties | sampling time (every session of the run) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for o in result.runs:
        au = o.metrics.get("audit") or {}
        if not au:
            continue
        lines.append(
            f"| {o.run.model.name} | {_dataset_name(o.run.dataset)} | {o.run.style} | "
            f"{o.run.temperature:g} | {au['classes_per_question']:.2f} | "
            f"{_pct(au['singleton_share'])} | {_pct(au['no_answer_rate'])} | "
            f"{_pct(au['refusal_rate'])} | {_pct(au['tie_rate'])} | "
            f"{sampling_note(au.get('sampling') or {}) or '-'} |"
        )
    lines.append("")
    return lines


def _trajectory_lines(result: ReproduceResult) -> list[str]:
    """One table per style of the B-confidence trajectories, warned when too few questions."""
    lines = ["## Intermediate B-confidence trajectories", ""]
    for style, v in result.trajectories.items():
        s = v["summary"]
        nq = s.get("n_questions", s.get("n_trajectories", 0))
        if nq < MIN_QUESTIONS:
            lines += [f"> **Too few questions ({nq} < {MIN_QUESTIONS})**: the {style} "
                      "trajectories below describe this sample only; draw no conclusion "
                      "from them (a rerun can reverse them).", ""]
        lines += [
            f"**{style}** ({s['model']}, {_dataset_name(s['dataset'])}): {s['n_trajectories']} "
            f"trajectories, mean length {s['mean_length']:.1f} tokens, half of the initial "
            "uncertainty resolved at fraction "
            f"{'(never)' if s['half_resolution_fraction'] is None else s['half_resolution_fraction']}.",
            "",
            "| fraction i/n | mean g (ends in z*) | mean g (other) | Brier vs final | "
            "resolved share | AUROC(final = z*) | AUROC(final correct) |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in s["rows"]:
            lines.append(
                f"| {r['fraction']:.2f} | {_fmt(r['mean_g_final'])} | {_fmt(r['mean_g_other'])} | "
                f"{_fmt_ci(r, 'brier')} | {_fmt(r['resolved_share'])} | "
                f"{_fmt_ci(r, 'auroc_final')} | {_fmt_ci(r, 'auroc_correct')} |"
            )
        lines.append("")
    return lines


def _selfpredict_lines(result: ReproduceResult) -> list[str]:
    """The self-prediction table, one row per style, warned when a style has too few questions."""
    lines = [
        "## Self-prediction from first-token probabilities",
        "",
        "| style | n | mean TV(sampled, implied) | mean KL | unmapped mass | "
        "corr(implied, sampled conf.) | smECE implied | smECE sampled |",
        "|---|---|---|---|---|---|---|---|",
    ]
    few = [f"{st} ({v['summary']['n']})" for st, v in result.selfpredict.items()
           if v["summary"]["n"] < MIN_QUESTIONS]
    if few:
        lines[-2:-2] = [f"> **Too few questions** ({', '.join(few)} < {MIN_QUESTIONS}): "
                        "these rows describe this sample only; draw no conclusion from them.",
                        ""]
    for style, v in result.selfpredict.items():
        s = v["summary"]
        lines.append(
            f"| {style} | {s['n']} | {_fmt_ci(s, 'mean_tv')} | {_fmt_ci(s, 'mean_kl')} | "
            f"{_fmt(s.get('mean_unmapped'))} | {_fmt_ci(s, 'corr_confidence', True)} | "
            f"{_fmt(s.get('smece_implied'))} | {_fmt(s.get('smece_sampled'))} |"
        )
    lines.append("")
    return lines


def summary_markdown(result: ReproduceResult) -> str:
    """Markdown tables of every measured number (95% bootstrap CIs in brackets)."""
    lines = _header_lines(result)
    if result.runs:
        lines += _run_table_lines(result)
        lines += _verdict_lines(result)
        lines += _b_sensitivity_lines(result)
        lines += _audit_lines(result)
        lines += _b_check_lines(result)
    if result.trajectories:
        lines += _trajectory_lines(result)
    if result.selfpredict:
        lines += _selfpredict_lines(result)
    if result.figures:
        lines += ["## Figures", ""]
        for name, p in result.figures.items():
            lines.append(f"- {name}: `{p}`")
        lines.append("")
    return "\n".join(lines)
