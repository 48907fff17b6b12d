"""The metric-level view of a B's error (issue 23): accuracy, mean confidence and smECE from
B's classes against the same metrics from the hand classes, with a paired bootstrap interval
of each difference (semcal.collapse.labelled.metric_deltas, bench/collapse.py --metrics)."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from semcal import metrics as M
from semcal.collapse.labelled import (
    DELTA_METRICS,
    LabelledItem,
    MetricQuestion,
    hand_correct,
    metric_deltas,
    metric_questions,
)
from semcal.errors import InputError
from semcal.types import NO_ANSWER, Collapsed, Question

ROOT = Path(__file__).resolve().parents[1]

#: (question, gold alias, hand labels, gold label): a correct plurality, a unanimous one, a
#: wrong one, a no-answer plurality (confidence 0) and a hand tie
HAND = [
    ("What is the capital of France?", "Paris",
     ("paris", "paris", "paris", "lyon", "lyon", "<none>"), "paris"),
    ("What is the capital of Italy?", "Rome", ("rome",) * 6, "rome"),
    ("What is the capital of Peru?", "Lima",
     ("lima", "lima", "cusco", "cusco", "cusco", "cusco"), "lima"),
    ("Who wrote Hamlet?", "Shakespeare",
     ("<none>", "<none>", "<none>", "<refusal>", "marlowe", "shakespeare"), "shakespeare"),
    ("What is the capital of Chile?", "Santiago",
     ("santiago", "santiago", "valparaiso", "valparaiso", "<none>", "<none>"), "santiago"),
]


def _items() -> list[LabelledItem]:
    return [LabelledItem("m--s", "m", "concise", Question(f"q{i}", q, (alias,)),
                         tuple(f"text {i}.{j}" for j in range(len(hand))), hand, gold)
            for i, (q, alias, hand, gold) in enumerate(HAND)]


def _hand_as_b(question: Question, texts) -> Collapsed:
    """A B that puts every response in its hand class (the analysis's non-answer labels)."""
    _, alias, hand, gold = HAND[int(question.id[1:])]
    labels = tuple(NO_ANSWER if h == "<none>" else h for h in hand)
    return Collapsed(labels=labels, gold=frozenset({gold}))


def test_b_equal_to_the_hand_labels_changes_no_metric() -> None:
    d = metric_deltas(metric_questions(_hand_as_b, _items()), n_boot=300, seed=1)
    assert d["n"] == 5
    for m in DELTA_METRICS:
        assert d[f"{m}_b"] == d[f"{m}_hand"], m
        assert d[f"{m}_delta"] == 0.0 and d[f"{m}_meets"], m
        # paired: every resample sees the same questions on both sides
        assert (d[f"{m}_delta_lo"], d[f"{m}_delta_hi"]) == (0.0, 0.0), m
        assert not d[f"{m}_excludes_zero"], m
    # the hand side read as semcal reads it: a no-answer plurality has confidence 0 and is
    # wrong; in a three-way tie an answer beats no answer and the smaller label wins
    assert d["accuracy_hand"] == pytest.approx(3 / 5)
    assert d["mean_confidence_hand"] == pytest.approx((3 / 6 + 1 + 4 / 6 + 0 + 2 / 6) / 5)


def test_b_splitting_one_class_moves_accuracy_and_confidence_by_the_hand_computed_amount() -> None:
    def split_paris(question: Question, texts) -> Collapsed:
        col = _hand_as_b(question, texts)
        if question.id == "q0":  # one Paris read as its own class: 2 paris vs 2 lyon
            labels = ("paris", "paris", "the city of paris", "lyon", "lyon", NO_ANSWER)
            return Collapsed(labels=labels, gold=col.gold)
        return col

    d = metric_deltas(metric_questions(split_paris, _items()), n_boot=300, seed=0)
    # q0: the tie paris/lyon goes to "lyon" (the smaller label): wrong, confidence 2/6
    # instead of right with 3/6; the other four questions are unchanged
    assert d["accuracy_b"] == pytest.approx(2 / 5)
    assert d["accuracy_delta"] == pytest.approx(-1 / 5)
    assert d["mean_confidence_delta"] == pytest.approx((2 / 6 - 3 / 6) / 5)
    assert not d["accuracy_meets"] and not d["mean_confidence_meets"]
    # q0 moves down on every resample that holds it and nowhere else: never above 0
    assert d["accuracy_delta_hi"] == 0.0 and d["accuracy_delta_lo"] < 0
    assert not d["accuracy_excludes_zero"]
    # smECE is semcal's own, on each side's (confidence, correct) pairs
    conf_b, conf_h = [2 / 6, 1, 4 / 6, 0, 2 / 6], [3 / 6, 1, 4 / 6, 0, 2 / 6]
    y_b, y_h = [0, 1, 0, 0, 1], [1, 1, 0, 0, 1]
    want = float(M.smece(conf_b, y_b)) - float(M.smece(conf_h, y_h))
    assert d["smece_delta"] == pytest.approx(want, abs=1e-12)
    # ten copies of q0: every resample loses the same accuracy and confidence
    d = metric_deltas(metric_questions(split_paris, _items()[:1] * 10), n_boot=100, seed=0)
    assert (d["accuracy_delta_lo"], d["accuracy_delta"], d["accuracy_delta_hi"]) == (-1, -1, -1)
    assert d["accuracy_excludes_zero"] and d["mean_confidence_excludes_zero"]


def test_hand_correct_uses_semcals_tie_rule_and_never_credits_no_answer() -> None:
    assert hand_correct(("b", "b", "a", "a"), "a")  # "a" < "b"
    assert not hand_correct(("b", "b", "a", "a"), "b")
    assert hand_correct(("<none>", "<none>", "x", "x"), "x")  # an answer beats no answer
    assert not hand_correct(("<none>",) * 3, "<none>")


def _random_questions(n: int, seed: int) -> list[MetricQuestion]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        hand = tuple(rng.choice(["a", "b", "c", "<none>"], size=6, p=[0.5, 0.2, 0.2, 0.1]))
        b = tuple(h if rng.random() > 0.15 else "z" for h in hand)  # B misreads some responses
        out.append(MetricQuestion(b, bool(rng.random() < 0.5), hand, hand_correct(hand, "a")))
    return out


def test_paired_interval_contains_the_estimate_and_is_reproducible() -> None:
    qs = _random_questions(80, seed=3)
    d = metric_deltas(qs, n_boot=1000, seed=7)
    for m in DELTA_METRICS:
        assert d[f"{m}_delta_lo"] <= d[f"{m}_delta"] <= d[f"{m}_delta_hi"], (m, d)
        assert d[f"{m}_delta_lo"] < d[f"{m}_delta_hi"], m
    assert metric_deltas(qs, n_boot=1000, seed=7) == d
    other = metric_deltas(qs, n_boot=1000, seed=8)
    assert other["accuracy_delta"] == d["accuracy_delta"]
    assert (other["accuracy_delta_lo"], other["smece_delta_hi"]) != (
        d["accuracy_delta_lo"], d["smece_delta_hi"])
    # no resampling: estimates only
    d0 = metric_deltas(qs, n_boot=0)
    assert d0["smece_delta"] == d["smece_delta"] and math.isnan(d0["smece_delta_lo"])


@pytest.mark.parametrize("bad, message", [
    ([], "no questions"),
    ([MetricQuestion(("a", "b"), True, ("a",), True)], "2 B labels but 1 hand labels"),
    ([MetricQuestion((), True, (), True)], "non-empty list of strings"),
    ([MetricQuestion(("a",), 1, ("a",), True)], "true or false"),  # type: ignore[arg-type]
    ([("a", True, "a", True)], "expected a MetricQuestion"),
])
def test_bad_inputs_are_one_input_error(bad, message) -> None:
    with pytest.raises(InputError, match=message):
        metric_deltas(bad, n_boot=10)


def test_the_benchmark_script_prints_the_metric_table() -> None:
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "collapse.py"), "--collapse", "exact",
                        "--metrics", "--markdown", "--sets", "holdout-concise"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    lines = [x for x in p.stdout.strip().splitlines() if x.startswith("|")]

    def cells(line: str) -> list[str]:  # a "|" inside a cell is written "\\|"
        return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip("|"))]

    head = cells(lines[0])
    assert head[:4] == ["B", "model", "set", "n"]
    assert head[4].startswith("F1 [95% CI] (target ≥ 0.95 direct")
    assert head[5] == "grade err [95% CI] (target ≤ 0.02)"
    for short in ("acc", "conf", "smECE"):
        assert f"{short} B" in head and f"{short} hand" in head
        assert f"Δ{short} [95% CI] (target |Δ| ≤ 0.03)" in head
    assert head[-2:] == ["misses a target", "Δ CI excl. 0"]
    rows = [cells(r) for r in lines[2:]]
    assert [(r[0], r[2], r[3]) for r in rows] == [("exact", "holdout-concise", "40")] * 2
    assert all(len(r) == len(head) for r in rows)
    # exact splits smollm2's concise answers (F1 far below 0.95): that row names the miss
    smollm2 = next(r for r in rows if r[1] == "smollm2-135m-instruct")
    assert float(smollm2[4].split()[0]) < 0.95 and "F1" in smollm2[-2]
    assert re.search(r"^exact: \d of 2 rows meet every target$", p.stdout, re.M)
