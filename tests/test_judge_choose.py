"""The choosing judge (``--collapse-opt prompt=choose-v1``): candidate phrases cut from a
response by text rules, and a judge that replies with the number of one of them."""

from __future__ import annotations

import pytest

from fakes import replying
from semcal.collapse import get_collapse
from semcal.collapse.choose import (
    MAX_CANDIDATES,
    candidate_spans,
    label_text,
    parse_choice,
)
from semcal.collapse.judge import JudgeCollapse
from semcal.errors import InputError
from semcal.types import NO_ANSWER, REFUSAL, Prompt, Question

PARIS = Question("q-paris", "What is the capital of France?", ("Paris",))
PENS = Question("q-pens", "Tom has 3 boxes of 400 pens. How many pens?", ("1,200",), task="math")


def _qa(question: str, response: str, rule: str | None = None) -> list[str]:
    return candidate_spans(question, response, math=False, rule_span=rule, label=label_text)


def test_names_numbers_and_copula_sides_are_candidates_and_the_question_words_are_not() -> None:
    got = _qa(PARIS.question, "The capital of France is Paris, a city on the Seine.")
    assert got[0] == "Paris" and "Seine" in got
    assert "France" not in got and "capital of France" not in got  # only the question's words
    # a capitalised word that opens a sentence is no name; a run of names is one candidate
    got = _qa("Who painted the Mona Lisa?", "Largest of all. It was Leonardo da Vinci in 1503.")
    assert "Largest" not in got and "Leonardo da Vinci" in got and "1503" in got
    # an initial belongs to its name, a full stop ends it
    assert "James L. Madison" in _qa("Who?", "It was James L. Madison. Then he left.")
    assert not any(c.endswith(". Then") for c in _qa("Who?", "It was Poland. Then he left."))
    # "The answer is X": its left side names the answer's place and is no candidate
    assert _qa("Which god?", "The answer is Athena.") == ["Athena"]
    # a short first line is a candidate whole
    assert _qa("What is the capital of Norway?", "olonundaga\nA large place.")[0] == "olonundaga"


def test_candidates_are_distinct_by_label_and_keep_the_rule_span_when_cut() -> None:
    got = _qa("Which city?", "Paris! PARIS. paris, said Paris.")
    assert [label_text(c) for c in got].count("paris") == 1
    many = " ".join(f"Name{i} Town{i} met" for i in range(20))
    got = _qa("Which city?", many + " end", rule="Name0 Town0")
    assert len(got) == MAX_CANDIDATES and got[0] == "Name0 Town0"
    assert got[-1] == "Name19 Town19"  # the last ones are kept: an answer comes at the end


def test_math_candidates_are_the_numbers_one_per_value() -> None:
    from semcal.collapse.mathequiv import math_label

    got = candidate_spans(PENS.question, "3 x 400 = 1,200 and 1200 pens. The answer is 1200.",
                          math=True, rule_span="1200", label=math_label)
    assert [math_label(c) for c in got] == ["3", "400", "1200"]


def test_a_reasoning_response_gives_candidates_from_its_tail_and_the_rule_span() -> None:
    long = "Rome is old. " + "We think more. " * 100 + "So it is Oslo in the end."
    got = candidate_spans("Which city?", long, math=False, rule_span=None, label=label_text,
                          cot=True)
    assert "Oslo" in got and "Rome" not in got
    got = candidate_spans("Which city?", long, math=False, rule_span="Rome", label=label_text,
                          cot=True)
    assert got[0] == "Rome"


@pytest.mark.parametrize(("reply", "n", "expected"), [
    ("2", 3, 2), (" 0", 3, 0), ("3.", 3, 3), ("Number: 1", 2, 1), ("4", 3, None),
    ("Paris", 3, None), ("", 3, None), ("12345", 3, None),
])
def test_parse_choice(reply: str, n: int, expected: int | None) -> None:
    assert parse_choice(reply, n) == expected


def _chooser(pick):
    """A judge stand-in that replies ``pick(candidates)`` (a reply string) to each prompt."""
    def answer(p: Prompt) -> str:
        body = p.messages[-1].content
        lines = body.split("Phrases:\n", 1)[1].split("\n")
        cands = [ln.split(". ", 1)[1] for ln in lines if ln[:1].isdigit() and not ln.startswith("0.")]
        return pick(cands)
    return replying(answer)


def test_the_choosing_judge_labels_by_the_chosen_phrase() -> None:
    judge = _chooser(lambda c: str(c.index("Paris") + 1) if "Paris" in c else "0")
    b = JudgeCollapse(judge, prompt="choose-v1", style="sentence")
    c = b(PARIS, ["I am sure. It is Paris, near Versailles.", "Versailles is a town.",
                  "I don't know.", ""])
    assert c.labels[0] == "paris" and c.labels[1] == NO_ANSWER  # 0: no answer
    assert c.labels[2] == REFUSAL and c.labels[3] == NO_ANSWER  # never asked
    assert len(judge.prompts) == 2 and b.judged == 2 and b.fallbacks == 0
    prompt = judge.prompts[0]
    assert prompt.messages[0].role == "system" and "number" in prompt.messages[0].content
    # the worked examples' answers are numbers in their own candidate lists
    assert [m.content for m in prompt.messages[2:-1:2]] == ["1", "5", "0", "3"]
    assert judge.params[0].max_tokens <= 4


def test_an_invalid_choice_falls_back_to_the_rules_and_is_counted() -> None:
    b = JudgeCollapse(_chooser(lambda c: "Paris"), prompt="choose-v1", style="sentence")
    c = b(PARIS, ["The capital of France is Paris."])
    assert c.labels == ("paris",) and b.fallbacks == 1


def test_a_response_without_candidates_keeps_the_rule_label_unasked() -> None:
    judge = _chooser(lambda c: "1")
    b = JudgeCollapse(judge, prompt="choose-v1", style="cot")
    c = b(PARIS, ["we think about it for a while and then stop"])
    assert judge.prompts == [] and c.labels == (NO_ANSWER,)


def test_choosing_math_labels_by_value() -> None:
    b = JudgeCollapse(_chooser(lambda c: str(len(c))), prompt="choose-v1", style="cot")
    assert b(PENS, ["3 * 400 = 1,200. The answer is 1200."]).labels == ("1200",)


def test_choose_is_a_known_prompt_and_an_unknown_one_names_it() -> None:
    assert get_collapse("judge", sampler=_chooser(lambda c: "0"), prompt="choose-v1").choosing
    with pytest.raises(InputError, match="choose-v1"):
        JudgeCollapse(_chooser(lambda c: "0"), prompt="choose-v9")


def test_a_cached_choice_is_reused_only_for_the_same_candidates(tmp_path, monkeypatch) -> None:
    """The reply is a number into the candidate list, so the list is part of its cache key:
    when the text rules cut other candidates (a newer semcal), the judge is asked again."""
    import semcal.collapse.choose as choose_mod

    cache = tmp_path / "judge.sqlite"
    texts = ["It is Paris, by the Seine.", "Nul\x00here: Paris."]
    first = _chooser(lambda c: "1")
    b = JudgeCollapse(first, prompt="choose-v1", style="sentence", cache_path=cache)
    assert b(PARIS, texts).labels == ("paris", "paris")
    b.close()
    again = _chooser(lambda c: "1")
    b = JudgeCollapse(again, prompt="choose-v1", style="sentence", cache_path=cache)
    assert b(PARIS, texts).labels == ("paris", "paris") and again.prompts == []
    b.close()
    real = choose_mod.candidate_spans
    monkeypatch.setattr(choose_mod, "candidate_spans", lambda *a, **k: real(*a, **k)[::-1])
    other = _chooser(lambda c: "1")
    b = JudgeCollapse(other, prompt="choose-v1", style="sentence", cache_path=cache)
    assert b(PARIS, texts[:1]).labels == ("seine",) and len(other.prompts) == 1
    b.close()
