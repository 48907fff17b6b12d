"""Collapsing functions B against hand labels (bench/data/collapse, see its README).

    python bench/collapse.py                         # auto, exact, previous, embedding
    python bench/collapse.py --collapse auto --examples 5
    python bench/collapse.py --collapse auto --headroom     # where the errors come from
    python bench/collapse.py --collapse auto,judge --judge-cache /tmp/judge.sqlite   # semcal[judge]
    python bench/collapse.py --collapse auto,exact --metrics   # what B's error does to the numbers
    python bench/collapse.py --ablate --markdown     # the default B with each extraction rule off

For each B x model x set it prints: questions, pairwise same-class precision / recall / F1
against the hand labels, the mean |plurality count - hand plurality count|, the share of
questions whose plurality class differs from the hand one, the grade error (the auto grader
on B's prediction vs the hand truth) and B's tie rate. Definitions:
:mod:`semcal.collapse.labelled`.

With ``--metrics`` it prints instead the table against the default B's targets, per B x model x
set: pairwise F1 and grade error (as above), then accuracy, mean confidence and smECE computed
from B's classes (graded by the auto grader) and from the hand classes on the same questions,
and each difference B - hand with a paired bootstrap 95% interval
(:func:`semcal.collapse.labelled.metric_deltas`; 1,000 resamples of questions, seed 0). The
targets: F1 >= 0.95 (direct) / 0.90 (cot), grade error <= 0.02 and |B - hand| <= 0.03 for each
metric; ``misses a target`` names those a row misses, ``Δ CI excl. 0`` the metrics whose
difference has an interval that excludes 0. A last line counts the rows that meet every target.

With ``--ablate`` it prints instead one row per extraction rule
(:data:`semcal.collapse.extract.RULES`): the default B (``auto``, each set with its own style)
with that rule switched off (its ``disabled`` option), scored over all the chosen sets as one
sample of questions: pairwise F1 and grade error with their 95% bootstrap intervals, the change
of each against all rules on, and how many responses' labels change. ``--sets`` narrows it.

The Bs:
- ``auto``: the default B (style-aware extraction, refusals, gold-alias closure,
  containment merge);
- ``exact``: per-text normalised exact match with the same style-aware extraction;
- ``previous``: the default B before the benchmark existed (no style: a chain of thought
  without a stated answer is read by its last number or its first sentence; no alias closure,
  no merge);
- ``embedding``: MiniLM clustering of the extracted answers (needs ``semcal[embed]``);
- ``judge``: a judge model extracts each response's answer (``--judge-model``, and
  ``--judge-backend`` / ``--judge-base-url`` for a server).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from semcal.collapse import get_collapse
from semcal.collapse.extract import RULES, Rule
from semcal.collapse.judge import PROMPT_VERSION
from semcal.collapse.labelled import (
    DELTA_TARGET,
    LabelledItem,
    headroom,
    load_labelled,
    metric_deltas,
    metric_questions,
    score_collapse,
)

DATA = Path(__file__).resolve().parent / "data" / "collapse"
COLUMNS = ("B", "model", "set", "n", "P", "R", "F1 [95% CI]", "ans F1", "|Δcount|", "plur≠",
           "grade err [95% CI]", "ties")
ABLATE_COLUMNS = ("rule off", "stage", "applies to", "labels changed", "F1 [95% CI]", "ΔF1",
                  "grade err [95% CI]", "Δgrade err")
HEADROOM_COLUMNS = ("B", "model", "set", "responses", "both none", "both answer",
                    "B answer, hand none", "B none, hand answer", "F1",
                    "F1, non-answers right", "F1, + missed answers found")
#: (key in metric_deltas, short name) of the metric-level table
DELTA_NAMES = (("accuracy", "acc"), ("mean_confidence", "conf"), ("smece", "smECE"))
#: the issue's targets for the default B besides |Δ| <= DELTA_TARGET: pairwise F1 at least
#: F1_TARGET[style is cot] and a grade error of at most GRADE_ERROR_TARGET
F1_TARGET = {False: 0.95, True: 0.90}
GRADE_ERROR_TARGET = 0.02
METRIC_COLUMNS = ("B", "model", "set", "n",
                  f"F1 [95% CI] (target ≥ {F1_TARGET[False]:g} direct, {F1_TARGET[True]:g} CoT)",
                  f"grade err [95% CI] (target ≤ {GRADE_ERROR_TARGET:g})",
                  *(c for _, short in DELTA_NAMES
                    for c in (f"{short} B", f"{short} hand",
                              f"Δ{short} [95% CI] (target |Δ| ≤ {DELTA_TARGET:g})")),
                  "misses a target", "Δ CI excl. 0")


def metric_row(name: str, model: str, set_name: str, d: dict[str, Any],
               m: dict[str, float], cot: bool) -> tuple[Any, ...]:
    """One row of the metric-level table from :func:`metric_deltas`' dict ``d`` and
    :func:`score_collapse`'s ``m`` on the same questions (``cot``: the set's style is cot)."""
    cells: list[Any] = [name, model, set_name, d["n"],
                        f"{m['f1']:.3f} [{m['f1_lo']:.2f}, {m['f1_hi']:.2f}]",
                        f"{m['grade_error']:.3f} [{m['grade_error_lo']:.2f}, "
                        f"{m['grade_error_hi']:.2f}]"]
    misses, excludes = [], []
    if not m["f1"] >= F1_TARGET[cot]:
        misses.append("F1")
    if not m["grade_error"] <= GRADE_ERROR_TARGET:
        misses.append("grade err")
    for key, short in DELTA_NAMES:
        lo, hi = d[f"{key}_delta_lo"], d[f"{key}_delta_hi"]
        cells += [f"{d[f'{key}_b']:.3f}", f"{d[f'{key}_hand']:.3f}",
                  f"{d[f'{key}_delta']:+.3f} [{lo:+.3f}, {hi:+.3f}]"]
        if not d[f"{key}_meets"]:
            misses.append(short)
        if d[f"{key}_excludes_zero"]:
            excludes.append(short)
    return (*cells, ", ".join(misses) or "—", ", ".join(excludes) or "—")


def make_collapse(name: str, style: str, judge: Any = None, judge_cache: str | None = None) -> Any:
    if name == "auto":
        return get_collapse("auto", style=style)
    if name == "exact":
        return get_collapse("exact", style=style)
    if name == "previous":
        return get_collapse("auto", aliases=False, merge=False, answers_only=False)
    if name == "embedding":
        return get_collapse("embedding", style=style)
    if name == "judge" or name.startswith("judge:"):  # judge:VERSION picks a prompt version
        opts = {"cache_path": judge_cache} if judge_cache else {}
        if ":" in name:
            opts["prompt"] = name.split(":", 1)[1]
        return get_collapse("judge", sampler=judge, style=style, **opts)
    raise SystemExit(f"unknown B {name!r}")


def applies_to(rule: Rule) -> str:
    """Where a rule applies, in a few words: "qa", "math, cot (unmarked none/stated)"."""
    out = "+".join(t for t in ("qa", "math") if t in rule.tasks)
    if rule.styles is not None:
        out += ", " + "/".join(sorted(rule.styles))
    if rule.unmarked is not None:
        out += f" (unmarked {'/'.join(sorted(rule.unmarked))})"
    return out


def ablation_rows(groups: dict[tuple[str, str], list[LabelledItem]]) -> tuple[list[tuple[Any, ...]], int]:
    """Rows of the ``--ablate`` table and the number of responses scored: all rules on, then
    the default B with each rule of :data:`RULES` switched off in turn, every set labelled with
    its own style and all sets scored as one sample of questions."""
    keys = sorted(groups)
    items = [it for key in keys for it in groups[key]]

    def run(disabled: frozenset[str]) -> tuple[dict[str, float], list[tuple[str, ...]]]:
        by_item: dict[int, Any] = {}  # each item's B (its set's style), by its question object
        for key in keys:
            fn = get_collapse("auto", style=groups[key][0].style, disabled=disabled)
            by_item.update((id(it.question), fn) for it in groups[key])

        def b(question: Any, texts: Any) -> Any:
            return by_item[id(question)](question, texts)

        labels = [b(it.question, list(it.texts)).labels for it in items]
        return score_collapse(b, items), labels

    base, base_labels = run(frozenset())

    def row(name: str, stage: str, where: str, m: dict[str, float], changed: int) -> tuple[Any, ...]:
        same = name == "none"
        return (name, stage, where, changed,
                f"{m['f1']:.3f} [{m['f1_lo']:.2f}, {m['f1_hi']:.2f}]",
                "—" if same else f"{m['f1'] - base['f1']:+.3f}",
                f"{m['grade_error']:.3f} [{m['grade_error_lo']:.2f}, {m['grade_error_hi']:.2f}]",
                "—" if same else f"{m['grade_error'] - base['grade_error']:+.3f}")

    rows = [row("none", "—", "—", base, 0)]
    for rule in RULES:
        m, labels = run(frozenset({rule.name}))
        changed = sum(a != b for la, lb in zip(labels, base_labels) for a, b in zip(la, lb))
        rows.append(row(rule.name, rule.stage, applies_to(rule), m, changed))
    return rows, sum(len(it.texts) for it in items)


def default_judge_model() -> str:
    """The embedded judge model when its extra is installed, else the small instruct model."""
    try:
        from semcal.collapse.judge import default_judge_spec

        return default_judge_spec().model
    except Exception:  # not installed: the one model every install has
        return "smollm2-135m-instruct"


def _count_judged(fn: Any, judged: dict[str, int]) -> None:
    if hasattr(fn, "fallbacks"):
        judged["judged"] += fn.judged
        judged["fallbacks"] += fn.fallbacks


def judge_sampler(args: argparse.Namespace) -> Any:
    from semcal.backends import get_sampler

    opts: dict[str, Any] = {}
    if args.judge_base_url:
        opts["base_url"] = args.judge_base_url
    if args.judge_threads:
        opts["n_threads"] = args.judge_threads
    return get_sampler(args.judge_backend, args.judge_model, **opts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(DATA), help="labelled data directory")
    ap.add_argument("--collapse", default="auto,exact,previous,embedding",
                    help="comma-separated Bs: auto, exact, previous, embedding, judge "
                         "(judge:VERSION: another judge prompt, e.g. judge:extract-v2)")
    ap.add_argument("--sets", default="", help="only these sets (comma-separated), e.g. world-sentence")
    ap.add_argument("--judge-model", default=default_judge_model(),
                    help="the judge of the judge B (default: the embedded judge model when "
                         "semcal[judge] is installed, else smollm2-135m-instruct)")
    ap.add_argument("--judge-cache", default=None,
                    help="SQLite file that keeps the judge's replies, so a second table (F1, "
                         "then --metrics) asks the judge nothing again")
    ap.add_argument("--judge-threads", type=int, default=None,
                    help="llama.cpp threads of the judge (default: every core; give 1 on a "
                         "busy machine, where spinning threads slow each other)")
    ap.add_argument("--judge-backend", default="llamacpp")
    ap.add_argument("--judge-base-url", default=None)
    ap.add_argument("--examples", type=int, default=0, help="print this many failures per B")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    ap.add_argument("--headroom", action="store_true",
                    help="also print where each B's errors come from: responses by (B, hand) "
                         "answer or non-answer, and the F1 if B recognised every non-answer")
    ap.add_argument("--metrics", action="store_true",
                    help="print instead the table against the default B's targets: pairwise F1 "
                         "and grade error, then accuracy, mean confidence and smECE from B's "
                         "classes and from the hand classes, and B - hand with a paired "
                         "bootstrap 95%% interval")
    ap.add_argument("--ablate", action="store_true",
                    help="print instead the default B (auto) with each extraction rule switched "
                         "off in turn: F1, grade error and their change against all rules on")
    args = ap.parse_args(argv)

    sets = [x for x in args.sets.split(",") if x] or None
    items = load_labelled(args.data, sets=sets)
    groups: dict[tuple[str, str], list[LabelledItem]] = defaultdict(list)
    for it in items:
        groups[(it.model, it.source.split("--", 1)[1])].append(it)
    if args.ablate:
        t0 = time.perf_counter()
        rows, n_responses = ablation_rows(groups)
        print(f"# ablation of auto over {len(items)} questions, {n_responses} responses, "
              f"{len(groups)} sets: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        print_table(ABLATE_COLUMNS, rows, args.markdown)
        return 0
    bs = args.collapse.split(",")
    judge = judge_sampler(args) if any(b.split(":")[0] == "judge" for b in bs) else None

    rows = []
    extra = []
    for b in bs:
        judged = {"judged": 0, "fallbacks": 0}  # per B
        examples: list[dict[str, Any]] = []
        t0 = time.perf_counter()
        # which judge and prompt made the row
        name = (f"judge[{args.judge_model}, {b.partition(':')[2] or PROMPT_VERSION}]"
                if b.split(":")[0] == "judge" else b)
        for (model, set_name), its in sorted(groups.items()):
            fn = make_collapse(b, its[0].style, judge, args.judge_cache)
            if hasattr(fn, "prepare"):  # the judge: every response of the set in batches
                fn.prepare((it.question, it.texts) for it in its)
            m = score_collapse(fn, its, examples=examples)
            _count_judged(fn, judged)
            if args.metrics:
                d = metric_deltas(metric_questions(fn, its), n_boot=1000, seed=0)
                rows.append(metric_row(name, model, set_name, d, m, its[0].style == "cot"))
                continue
            rows.append((name, model, set_name, m["questions"], f"{m['precision']:.3f}",
                         f"{m['recall']:.3f}",
                         f"{m['f1']:.3f} [{m['f1_lo']:.2f}, {m['f1_hi']:.2f}]",
                         f"{m['answer_f1']:.3f}", f"{m['count_error']:.2f}",
                         f"{m['plurality_differs']:.3f}",
                         f"{m['grade_error']:.3f} [{m['grade_error_lo']:.2f}, {m['grade_error_hi']:.2f}]",
                         f"{m['tie_rate']:.3f}"))
            if args.headroom:
                h = headroom(fn, its)
                extra.append((name, model, set_name, sum(len(it.texts) for it in its),
                              *(int(h[k]) for k in ("both_none", "both_answer",
                                                    "b_answer_hand_none", "b_none_hand_answer")),
                              *(f"{h[k]:.3f}" for k in ("f1", "f1_nonanswers_right",
                                                        "f1_answers_found"))))
        print(f"# {b}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        if b.split(":")[0] == "judge":
            print(f"# judge fallbacks to the rules (answer not found in the response): "
                  f"{judged['fallbacks']} of {judged['judged']} judged responses", file=sys.stderr)
        for ex in examples[: args.examples]:
            print(f"\n[{b}] {ex['source']} {ex['id']}: {ex['question']} (gold {ex['gold']!r}, "
                  f"B graded {'correct' if ex['b_correct'] else 'wrong'})", file=sys.stderr)
            for t, bl, h in zip(ex["texts"], ex["b_labels"], ex["hand"]):
                print(f"   B={bl!r:28} hand={h!r:20} {t.strip()[:110]!r}", file=sys.stderr)
    print_table(METRIC_COLUMNS if args.metrics else COLUMNS, rows, args.markdown)
    if args.metrics:
        for b in dict.fromkeys(r[0] for r in rows):
            mine = [r for r in rows if r[0] == b]
            print(f"\n{b}: {sum(r[-2] == '—' for r in mine)} of {len(mine)} rows meet every target")
    if args.headroom and not args.metrics:
        print()
        print_table(HEADROOM_COLUMNS, extra, args.markdown)
    return 0


def print_table(columns: tuple[str, ...], rows: list[tuple[Any, ...]], markdown: bool) -> None:
    if markdown:
        def line(r: tuple[Any, ...]) -> str:  # a "|" inside a cell (|Δ|) is escaped
            return "| " + " | ".join(str(x).replace("|", "\\|") for x in r) + " |"

        print(line(columns))
        print("|" + "|".join("---" if i < 3 else "---:" for i in range(len(columns))) + "|")
        for r in rows:
            print(line(r))
    else:
        widths = [max(len(str(x)) for x in col) for col in zip(columns, *rows)]
        for r in (columns, *rows):
            print("  ".join(str(x).ljust(w) for x, w in zip(r, widths)))


if __name__ == "__main__":
    sys.exit(main())
