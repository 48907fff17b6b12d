"""The default B against the hand-labelled benchmark (bench/data/collapse): floors that a
regression of the collapsing functions cannot pass. The floors are the measured figures of
``python bench/collapse.py`` (docs/collapse.md) less a small margin."""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from semcal.collapse import get_collapse
from semcal.collapse.labelled import LabelledItem, headroom, load_labelled, score_collapse
from semcal.types import NO_ANSWER, REFUSAL, Collapsed, Question

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / "data" / "collapse"

#: (model, set) -> (least pairwise F1, largest grade error) of the default B: the measured
#: F1 less 0.02 and the measured grade error plus two questions (60 per dev set, 40 per
#: held-out set). The rules were tuned by reading failures of the dev sets (world-*, gsm8k-cot);
#: the holdout-* sets were labelled afterwards and measure them on questions never read.
FLOORS = {
    ("gemma-3-270m", "world-concise"): (0.92, 0.05),      # measured 0.941, 0.017
    ("gemma-3-270m", "world-sentence"): (0.74, 0.10),     # measured 0.765, 0.067
    ("gemma-3-270m", "world-cot"): (0.78, 0.14),          # measured 0.802, 0.100
    ("gemma-3-270m", "gsm8k-cot"): (0.72, 0.04),          # measured 0.744, 0.000
    ("gemma-3-270m", "holdout-concise"): (0.96, 0.05),    # measured 0.981, 0.000
    ("gemma-3-270m", "holdout-sentence"): (0.87, 0.05),   # measured 0.897, 0.000
    ("gemma-3-270m", "holdout-cot"): (0.87, 0.075),       # measured 0.899, 0.025
    ("smollm2-135m-instruct", "world-concise"): (0.53, 0.10),   # measured 0.558, 0.067
    ("smollm2-135m-instruct", "world-sentence"): (0.72, 0.12),  # measured 0.740, 0.083
    ("smollm2-135m-instruct", "world-cot"): (0.54, 0.12),       # measured 0.561, 0.083
    ("smollm2-135m-instruct", "gsm8k-cot"): (0.85, 0.04),       # measured 0.879, 0.000
    ("smollm2-135m-instruct", "holdout-concise"): (0.64, 0.075),  # measured 0.660, 0.025
    ("smollm2-135m-instruct", "holdout-sentence"): (0.62, 0.10),  # measured 0.646, 0.050
    ("smollm2-135m-instruct", "holdout-cot"): (0.46, 0.10),       # measured 0.488, 0.050
}



@pytest.fixture(scope="module")
def groups() -> dict[tuple[str, str], list[LabelledItem]]:
    out: dict[tuple[str, str], list[LabelledItem]] = defaultdict(list)
    for it in load_labelled(DATA):
        out[(it.model, it.source.split("--", 1)[1])].append(it)
    return out


def test_every_sample_file_is_labelled(groups) -> None:
    assert set(groups) == set(FLOORS)
    for key, items in groups.items():
        n = 40 if key[1].startswith("holdout") else 60
        assert len(items) == n, key
        assert sum(len(it.texts) for it in items) == 6 * n, key


@pytest.mark.parametrize("key", sorted(FLOORS))
def test_default_b_holds_its_floor(groups, key) -> None:
    items = groups[key]
    m = score_collapse(get_collapse("auto", style=items[0].style), items)
    min_f1, max_grade_error = FLOORS[key]
    assert m["f1"] >= min_f1, (key, m)
    assert m["grade_error"] <= max_grade_error, (key, m)


def test_default_b_is_no_worse_than_the_previous_rule_on_direct_answers(groups) -> None:
    """On concise and sentence answers the default B is at least as good as the B it replaced
    (no style, no alias closure, no merge, no non-answer rule) in F1 and in grade error."""
    for (model, set_name), items in groups.items():
        if set_name.endswith("cot"):
            continue
        new = score_collapse(get_collapse("auto", style=items[0].style), items)
        old = score_collapse(get_collapse("auto", aliases=False, merge=False, answers_only=False), items)
        assert new["f1"] >= old["f1"] - 1e-9, (model, set_name, new, old)
        assert new["grade_error"] <= old["grade_error"] + 1e-9, (model, set_name, new, old)


def test_the_benchmark_script_prints_its_table() -> None:
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "collapse.py"), "--collapse",
                        "auto,exact", "--markdown", "--headroom"], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    table, _, second = p.stdout.partition("\n\n")
    lines = table.splitlines()
    assert lines[0].startswith("| B | model | set |") and "grade err [95% CI]" in lines[0]
    assert len(lines) == 2 + 2 * len(FLOORS)
    rows = second.splitlines()
    assert "F1, non-answers right" in rows[0] and len(rows) == 2 + 2 * len(FLOORS)
    # the responses of every row are counted once, in one of the four kinds
    for r in rows[2:]:
        cells = [c.strip() for c in r.strip("|").split("|")]
        assert int(cells[3]) == sum(int(c) for c in cells[4:8]), r


def test_the_ablation_table_has_a_row_per_extraction_rule() -> None:
    from semcal.collapse.extract import RULE_NAMES

    p = subprocess.run([sys.executable, str(ROOT / "bench" / "collapse.py"), "--ablate",
                        "--markdown", "--sets", "world-concise,gsm8k-cot"], capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith("| rule off | stage |") and "ΔF1" in lines[0]
    rows = [[c.strip() for c in r.strip("|").split("|")] for r in lines[2:]]
    assert [r[0] for r in rows] == ["none", *RULE_NAMES]
    assert rows[0][3] == "0" and rows[0][5] == "—"
    by_rule = {r[0]: r for r in rows}
    # concise answers are read by the direct-line rule; the chains of thought by their markers
    assert int(by_rule["marker"][3]) > 0 and float(by_rule["marker"][5]) < 0
    assert by_rule["boxed"][3] == "0" and by_rule["boxed"][5] == "+0.000"
    assert "over 240 questions, 1440 responses, 4 sets" in p.stderr


def test_headroom_splits_the_errors_by_kind() -> None:
    q = Question("q", "What is the capital of Cuba?", ("Havana",))
    item = LabelledItem("m--s", "m", "sentence", q, ("Havana.", "Havana!", "Cuba is an island.",
                                                     "No idea, sorry.", "It might be Santiago"),
                        ("havana", "havana", "<none>", "<refusal>", "santiago"), "havana")

    def b(question, texts):  # reads an answer into the island sentence, misses Santiago
        return Collapsed(labels=("havana", "havana", "cuba is island", REFUSAL, NO_ANSWER),
                         gold=frozenset({"havana"}))

    h = headroom(b, [item])
    assert (h["both_none"], h["both_answer"], h["b_answer_hand_none"], h["b_none_hand_answer"]) == (
        1, 2, 1, 1)
    assert h["f1"] == 1.0  # the only same-class pair (the two Havanas) is right
    # with the island sentence read as no answer, the missed Santiago shares its class
    assert h["f1_nonanswers_right"] == pytest.approx(2 / 3)
    assert h["f1_answers_found"] == 1.0
    # a B that calls everything no answer: all of its pairs are false, the oracles repair them
    h = headroom(lambda question, texts: Collapsed(labels=(NO_ANSWER,) * 5, gold=frozenset()), [item])
    assert h["f1"] < 0.2 and h["b_none_hand_answer"] == 3
    assert h["f1_nonanswers_right"] < h["f1_answers_found"] == 1.0
