"""Final-answer extraction on real-looking model outputs."""

from __future__ import annotations

import pytest

from semcal.collapse.extract import extract_answer
from semcal.collapse.spans import (
    MAX_EXTRACT_CHARS,
    cut_leftovers,
    first_sentence,
    last_boxed,
    strip_hedges,
)
from semcal.errors import InputError

QA_CASES = [
    # (model output, expected span)
    ("Paris", "Paris"),
    ("Paris.", "Paris"),
    (" paris\n", "paris"),
    ("I think it's Paris, France.", "Paris, France"),
    ("I believe the answer is Paris.", "Paris"),
    ("Probably Paris.", "Paris"),
    ("It is Paris.", "Paris"),
    ("It's Paris, I'm fairly sure.", "Paris"),
    ("Paris (I think).", "Paris"),
    ("Canberra, if I recall correctly", "Canberra"),
    ("Paris, Texas", "Paris, Texas"),
    ("Well, I'd say Mount Everest. It is 8,849 m tall.", "Mount Everest"),
    ("The answer is Jupiter.\nQ: What is the smallest planet?\nA: Mercury", "Jupiter"),
    ("Jupiter\n\nQ: Who wrote Hamlet?\nA: William Shakespeare", "Jupiter"),
    ("Jupiter\nQuestion: Who wrote Hamlet?", "Jupiter"),
    ("George Washington<end_of_turn>\n<start_of_turn>user", "George Washington"),
    ("George Washington<|im_end|>", "George Washington"),
    ("**Answer:** Leonardo da Vinci", "Leonardo da Vinci"),
    ("Answer: 1945", "1945"),
    ("A: J. K. Rowling", "J. K. Rowling"),
    ("Washington, D.C.", "Washington, D.C"),
    ("Mt. Kilimanjaro is the answer.", "Mt. Kilimanjaro is the answer"),
    ('"Hamlet"', "Hamlet"),
    ("Yes", "Yes"),
    ("Maybe", "Maybe"),
    ("Let me think step by step. The Nile flows through Egypt. So the answer is the Nile.", "the Nile"),
    ("The final answer is: Canberra", "Canberra"),
    ("The correct answer would be Canberra, not Sydney.", "Canberra, not Sydney"),
    ("", None),
    ("   \n\n  ", None),
    ("The answer is", None),
    ("It is.", None),
    ("...", None),
]


@pytest.mark.parametrize(("text", "expected"), QA_CASES)
def test_qa_extraction(text: str, expected: str | None) -> None:
    assert extract_answer(text, "qa") == expected


MATH_CASES = [
    ("42", "42"),
    ("The answer is 42.\nQ: Tom has 3 apples...", "42"),
    ("#### 1,200", "1,200"),
    ("She pays 3 * 400 = $1,200 in total.\n#### 1200", "1200"),
    ("Natalia sold 48/2 = 24 clips in May.\nAltogether she sold 48+24 = 72 clips.", "72"),
    ("So the final answer is $\\boxed{\\frac{3}{4}}$.", "\\frac{3}{4}"),
    ("\\boxed{\\frac{\\sqrt{2}}{2}} is wrong; the answer is \\boxed{\\dfrac{1}{2}}", "\\dfrac{1}{2}"),
    ("$1,200.00", "1,200.00"),
    ("12 apples", "12 apples"),
    ("The answer is $18.", "18"),
    ("The answer is 3.5.", "3.5"),
    ("Answer: -7", "-7"),
    (".5", ".5"),
    ("She has 5 + 7 = 12 apples", "She has 5 + 7 = 12 apples"),  # short: parsed whole
    ("First, 5 + 7 = 12. Then 12 * 2 = 24. She has 24 apples left.", "24"),
    ("I don't know", "I don't know"),
    ("There is no way to tell from the information given in the problem, sorry.", None),
    ("", None),
]


@pytest.mark.parametrize(("text", "expected"), MATH_CASES)
def test_math_extraction(text: str, expected: str | None) -> None:
    assert extract_answer(text, "math") == expected


def test_repeated_answers_take_the_last_marker() -> None:
    text = "The answer is 10. Wait, I made a mistake: 4 * 6 = 24. The answer is 24."
    assert extract_answer(text, "math") == "24"
    assert extract_answer("Answer: Rome. Hmm, no. Answer: Milan.", "qa") == "Milan"


@pytest.mark.parametrize(
    ("text", "question", "expected"),
    [
        ("The capital of France is Paris.", "What is the capital of France?", "Paris"),
        ("Paris is the capital of France.", "What is the capital of France?", "Paris"),
        ("The largest planet in the solar system is Jupiter, which is a gas giant.",
         "Which planet is the largest in the solar system?", "Jupiter"),
        # (the agent rule names the writer: see test_the_agent_of_a_who_question)
        ("Hamlet was written by William Shakespeare.", "Who wrote Hamlet?", "William Shakespeare"),
        ("Paris", "What is the capital of France?", "Paris"),
    ],
)
def test_copula_cut_with_question(text: str, question: str, expected: str) -> None:
    assert extract_answer(text, "qa", question=question) == expected


def test_boxed_balanced_braces() -> None:
    assert last_boxed("x \\boxed{\\frac{1}{\\sqrt{2}}} y") == "\\frac{1}{\\sqrt{2}}"
    assert last_boxed("\\boxed 5") == "5"
    assert last_boxed("\\boxed{12") == "12"
    assert last_boxed("no box") is None
    assert last_boxed("\\boxed") is None


def test_helpers() -> None:
    assert cut_leftovers("Rome\nQ: next question") == "Rome"
    assert cut_leftovers("Q: inline is fine") == "Q: inline is fine"
    assert strip_hedges("I think it's probably Rome") == "Rome"
    assert strip_hedges("Yes") == "Yes"
    assert strip_hedges("Sofia") == "Sofia"  # "so" is not a hedge inside a word
    assert first_sentence("It costs 3.50 dollars. Cheap.") == "It costs 3.50 dollars"
    assert first_sentence("Dr. Who. Next") == "Dr. Who"


def test_bad_input_and_limits() -> None:
    assert extract_answer(None, "qa") is None
    with pytest.raises(InputError):
        extract_answer(42, "qa")  # type: ignore[arg-type]
    # text past the cap is ignored
    assert extract_answer("Rome" + " " * MAX_EXTRACT_CHARS + "The answer is Milan.", "qa") == "Rome"


# ----------------------------------------------------------------------------- style-aware reading


def test_refusals_are_recognised_but_not_hedged_answers() -> None:
    from semcal.collapse.spans import is_refusal

    for t in ("I don't know.", "I'm sorry, but I can't answer that.", "As an AI, I cannot say.",
              "Unknown.", "The author of the novel is unknown.", "The answer is not available.",
              "I'm not sure."):
        assert is_refusal(t), t
    for t in ("I'm not sure, but I think it's Paris.", "Paris", "The answer is Rome.",
              "Sorry, the answer is Oslo.", "", "Unknown Pleasures is the album."):
        assert not is_refusal(t), t


def test_a_question_echoed_first_is_skipped() -> None:
    q = "What is the capital of Turkey?"
    assert extract_answer("What is the capital of Turkey? It is Istanbul.", question=q) == "Istanbul"
    assert extract_answer("What is the capital of Turkey?", question=q) is not None  # kept as is


def test_direct_styles_read_the_first_line_only() -> None:
    q = "What is the capital of France?"
    text = "The capital of France is Paris.\n\nThe answer is a few words at most."
    assert extract_answer(text, question=q, style="sentence") == "Paris"
    assert extract_answer(text, question=q) == "a few words at most"  # no style: the last marker
    assert extract_answer("Sure, here it is:\nParis", question=q, style="concise") == "Paris"
    assert extract_answer("The element with atomic number 11 is sodium (Na).", style="sentence",
                          question="Which element has atomic number 11?") == "sodium"
    assert extract_answer("The capital of Ukraine is Kiev, not Budapest.",
                          question="What is the capital of Ukraine?", style="sentence") == "Kiev"


def test_cot_counts_only_a_stated_final_answer() -> None:
    unfinished = "Janet has 16 eggs. She eats 3, so 16 - 3 = 13. Then she bakes with 4, so"
    done = "16 - 3 - 4 = 9 eggs, sold at $2 each: 9 * 2 = 18. The answer is 18."
    assert extract_answer(unfinished, "math", style="cot") is None
    assert extract_answer(done, "math", style="cot") == "18"
    assert extract_answer(unfinished, "math", style="cot", unmarked="last_number") == "4"
    assert extract_answer(unfinished, "math") == "4"  # no style: the old last-number rule
    q = "What is the capital of France?"
    plain = "The capital of France is Paris. It lies on the Seine."
    assert extract_answer(plain, question=q, style="cot") is None
    assert extract_answer(plain, question=q, style="cot", unmarked="stated") == "Paris"
    assert extract_answer("France is in Europe and has many", question=q, style="cot",
                          unmarked="stated") is None
    with pytest.raises(InputError):
        extract_answer("x", style="cot", unmarked="guess")


@pytest.mark.parametrize(("question", "text", "want"), [
    ('Who painted "The Garden of Earthly Delights"?',
     'Richard Rogers painted "The Garden of Earthly Delights" with his brother.', "Richard Rogers"),
    ('Who wrote the novel "Madame Bovary"?', "Madame Bovary by Mary Amalier (residential)",
     "Mary Amalier"),
    ('Who wrote the play "Hamlet"?', "Hamlet was written by William Shakespeare.",
     "William Shakespeare"),
    ("Who discovered penicillin?", "Alexander Fleming discovered penicillin in 1928.",
     "Alexander Fleming"),
    ('Who wrote the play "Hamlet"?', "Shakespeare wrote it.", "Shakespeare"),
    ('Who wrote "Crime and Punishment"?',
     '"Crime and Punishment" by Dario Roederman is the sole creator of it.', "Dario Roederman"),
    # not an agent question, or the verb's left side restates the question: unchanged rules
    ("What is the capital of France?", "The capital of France is Paris.", "Paris"),
    ("Who is the author of Dune?", "Frank Herbert", "Frank Herbert"),
    ('Who wrote the novel "Oliver Twist"?', 'Bill Ford is the author of "Oliver Twist."',
     "Bill Ford"),
])
def test_the_agent_of_a_who_question(question: str, text: str, want: str) -> None:
    """"Who <verb> X?" answered "<name> <verb> X" or "X by <name>": the name (B step 1)."""
    assert extract_answer(text, "qa", question=question, style="sentence") == want


@pytest.mark.parametrize(("text", "want"), [
    ("In 2022, World War I began in Europe.", "2022"),
    ("The first iPhone went on sale in July, 2017.", "2017"),
    ("1066 B.C", "1066 BC"),
    ("27 B.C.E.E.", "27 BC"),
    ("79 CE", "79"),
    ("The late 1960s.", "The late 1960s"),  # a decade, not a year: the usual rules
    ("8 years and 196 months", "8 years and 196 months"),  # counts are no years
    ("Between 1914 and 1918.", "Between 1914 and 1918"),  # two years: the usual rules
])
def test_a_year_question_is_answered_by_the_one_year_named(text: str, want: str) -> None:
    q = "In what year did World War I begin?"
    assert extract_answer(text, question=q, style="sentence") == want
    # a number of the question itself is no answer ("patented in 1794")
    assert extract_answer("It was patented in 1794 by Eli Whitney in 1793.",
                          question="In what year was the cotton gin, patented in 1794, built?",
                          style="sentence") == "1793"
    # in a chain of thought, a sentence restating the question gives its year
    assert extract_answer("In 2017, the first iPhone went on sale in the United States.",
                          question="In what year did the first iPhone go on sale?", style="cot",
                          unmarked="stated") == "2017"


def test_the_prompts_placeholder_is_no_answer() -> None:
    """A model that repeats the instruction 'finish with "The answer is X."' answers nothing;
    an earlier marker that states something still counts."""
    q = "Who created the detective Sherlock Holmes?"
    assert extract_answer('The answer is X. I will finish with "The answer is X."', question=q,
                          style="cot") is None
    assert extract_answer("The answer is X.", question=q, style="concise") is None
    assert extract_answer("The answer is Doyle. Finish with: The answer is X.", question=q,
                          style="cot") == "Doyle"


def test_a_single_capital_then_a_sentence_opener_ends_the_sentence() -> None:
    assert first_sentence("The chemical symbol for potassium is K. To answer, log in.") == \
        "The chemical symbol for potassium is K"
    assert first_sentence("J. K. Rowling wrote it. Then") == "J. K. Rowling wrote it"
    assert first_sentence("A. The capital is Copenhagen.") == "A. The capital is Copenhagen"


def test_a_long_statement_that_does_not_restate_the_question_answers_nothing() -> None:
    q = "What is the capital of Kyrgyzstan?"
    assert extract_answer("Kyrgyzstan is a country located in the Asian part of Asia.",
                          question=q, style="sentence") is None
    assert extract_answer("The capital of Kyrgyzstan is Bishkek.", question=q, style="sentence") == "Bishkek"
    assert extract_answer("Bishkek is the capital.", question=q, style="sentence") == "Bishkek"


def test_short_and_agent_replies_in_a_chain_of_thought() -> None:
    q = 'Who wrote the novel "To Kill a Mockingbird"?'
    def stated(text: str) -> str | None:
        return extract_answer(text, question=q, style="cot", unmarked="stated")

    assert stated("Harper Lee") == "Harper Lee"
    assert stated("Who wrote it? It was written by Harper Lee. She was born in 1926.") == "Harper Lee"
    assert stated("First I think about the novel and its author, then I") is None


# -- the rules table (extract.RULES) --------------------------------------------------------

from semcal.collapse.extract import RULE_NAMES, RULES, STAGES, check_disabled  # noqa: E402

RULE_EXAMPLES = [pytest.param(rule, ex, id=f"{rule.name}-{i}")
                 for rule in RULES for i, ex in enumerate(rule.examples)]


def test_the_rules_table_is_well_formed() -> None:
    assert len(set(RULE_NAMES)) == len(RULES)
    assert [r.stage for r in RULES] == sorted((r.stage for r in RULES), key=STAGES.index)
    for rule in RULES:
        assert rule.examples, rule.name
        assert rule.doc, rule.name
        assert rule.tasks <= {"qa", "math"} and rule.tasks, rule.name


@pytest.mark.parametrize(("rule", "example"), RULE_EXAMPLES)
def test_each_rule_gives_its_examples_and_is_needed_for_them(rule, example) -> None:
    assert example.run() == example.expected
    # the example shows what the rule does: without it the answer differs
    assert example.run(disabled={rule.name}) != example.expected
    # an example is read under a setting its rule applies to
    kind = "math" if example.task == "math" else "qa"
    assert rule.applies(kind, example.style, example.unmarked)


def test_switching_rules_off_is_checked() -> None:
    assert check_disabled("boxed, marker") == frozenset({"boxed", "marker"})
    assert check_disabled(["hedges"]) == frozenset({"hedges"})
    assert check_disabled(None) == frozenset()
    with pytest.raises(InputError, match="unknown extraction rule"):
        check_disabled({"boxd"})
    with pytest.raises(InputError, match="unknown extraction rule"):
        extract_answer("Paris", disabled=[3])
    # all rules off: nothing is found
    assert extract_answer("The answer is Paris.", disabled=RULE_NAMES) is None
    assert extract_answer("\\boxed{5}", "math", disabled={"boxed"}) == "\\boxed{5}"
