"""Prompts: k-shot base prompts, chat messages, stop strings, confidence prompts."""

from __future__ import annotations

import math

import pytest

from semcal.backends.base import truncate_at_stop
from semcal.confidence import p_true_from_logprobs
from semcal.confidence import parse_verbalized as parse_verbalized_confidence
from semcal.errors import InputError
from semcal.prompts import (
    MATH_EXAMPLES,
    QA_EXAMPLES,
    STYLES,
    VERBALIZED_STOP,
    build_prompt,
    default_max_tokens,
    example_response,
    p_true_prompt,
    stop_strings,
    verbalized_confidence_prompt,
)
from semcal.types import Prompt, Question

QA = Question("t1", "What is the capital of Austria?", ("Vienna",), "qa")
MATH = Question("t2", "Ana has 3 bags of 5 plums. How many plums does she have?", ("15",), "math")


def _blocks(text: str) -> list[str]:
    return text.split("\n\n")


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("q", [QA, MATH], ids=["qa", "math"])
@pytest.mark.parametrize("k", [0, 1, 5, 8])
def test_base_prompt_has_k_examples_and_ends_with_the_question(style, q, k):
    p = build_prompt(q, style, chat=False, k_shot=k)
    assert isinstance(p, Prompt) and not p.is_chat and p.text
    blocks = _blocks(p.text)
    # header, k examples, then the question
    assert len(blocks) == k + 2
    assert all(b.startswith("Q: ") and "\nA: " in b for b in blocks[1:-1])
    assert blocks[-1] == f"Q: {q.question}\nA:"
    assert p.text.count(q.question) == 1
    pool = MATH_EXAMPLES if q.task == "math" else QA_EXAMPLES
    for block, ex in zip(blocks[1:-1], pool):
        assert block == f"Q: {ex.question}\nA: {example_response(ex, style)}"


def test_examples_differ_by_style():
    c = build_prompt(QA, "concise", False).text
    s = build_prompt(QA, "sentence", False).text
    t = build_prompt(QA, "cot", False).text
    assert "A: Edinburgh\n" in c
    assert "A: The capital of Scotland is Edinburgh.\n" in s
    assert "The answer is Edinburgh.\n" in t
    assert len({c, s, t}) == 3


@pytest.mark.parametrize("style", STYLES)
def test_question_equal_to_an_example_is_never_an_example(style):
    for pool, task in ((QA_EXAMPLES, "qa"), (MATH_EXAMPLES, "math")):
        for i, ex in enumerate(pool):
            # same question, different case/punctuation/spacing
            variant = "  " + ex.question.upper().rstrip("?") + " ?"
            q = Question("x", variant, ("a",), task)
            p = build_prompt(q, style, chat=False, k_shot=5)
            blocks = _blocks(p.text)
            assert len(blocks) == 7
            shown = [b.split("\n")[0][3:] for b in blocks[1:-1]]
            assert ex.question not in shown
            assert len(set(shown)) == 5
            if i < 5:  # it would have been used: the sixth example takes its place
                assert pool[5].question in shown


def test_k_shot_bounds():
    with pytest.raises(InputError, match="k_shot"):
        build_prompt(QA, "concise", False, k_shot=9)
    with pytest.raises(InputError, match="k_shot must be an integer"):
        build_prompt(QA, "concise", False, k_shot=-1)
    q = Question("x", QA_EXAMPLES[0].question, ("Edinburgh",), "qa")
    assert len(_blocks(build_prompt(q, "concise", False, k_shot=7).text)) == 9
    with pytest.raises(InputError, match="only 7 few-shot examples"):
        build_prompt(q, "concise", False, k_shot=8)


@pytest.mark.parametrize("style", STYLES)
def test_stop_strings_end_an_example_answer(style):
    stops = stop_strings(style, chat=False)
    assert stops
    for pool in (QA_EXAMPLES, MATH_EXAMPLES):
        for ex, nxt in zip(pool, pool[1:]):
            response = example_response(ex, style)
            # what a base model writes after "A:" when it continues the pattern
            continuation = f" {response}\n\nQ: {nxt.question}\nA: {example_response(nxt, style)}"
            text, stopped = truncate_at_stop(continuation, stops)
            assert stopped and text == f" {response}"


def test_cot_does_not_stop_at_a_single_newline():
    stops = stop_strings("cot", chat=False)
    text, stopped = truncate_at_stop(" 3 * 5 = 15.\nSo she has 15.\nThe answer is 15.\n\nQ: x", stops)
    assert stopped and text.endswith("The answer is 15.")
    text, _ = truncate_at_stop(" Paris\nis the capital.", stop_strings("concise", False))
    assert text == " Paris"


def test_chat_prompts_are_messages():
    for style in STYLES:
        p = build_prompt(QA, style, chat=True)
        assert p.is_chat and p.text == ""
        roles = [m.role for m in p.messages]
        assert roles == ["system", "user"]
        assert p.messages[-1].content.endswith(f"Question: {QA.question}")
        assert stop_strings(style, chat=True) == ()
    assert "one complete sentence" in build_prompt(QA, "sentence", True).messages[-1].content
    assert "The answer is X." in build_prompt(QA, "cot", True).messages[-1].content
    assert "final number" in build_prompt(MATH, "concise", True).messages[-1].content
    no_system = build_prompt(QA, "concise", True, system=None)
    assert [m.role for m in no_system.messages] == ["user"]


def test_chat_few_shot_turns():
    p = build_prompt(MATH, "cot", True, chat_k_shot=2)
    roles = [m.role for m in p.messages]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user"]
    assert p.messages[2].content == MATH_EXAMPLES[0].cot
    assert p.messages[2].content.endswith("The answer is 19.")


def test_task_selection_and_plain_strings():
    assert "muffins" in build_prompt(MATH, "concise", False).text
    assert "muffins" not in build_prompt(QA, "concise", False).text
    p = build_prompt("Who painted the Mona Lisa?", "concise", False)
    assert "Edinburgh" in p.text  # plain text -> qa examples
    p = build_prompt("What is 2 + 2?", "concise", False, task="math")
    assert "muffins" in p.text
    with pytest.raises(InputError, match="unknown response style"):
        build_prompt(QA, "verbose", False)
    with pytest.raises(InputError):
        build_prompt("   ", "concise", False)


def test_blank_lines_inside_a_question_cannot_fake_an_example_boundary():
    q = Question("m", "First line.\n\n\nSecond line?", ("a",), "qa")
    p = build_prompt(q, "concise", False, k_shot=2)
    assert _blocks(p.text)[-1] == "Q: First line.\nSecond line?\nA:"


def test_default_max_tokens():
    assert default_max_tokens("concise") < default_max_tokens("sentence") < default_max_tokens("cot")
    assert default_max_tokens("sentence") == 48 and default_max_tokens("cot") == 256
    with pytest.raises(InputError):
        default_max_tokens("long")


def test_fewshot_examples_are_one_line_and_well_formed():
    for ex in QA_EXAMPLES + MATH_EXAMPLES:
        for style in STYLES:
            r = example_response(ex, style)
            assert "\n" not in r and r == r.strip()
        assert ex.cot.endswith(f"The answer is {ex.answer}.")
    # math examples: the concise answer is the number that the reasoning arrives at
    for ex in MATH_EXAMPLES:
        assert ex.answer.isdigit() and f"= {ex.answer}" in ex.reasoning


# ----------------------------------------------------------------------------- confidence prompts


def test_verbalized_confidence_prompt_base_and_chat():
    p = verbalized_confidence_prompt(QA, "Vienna", chat=False)
    blocks = _blocks(p.text)
    assert len(blocks) == 1 + 4 + 1
    assert blocks[-1].endswith("Confidence that the proposed answer is correct (0-100%):")
    assert "Proposed answer: Vienna" in blocks[-1]
    assert all(b.rstrip().endswith("%") for b in blocks[1:-1])
    # the continuation " 80%" is cut by the stop string
    assert truncate_at_stop(" 80%\n\nQuestion: x", VERBALIZED_STOP) == (" 80%", True)
    c = verbalized_confidence_prompt(QA, "Vienna", chat=True)
    assert c.is_chat and "How confident are you that this answer is correct (0-100%)?" in c.messages[-1].content
    assert "Question: What is the capital of Austria?" in c.messages[-1].content


def test_confidence_prompts_skip_the_question_itself():
    from semcal.prompts.examples import QA_JUDGED

    q = Question("s", QA_JUDGED[0][0], ("Edinburgh",), "qa")
    for fn in (verbalized_confidence_prompt, p_true_prompt):
        text = fn(q, "Edinburgh", chat=False).text
        assert text.count(QA_JUDGED[0][0]) == 1
        assert len(_blocks(text)) == 6


def test_p_true_prompt_next_token_is_true_or_false():
    p = p_true_prompt(MATH, "15", chat=False)
    assert p.text.endswith("Is the proposed answer true or false?\nAnswer:")
    blocks = _blocks(p.text)
    answers = [b.rsplit("Answer: ", 1)[1] for b in blocks[1:-1]]
    assert set(answers) == {"True", "False"}  # both outcomes shown
    c = p_true_prompt(QA, "Vienna", chat=True)
    assert c.is_chat and "True or False" in c.messages[-1].content


@pytest.mark.parametrize(
    "text, expected",
    [(" 80%", 0.8), ("I am 95 percent sure", 0.95), ("0.7", 0.7), ("100", 1.0), ("0%", 0.0),
     ("Confidence: 42", 0.42), ("about 250 or 60%", 0.6), ("no idea", None), ("", None)],
)
def test_parse_verbalized_confidence(text, expected):
    got = parse_verbalized_confidence(text)
    assert got == expected if expected is None else math.isclose(got, expected)


def test_p_true_from_logprobs():
    lp = {" True": math.log(0.6), "True": math.log(0.1), " False": math.log(0.1), " Maybe": -1.0}
    assert math.isclose(p_true_from_logprobs(lp), 0.7 / 0.8)
    assert p_true_from_logprobs({" Maybe": -0.1}) is None
    assert p_true_from_logprobs({" false": 0.0}) == 0.0
