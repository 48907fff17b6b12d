"""Measure a collapsing function B against hand labels.

A labelled item is one question with its sampled responses, the hand label of each response
(the answer it commits to; :data:`NONE_LABEL` or :data:`REFUSAL_LABEL` when it gives none)
and the hand label that means the gold answer. :func:`score_collapse` runs a B (and a grader)
on the responses and compares:

* **pairwise precision / recall / F1**: over all pairs of responses of a question, "same
  class under B" against "same hand label" (a pair of no-answers is a same-class pair, as B
  puts them in one class too);
* **answer F1**: the same over the pairs whose two responses both give an answer by hand
  (how well B groups answers, apart from how well it recognises non-answers);
* **count error**: mean |plurality count under B - plurality count under the hand labels|;
* **plurality differs**: share of questions whose plurality class under B (as a set of
  responses) is not a largest hand-labelled class;
* **grade error**: share of questions where the grader's verdict on B's prediction differs
  from the hand truth (the largest hand-labelled class is the gold label; when hand classes
  tie for largest, either verdict of the tie is accepted);
* **tie rate**: share of questions whose plurality under B is a tie.

``f1_lo``/``f1_hi`` and ``grade_error_lo``/``grade_error_hi`` are 95% percentile bootstrap
intervals over questions (1,000 resamples, seed 0): with 60 questions a difference of one or
two graded questions is noise.

The labelled files of semcal's own benchmark are in ``bench/data/collapse`` (see its README);
``python bench/collapse.py`` prints the table.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

from semcal.errors import InputError
from semcal.grade import Grader, get_grader, is_tied, plurality
from semcal.types import NO_ANSWER, NON_ANSWERS, REFUSAL, Collapsed, Question

NONE_LABEL = "<none>"
REFUSAL_LABEL = "<refusal>"


@dataclass(frozen=True)
class LabelledItem:
    """One question of a labelled benchmark file."""

    source: str  # "<model>--<set>"
    model: str
    style: str
    question: Question
    texts: tuple[str, ...]
    labels: tuple[str, ...]
    gold: str


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"invalid JSON: {exc.msg}", where=f"{path}:{i}") from None
            if not isinstance(row, dict):
                raise InputError("a line must be a JSON object", where=f"{path}:{i}")
            rows.append(row)
    return rows


def load_labelled(directory: str | Path, *, require_labels: bool = True,
                  sets: Sequence[str] | None = None) -> list[LabelledItem]:
    """Every labelled question of ``directory`` (``<source>.jsonl`` samples and
    ``labels/<source>.jsonl`` hand labels), or only those of the named ``sets`` ("world-cot").
    Sources without a labels file are skipped unless ``require_labels``. Errors name the file
    and line."""
    directory = Path(directory)
    items: list[LabelledItem] = []
    samples = sorted(p for p in directory.glob("*--*.jsonl")
                     if not sets or p.stem.split("--", 1)[1] in sets)
    if not samples:
        raise InputError("no sample files (<model>--<set>.jsonl)", where=str(directory))
    for path in samples:
        source = path.stem
        lpath = directory / "labels" / path.name
        if not lpath.exists():
            if require_labels:
                raise InputError("no labels file for these samples", where=str(lpath))
            continue
        labels = {row.get("id"): (i, row) for i, row in enumerate(_read_jsonl(lpath), 1)}
        for i, row in enumerate(_read_jsonl(path), 1):
            where = f"{path}:{i}"
            if row.get("id") not in labels:
                raise InputError(f"question {row.get('id')!r} has no labels", where=str(lpath))
            li, lab = labels[row["id"]]
            texts = tuple(r["text"] for r in row["responses"])
            hand = lab.get("labels")
            if not isinstance(hand, list) or len(hand) != len(texts) or not all(isinstance(h, str) for h in hand):
                raise InputError(f"'labels' must be {len(texts)} strings, one per response",
                                 where=f"{lpath}:{li}")
            if not isinstance(lab.get("gold"), str) or not lab["gold"].strip():
                raise InputError("'gold' must be a non-empty string", where=f"{lpath}:{li}")
            try:
                q = Question(id=row["id"], question=row["question"], answers=tuple(row["answers"]),
                             task=row.get("task", "qa"))
            except (KeyError, TypeError) as exc:
                raise InputError(f"bad question record: {exc}", where=where) from None
            items.append(LabelledItem(source, row.get("model", ""), row.get("style", ""), q, texts,
                                      tuple(h.strip().lower() for h in hand), lab["gold"].strip().lower()))
    return items


def _top_classes(labels: Sequence[str]) -> list[set[int]]:
    counts = Counter(labels)
    top = max(counts.values())
    return [{i for i, x in enumerate(labels) if x == lab} for lab, c in counts.items() if c == top]


def _f1(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def _bootstrap(per_q: list[tuple[int, int, int, int]], n_boot: int = 1000,
               seed: int = 0) -> tuple[tuple[float, float], tuple[float, float]]:
    """95% percentile intervals of the pairwise F1 and the grade error, resampling questions."""
    import numpy as np

    if not per_q:
        return (math.nan, math.nan), (math.nan, math.nan)
    a = np.asarray(per_q, dtype=float)
    idx = np.random.default_rng(seed).integers(0, len(a), size=(n_boot, len(a)))
    sums = a[idx].sum(axis=1)  # (n_boot, 4)
    tp, fp, fn = sums[:, 0], sums[:, 1], sums[:, 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(tp + fp > 0, tp / (tp + fp), 1.0)
        r = np.where(tp + fn > 0, tp / (tp + fn), 1.0)
        f = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    ge = sums[:, 3] / len(a)
    q = (2.5, 97.5)
    f_lo, f_hi = np.percentile(f, q)
    g_lo, g_hi = np.percentile(ge, q)
    return (float(f_lo), float(f_hi)), (float(g_lo), float(g_hi))


def _canonical_hand(label: str) -> str:
    return {NONE_LABEL: NO_ANSWER, REFUSAL_LABEL: REFUSAL}.get(label, label)


def score_collapse(
    collapse: Callable[[Question, Sequence[str]], Collapsed],
    items: Iterable[LabelledItem],
    grader: Grader | None = None,
    *,
    examples: list[dict[str, Any]] | None = None,
) -> dict[str, float]:
    """The metrics of the module docstring for one B over ``items``.

    ``grader`` defaults to ``get_grader("auto")``. ``examples``, when a list, receives one
    dict per question whose plurality or grade B got wrong (for reading the failures).
    """
    grader = grader or get_grader("auto")
    tp = fp = fn = 0
    atp = afp = afn = 0
    per_q: list[tuple[int, int, int, int]] = []  # (tp, fp, fn, grade error) per question
    n_q = count_err = differs = grade_err = ties = 0
    n_resp = 0
    for it in items:
        col = collapse(it.question, list(it.texts))
        pred = tuple(col.labels)
        if len(pred) != len(it.texts):
            raise InputError(f"B returned {len(pred)} labels for {len(it.texts)} texts",
                             where=f"{it.source} {it.question.id}")
        hand = tuple(_canonical_hand(h) for h in it.labels)
        q_tp, q_fp, q_fn = tp, fp, fn
        for i, j in combinations(range(len(pred)), 2):
            same_b, same_h = pred[i] == pred[j], hand[i] == hand[j]
            tp += same_b and same_h
            fp += same_b and not same_h
            fn += same_h and not same_b
            if hand[i] not in NON_ANSWERS and hand[j] not in NON_ANSWERS:
                atp += same_b and same_h
                afp += same_b and not same_h
                afn += same_h and not same_b
        n_q += 1
        n_resp += len(pred)
        b_label, b_count = plurality(pred)
        _, h_count = plurality(hand)
        count_err += abs(b_count - h_count)
        b_members = {i for i, x in enumerate(pred) if x == b_label}
        tops = _top_classes(hand)
        plural_ok = b_members in tops
        differs += not plural_ok
        ties += is_tied(pred)
        gold = _canonical_hand(it.gold)
        truths = {hand[next(iter(t))] == gold for t in tops}
        verdict = bool(grader(it.question, col, list(it.texts)).correct)
        wrong_grade = verdict not in truths
        grade_err += wrong_grade
        per_q.append((tp - q_tp, fp - q_fp, fn - q_fn, int(wrong_grade)))
        if examples is not None and (wrong_grade or not plural_ok):
            examples.append({"source": it.source, "id": it.question.id,
                             "question": it.question.question, "gold": it.gold,
                             "b_labels": list(pred), "hand": list(it.labels),
                             "b_correct": verdict, "texts": list(it.texts)})
    p, r, f = _f1(tp, fp, fn)
    nan = math.nan
    f1_ci, ge_ci = _bootstrap(per_q)
    return {
        "f1_lo": f1_ci[0], "f1_hi": f1_ci[1],
        "grade_error_lo": ge_ci[0], "grade_error_hi": ge_ci[1],
        "questions": n_q, "responses": n_resp,
        "precision": p, "recall": r, "f1": f, "answer_f1": _f1(atp, afp, afn)[2],
        "count_error": count_err / n_q if n_q else nan,
        "plurality_differs": differs / n_q if n_q else nan,
        "grade_error": grade_err / n_q if n_q else nan,
        "tie_rate": ties / n_q if n_q else nan,
    }


def headroom(collapse: Callable[[Question, Sequence[str]], Collapsed],
             items: Iterable[LabelledItem]) -> dict[str, float]:
    """Where a B's pairwise errors come from, for reading its failures (not a score).

    Per response: ``both_none`` (hand and B: no answer or refusal), ``both_answer``,
    ``b_answer_hand_none`` (B reads an answer into a response that gives none by hand) and
    ``b_none_hand_answer`` (B misses an answer). Then the pairwise F1 as it is (``f1``), as
    it would be if B recognised every hand non-answer (``f1_nonanswers_right``: those
    responses take their hand label), and if B also found every answer it missed
    (``f1_answers_found``: those responses take their hand label too). The gap between
    ``f1`` and ``f1_nonanswers_right`` is what recognising non-answers is worth."""
    items = list(items)
    ran = {(it.question.id, it.texts): (it, collapse(it.question, list(it.texts))) for it in items}
    kinds = Counter({"both_none": 0, "both_answer": 0, "b_answer_hand_none": 0,
                     "b_none_hand_answer": 0})
    for it, col in ran.values():
        for b, h in zip(col.labels, it.labels):
            b_none, h_none = b in NON_ANSWERS, _canonical_hand(h) in NON_ANSWERS
            kinds["both_none" if b_none and h_none else "b_answer_hand_none" if h_none
                  else "b_none_hand_answer" if b_none else "both_answer"] += 1

    def patched(fix_nonanswers: bool, fix_missed: bool) -> Callable[[Question, Sequence[str]], Collapsed]:
        def fn(question: Question, texts: Sequence[str]) -> Collapsed:
            it, col = ran[(question.id, tuple(texts))]
            labels = []
            for b, h in zip(col.labels, it.labels):
                h = _canonical_hand(h)
                if fix_nonanswers and h in NON_ANSWERS:
                    b = h
                elif fix_missed and b in NON_ANSWERS and h not in NON_ANSWERS:
                    b = "\x00hand:" + h  # never equal to a label B made
                labels.append(b)
            return Collapsed(labels=tuple(labels), gold=col.gold)
        return fn

    out: dict[str, float] = {k: float(v) for k, v in kinds.items()}
    out["f1"] = score_collapse(patched(False, False), items)["f1"]
    out["f1_nonanswers_right"] = score_collapse(patched(True, False), items)["f1"]
    out["f1_answers_found"] = score_collapse(patched(True, True), items)["f1"]
    return out


__all__ = ["NONE_LABEL", "REFUSAL_LABEL", "LabelledItem", "headroom", "load_labelled", "score_collapse"]
