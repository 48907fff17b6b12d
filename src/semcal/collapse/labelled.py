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

:func:`metric_deltas` is the metric-level view: accuracy, mean confidence and smECE computed
from B's classes and from the hand classes on the same questions, and the difference
(B - hand) of each with a paired bootstrap interval. It takes plain per-question inputs
(:class:`MetricQuestion`), so it serves any hand labels, not only this benchmark's;
:func:`metric_questions` builds them from labelled items, a B and a grader.

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
from semcal.grade import (
    Grader,
    get_grader,
    is_empty_answer,
    is_tied,
    plurality,
)
from semcal.limits import regular_file
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
    regular_file(path, "label file")  # a FIFO would block for ever
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
    """95% percentile intervals of the pairwise F1 and the grade error, resampling questions
    with the resamples of :func:`semcal.metrics.bootstrap.resample_indices` (the analysis's)."""
    import numpy as np

    from semcal.metrics.bootstrap import percentile_interval, resample_indices

    if not per_q:
        return (math.nan, math.nan), (math.nan, math.nan)
    a = np.asarray(per_q, dtype=float)
    sums = np.concatenate([a[idx].sum(axis=1) for idx in resample_indices(len(a), n_boot, seed)])
    tp, fp, fn = sums[:, 0], sums[:, 1], sums[:, 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(tp + fp > 0, tp / (tp + fp), 1.0)
        r = np.where(tp + fn > 0, tp / (tp + fn), 1.0)
        f = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    ge = sums[:, 3] / len(a)
    return percentile_interval(f), percentile_interval(ge)


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


#: the metrics :func:`metric_deltas` compares, named as in :data:`semcal.metrics.METRICS`
DELTA_METRICS = ("accuracy", "mean_confidence", "smece")
#: the target for each metric: |B - hand| at most this much
DELTA_TARGET = 0.03


@dataclass(frozen=True)
class MetricQuestion:
    """One question for :func:`metric_deltas`: B's class label of each response and the
    grader's verdict on B's plurality class; the hand label of each of the same responses
    (:data:`NONE_LABEL` / :data:`REFUSAL_LABEL` or the analysis's own non-answer labels for
    no answer) and whether the hand plurality class is the gold answer (:func:`hand_correct`)."""

    b_labels: tuple[str, ...]
    b_correct: bool
    hand_labels: tuple[str, ...]
    hand_correct: bool


def hand_correct(hand_labels: Sequence[str], gold: str) -> bool:
    """Whether the prediction the hand labels make is correct: their plurality class, with
    semcal's tie rules (:func:`semcal.grade.plurality`), is the ``gold`` label. A plurality of
    no answers or refusals is never correct."""
    prediction, _ = plurality([_canonical_hand(h) for h in hand_labels])
    return prediction not in NON_ANSWERS and prediction == _canonical_hand(gold)


def metric_questions(
    collapse: Callable[[Question, Sequence[str]], Collapsed],
    items: Iterable[LabelledItem],
    grader: Grader | None = None,
) -> list[MetricQuestion]:
    """Run B and the grader (default ``get_grader("auto")``) on each item the way the analysis
    does (an empty response is no answer whatever B says; the grader sees B's classes and the
    texts) and put the result next to the item's hand labels and hand correctness."""
    grader = grader or get_grader("auto")
    out = []
    for it in items:
        texts = list(it.texts)
        col = collapse(it.question, texts)
        if len(col.labels) != len(texts):
            raise InputError(f"B returned {len(col.labels)} labels for {len(texts)} texts",
                             where=f"{it.source} {it.question.id}")
        labels = tuple(NO_ANSWER if is_empty_answer(t) else lab for t, lab in zip(texts, col.labels))
        verdict = grader(it.question, Collapsed(labels=labels, gold=col.gold), texts)
        out.append(MetricQuestion(labels, bool(verdict.correct), it.labels,
                                  hand_correct(it.labels, it.gold)))
    return out


def _semantic_confidence(labels: Sequence[str]) -> float:
    """The run's semantic confidence of a question (the one function the analysis uses)."""
    from semcal.confidence import semantic_confidence

    return semantic_confidence(labels)


def _check_question(q: Any, i: int) -> MetricQuestion:
    where = f"question {i}"
    if not isinstance(q, MetricQuestion):
        raise InputError(f"expected a MetricQuestion, got {type(q).__name__}", where=where)
    for name in ("b_labels", "hand_labels"):
        labels = getattr(q, name)
        if isinstance(labels, str) or not all(isinstance(x, str) for x in labels) or not labels:
            raise InputError(f"'{name}' must be a non-empty list of strings", where=where)
    if len(q.b_labels) != len(q.hand_labels):
        raise InputError(f"{len(q.b_labels)} B labels but {len(q.hand_labels)} hand labels",
                         where=where)
    if not isinstance(q.b_correct, bool) or not isinstance(q.hand_correct, bool):
        raise InputError("'b_correct' and 'hand_correct' must be true or false", where=where)
    return q


def metric_deltas(questions: Iterable[MetricQuestion], n_boot: int = 1000,
                  seed: int = 0) -> dict[str, Any]:
    """Accuracy, mean confidence and smECE from B's classes and from the hand classes of the
    same questions, and their difference B - hand with a paired bootstrap interval.

    Confidence is the analysis's semantic confidence (plurality share, 0 for a no-answer or
    refusal plurality: :func:`semcal.grade.answer_confidence`); the metric values come from
    :func:`semcal.metrics.summarize` and the resampled ones from
    :func:`semcal.metrics.bootstrap_distribution`, the functions the analysis reports with.
    Pairing: both sides are resampled with the same ``(n, n_boot, seed)`` and so on the same
    resamples of questions; each resample's difference is taken, and ``lo``/``hi`` are the
    2.5 and 97.5 percentiles of those differences. (smECE is biased upward on resamples, on
    both sides alike; the interval of its difference need not contain the estimate.)

    Keys: ``n``, ``n_boot``, ``seed``, ``target`` (:data:`DELTA_TARGET`) and, for each metric
    ``m`` of :data:`DELTA_METRICS`: ``m_b``, ``m_hand``, ``m_delta``, ``m_delta_lo``,
    ``m_delta_hi`` (NaN with ``n_boot=0``), ``m_meets`` (|delta| <= target) and
    ``m_excludes_zero`` (the interval lies above or below 0).
    """
    from semcal.metrics import bootstrap_distribution, percentile_interval, summarize
    from semcal.metrics._validate import check_n_boot

    nb = check_n_boot(n_boot, "metric_deltas", allow_zero=True)
    qs = [_check_question(q, i) for i, q in enumerate(questions, 1)]
    if not qs:
        raise InputError("no questions to compare", where="metric_deltas")
    sides = {
        "b": ([_semantic_confidence(q.b_labels) for q in qs], [float(q.b_correct) for q in qs]),
        "hand": ([_semantic_confidence([_canonical_hand(h) for h in q.hand_labels]) for q in qs],
                 [float(q.hand_correct) for q in qs]),
    }
    values = {side: summarize(c, y, n_boot=0) for side, (c, y) in sides.items()}
    out: dict[str, Any] = {"n": len(qs), "n_boot": nb, "seed": seed, "target": DELTA_TARGET}
    for m in DELTA_METRICS:
        delta = values["b"][m] - values["hand"][m]
        lo = hi = math.nan
        if nb:
            draws = {side: bootstrap_distribution(m, c, y, nb, seed) for side, (c, y) in sides.items()}
            lo, hi = percentile_interval(draws["b"] - draws["hand"])
        out.update({f"{m}_b": values["b"][m], f"{m}_hand": values["hand"][m], f"{m}_delta": delta,
                    f"{m}_delta_lo": lo, f"{m}_delta_hi": hi,
                    f"{m}_meets": abs(delta) <= DELTA_TARGET + 1e-12,
                    # float noise of two equal means is not a difference
                    f"{m}_excludes_zero": bool(lo > 1e-9 or hi < -1e-9)})
    return out


__all__ = ["DELTA_METRICS", "DELTA_TARGET", "NONE_LABEL", "REFUSAL_LABEL", "LabelledItem",
           "MetricQuestion", "hand_correct", "headroom", "load_labelled", "metric_deltas",
           "metric_questions", "score_collapse"]
