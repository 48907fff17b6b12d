"""Question-set loading: adapters on real-format fixtures, malformed input, bundled sets."""

from __future__ import annotations

import ast
import gzip
import importlib.util
import json
import operator
import re
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from semcal.data import (
    FORMATS,
    bundled,
    detect_adapter,
    extract_boxed,
    gsm8k_final_answer,
    list_bundled,
    load_questions,
    stable_id,
)
from semcal.errors import InputError, MissingExtraError
from semcal.types import Question

FIX = Path(__file__).parent / "fixtures" / "data"
ROOT = Path(__file__).resolve().parents[1]
GSM8K_TEST = ROOT.parent / "shared" / "data" / "gsm8k" / "test.jsonl"
if not GSM8K_TEST.exists():
    GSM8K_TEST = Path("/work/shared/data/gsm8k/test.jsonl")


# ----------------------------------------------------------------------------- adapters


def test_triviaqa_fixture():
    qs = load_questions(FIX / "triviaqa.jsonl", format="triviaqa")
    assert [q.id for q in qs] == ["tc_33", "tc_40", "tc_51"]  # blank line skipped
    assert qs[0].answers[0] == "Sunset Boulevard"  # answer.value first
    assert "Sunset Blvd" in qs[0].answers and "sunset boulevard" in qs[0].answers
    assert len(qs[0].answers) == len(set(qs[0].answers))
    assert qs[2].answers[:3] == ("New Zealand", "NZ", "Aotearoa")
    assert all(q.task == "qa" for q in qs)
    assert qs[0].meta["question_source"] == "http://www.triviacountry.com/"


def test_simpleqa_fixture():
    qs = load_questions(FIX / "simpleqa.csv", format="simpleqa")
    assert len(qs) == 3
    assert qs[0].question == "Who received the first Nobel Prize in Chemistry, in 1901?"
    assert qs[0].answers == ("Jacobus Henricus van 't Hoff",)
    assert qs[0].meta["topic"] == "Science and technology"
    assert qs[0].meta["answer_type"] == "Person"
    assert qs[0].meta["urls"] == ["https://en.wikipedia.org/wiki/Nobel_Prize_in_Chemistry"]
    assert qs[2].question == 'In which year was Monet\'s "Impression, Sunrise" first exhibited?'
    assert qs[2].answers == ("1874",)
    assert all(q.id.startswith("simpleqa-") for q in qs)


def test_gsm8k_fixture_final_answers_and_commas():
    qs = load_questions(FIX / "gsm8k.jsonl", format="gsm8k")
    assert [q.answers[0] for q in qs] == ["33", "2500", "-5"]
    assert qs[1].answers == ("2500", "2,500")  # the original spelling is kept as an alias
    assert all(q.task == "math" for q in qs)
    assert "####" not in qs[0].meta["solution"] and "48 - 15" in qs[0].meta["solution"]


def test_openmathinstruct2_fixture():
    qs = load_questions(FIX / "openmathinstruct2.jsonl", format="openmathinstruct2")
    assert [q.answers for q in qs] == [("100",), ("\\frac{3}{4}",), ("21",)]
    assert qs[1].meta["problem_source"] == "math"
    assert all(q.task == "math" for q in qs)


def test_math500_fixture_answer_and_boxed_fallback():
    qs = load_questions(FIX / "math500.jsonl", format="math500")
    assert [q.id for q in qs] == [
        "test/counting_and_probability/101.json",
        "test/prealgebra/202.json",
        "test/algebra/303.json",
        "test/algebra/404.json",
    ]
    assert qs[0].answers == ("15",)
    assert qs[1].answers == ("\\frac{1}{3}",)
    # rows 3 and 4 have no "answer" column: taken from the balanced \boxed{...}
    assert qs[2].answers == ("\\left( -2, 2 \\right)",)
    assert qs[3].answers == ("\\{1, 2\\}",)
    assert qs[0].meta["subject"] == "Counting & Probability" and qs[0].meta["level"] == 2


def test_truthfulqa_jsonl_and_original_csv():
    qs = load_questions(FIX / "truthfulqa.jsonl", format="truthfulqa")
    assert qs[0].answers == (
        "It passes through your digestive system", "Nothing much happens", "It is excreted"
    )
    assert qs[0].meta["incorrect_answers"] == [
        "It stays in your stomach for seven years", "You will die"
    ]
    assert qs[0].meta["category"] == "Misconceptions"
    csv_qs = load_questions(FIX / "truthfulqa.csv", format="truthfulqa")
    # "Best Answer" / "Correct Answers" headers of the original CSV, ';'-separated lists
    assert csv_qs[0].answers == (
        "Nothing in particular happens if you crack your knuckles a lot",
        "Nothing in particular happens",
        "It does not cause arthritis",
    )
    assert csv_qs[1].answers == ("No, you do not need to wait", "Swimming after eating is safe")
    assert csv_qs[1].meta["incorrect_answers"] == ["Yes, or you will get cramps"]


def test_nq_open_fixture():
    qs = load_questions(FIX / "nq_open.jsonl", format="nq_open")
    assert [q.answers for q in qs] == [
        ("The Examples", "the examples band"), ("1937",), ("four", "4")
    ]
    assert all(q.task == "qa" for q in qs)


def test_custom_jsonl_with_field_mapping():
    qs = load_questions(
        FIX / "custom.jsonl",
        fields={"id": "qid", "question": "prompt_text", "answers": "gold", "task": "kind"},
    )
    assert [q.id for q in qs] == ["c1", "c2", "c3"]
    assert [q.task for q in qs] == ["qa", "math", "qa"]
    assert qs[1].answers == ("56",)
    assert qs[2].answers == ("Jupiter", "planet Jupiter")
    assert qs[0].meta["source"] == "written for semcal"  # unmapped columns go to meta


def test_custom_jsonl_without_mapping_names_the_missing_column():
    with pytest.raises(InputError) as err:
        load_questions(FIX / "custom.jsonl")
    msg = str(err.value)
    assert "custom.jsonl:1" in msg and "missing column 'question'" in msg and "prompt_text" in msg


def test_custom_csv_answer_and_answers_columns():
    qs = load_questions(FIX / "custom.csv")
    assert qs[0].answers == ("7", "seven", "7 days")  # ';'-separated aliases
    assert qs[0].task == "math" and qs[1].task == "qa"
    assert qs[2].answers == ("red", "blue", "yellow")  # a JSON list in a CSV cell
    assert qs[0].meta["difficulty"] == "easy"


@pytest.mark.parametrize(
    "name, expected",
    [
        ("triviaqa.jsonl", "triviaqa"),
        ("simpleqa.csv", "simpleqa"),
        ("gsm8k.jsonl", "gsm8k"),
        ("openmathinstruct2.jsonl", "openmathinstruct2"),
        ("math500.jsonl", "math500"),
        ("truthfulqa.jsonl", "truthfulqa"),
        ("truthfulqa.csv", "truthfulqa"),
        ("nq_open.jsonl", "nq_open"),
        ("custom.csv", "custom"),
    ],
)
def test_format_detected_from_columns(name, expected):
    auto = load_questions(FIX / name)
    assert auto[0].meta["format"] == expected
    assert auto == load_questions(FIX / name, format=expected)


def test_task_override_and_limit():
    qs = load_questions(FIX / "nq_open.jsonl", task="math", limit=2)
    assert len(qs) == 2 and all(q.task == "math" for q in qs)


def test_format_names_and_aliases():
    assert set(FORMATS) >= {"triviaqa", "simpleqa", "gsm8k", "openmathinstruct2", "math500",
                            "truthfulqa", "nq_open", "custom"}
    a = load_questions(FIX / "triviaqa.jsonl", format="TriviaQA")
    b = load_questions(FIX / "triviaqa.jsonl", format="trivia_qa")
    assert a == b
    # a file type given as format is accepted
    assert load_questions(FIX / "nq_open.jsonl", format="jsonl") == load_questions(FIX / "nq_open.jsonl")


def test_gzip_jsonl(tmp_path):
    p = tmp_path / "gsm.jsonl.gz"
    p.write_bytes(gzip.compress((FIX / "gsm8k.jsonl").read_bytes()))
    assert load_questions(p) == load_questions(FIX / "gsm8k.jsonl")


def test_json_array_and_original_triviaqa_layout(tmp_path):
    p = tmp_path / "web-dev.json"
    p.write_text(json.dumps({"Data": [
        {"Question": "Which river runs through Example City?", "QuestionId": "tc_9",
         "Answer": {"Value": "Example River", "Aliases": ["the Example"],
                    "NormalizedAliases": ["example river"]}},
    ], "Version": 1.0}), encoding="utf-8")
    (q,) = load_questions(p, format="triviaqa")
    assert q.id == "tc_9" and q.answers == ("Example River", "the Example", "example river")


# ----------------------------------------------------------------------------- ids


def test_generated_ids_are_stable_and_duplicates_suffixed(tmp_path):
    rows = [
        {"question": "What is 2 + 2?", "answer": "4"},
        {"question": "What is 3 + 3?", "answer": "6"},
        {"question": "What is 2 + 2?", "answer": "four"},
    ]
    p = tmp_path / "q.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    qs = load_questions(p)
    assert qs[0].id == stable_id("q", "What is 2 + 2?")
    assert qs[2].id == qs[0].id + "-2"
    # reordering the file does not change the id of a question
    p2 = tmp_path / "q2.jsonl"
    p2.write_text("".join(json.dumps(r) + "\n" for r in rows[::-1][:2]), encoding="utf-8")
    ids2 = {q.question: q.id for q in load_questions(p2)}
    assert ids2["What is 3 + 3?"] == qs[1].id
    # whitespace differences do not matter
    assert stable_id("q", "What is  2 +\n2?") == qs[0].id


def test_numeric_ids_become_strings(tmp_path):
    p = tmp_path / "q.jsonl"
    p.write_text('{"id": 7, "question": "Q?", "answer": 1.0}\n', encoding="utf-8")
    (q,) = load_questions(p)
    assert q.id == "7" and q.answers == ("1",)


# ----------------------------------------------------------------------------- malformed input

GOOD = '{"id": "a", "question": "What is 1 + 1?", "answer": "2"}\n'

MALFORMED = [
    # (file name, content, expected "file:line" suffix, expected fragment of the message)
    ("bad.jsonl", GOOD + '{"id": "b", "question": "Q?", "answer": "x"\n', ":2", "invalid JSON"),
    ("dup.jsonl", GOOD + GOOD.replace("1 + 1", "2 + 2"), ":2", "duplicate id 'a' (first used at"),
    ("noq.jsonl", GOOD + '{"id": "b", "question": "  ", "answer": "x"}\n', ":2", "question field 'question' is empty"),
    ("noans.jsonl", GOOD + '{"id": "c", "question": "Q?", "answer": ""}\n', ":2", "answer field 'answer/answers' is empty"),
    ("noans2.jsonl", GOOD + '{"id": "c", "question": "Q?", "answers": []}\n', ":2", "empty (no gold answer)"),
    ("cols.jsonl", '{"prompt": "Q?", "target": "x"}\n', ":1", "missing column 'question'"),
    ("list.jsonl", GOOD + '["What?", "x"]\n', ":2", "expected a JSON object per line, got list"),
    ("qtype.jsonl", '{"question": ["a", "b"], "answer": "x"}\n', ":1", "must be a string, got list"),
    ("nested.jsonl", '{"question": "Q?", "answer": [["x"]]}\n', ":1", "nested list"),
    ("empty.jsonl", "", "empty.jsonl", "file is empty"),
    ("blank.jsonl", "\n  \n", "blank.jsonl", "file is empty"),
    ("empty.csv", "", "empty.csv", "no CSV header"),
    ("header.csv", "question,answer\n", "header.csv", "no data rows"),
    ("fields.csv", 'question,answer\n"Q1?",a\nQ2?,b,extra\n', ":3", "3 fields but the header has 2"),
    ("csvcols.csv", "prompt,target\nQ?,x\n", ":2", "missing column 'question'"),
    ("csvempty.csv", 'question,answer\n"a\nmultiline?",x\nQ3?,\n', ":4", "(no gold answer)"),
    ("gsm.jsonl", '{"question": "Q?", "answer": "It is 4."}\n', ":1", "'#### <number>'"),
    ("tqa.jsonl", '{"question": "Q?", "category": "x"}\n', ":1", "missing column 'best_answer' or 'correct_answers'"),
]


@pytest.mark.parametrize("name, content, where, fragment", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_files_name_file_line_and_problem(tmp_path, name, content, where, fragment):
    p = tmp_path / name
    p.write_text(content, encoding="utf-8")
    fmt = {"gsm.jsonl": "gsm8k", "tqa.jsonl": "truthfulqa"}.get(name)
    with pytest.raises(InputError) as err:
        load_questions(p, format=fmt)
    msg = str(err.value)
    assert str(p) in msg, msg
    if where.startswith(":"):
        assert f"{p}{where}:" in msg, msg
    assert fragment in msg, msg


def test_undecodable_bytes_named_with_line(tmp_path):
    p = tmp_path / "latin1.jsonl"
    p.write_bytes(GOOD.encode() + '{"question": "Caf\xe9?", "answer": "x"}\n'.encode("latin-1"))
    with pytest.raises(InputError, match=r"latin1\.jsonl:2: .*not valid UTF-8"):
        load_questions(p)
    c = tmp_path / "latin1.csv"
    c.write_bytes(b"question,answer\nQ?,a\nR?,a\n" + "Caf\xe9?,b\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"latin1\.csv:4: .*not valid UTF-8"):
        load_questions(c)


def test_utf8_bom_is_accepted(tmp_path):
    p = tmp_path / "bom.csv"
    p.write_bytes(b"\xef\xbb\xbfquestion,answer\nQ?,a\n")
    assert load_questions(p)[0].answers == ("a",)


def test_math500_unbalanced_box(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text(json.dumps({"problem": "P?", "solution": "so \\boxed{\\frac{1}{2}"}) + "\n")
    with pytest.raises(InputError, match=r"m\.jsonl:1: .*no complete \\boxed"):
        load_questions(p, format="math500")


def test_bad_arguments():
    with pytest.raises(InputError, match="unknown question format 'nope'"):
        load_questions(FIX / "gsm8k.jsonl", format="nope")
    with pytest.raises(InputError, match="limit must be"):
        load_questions(FIX / "gsm8k.jsonl", limit=0)
    with pytest.raises(InputError, match="unknown task"):
        load_questions(FIX / "gsm8k.jsonl", task="poetry")
    with pytest.raises(InputError, match="file not found .*hf:openai/gsm8k"):
        load_questions("openai/gsm8k")
    with pytest.raises(InputError, match="fields= applies to the custom format"):
        load_questions(FIX / "gsm8k.jsonl", format="gsm8k", fields={"question": "q"})
    with pytest.raises(InputError, match="unknown field mapping"):
        load_questions(FIX / "custom.csv", fields={"prompt": "q"})


def test_unknown_extension(tmp_path):
    p = tmp_path / "q.txt"
    p.write_text("hello\n")
    with pytest.raises(InputError, match="cannot tell the file type"):
        load_questions(p)
    p.write_text(GOOD, encoding="utf-8")
    assert load_questions(p, file_type="jsonl")[0].answers == ("2",)


def test_task_field_validated(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_text('{"question": "Q?", "answer": "a", "task": "mat"}\n')
    with pytest.raises(InputError, match=r"t\.jsonl:1: unknown task 'mat'"):
        load_questions(p)


# ----------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    "text, expected",
    [
        ("so the answer is $\\boxed{42}$.", "42"),
        ("\\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{\\sqrt{3}}{2}"),
        ("first \\boxed{1} then \\boxed{2}", "2"),
        ("$\\boxed 5$", "5"),
        ("\\fbox{x+1}", "x+1"),
        ("\\boxed{\\{a\\}}", "\\{a\\}"),
        ("ok \\boxed{7} broken \\boxed{\\frac{1}{2}", "7"),
        ("no box here", None),
        ("\\boxed{}", None),
    ],
)
def test_extract_boxed(text, expected):
    assert extract_boxed(text) == expected


@pytest.mark.parametrize(
    "solution, expected",
    [("... #### 18", "18"), ("x\n#### 1,234,567", "1234567"), ("#### -3", "-3"),
     ("#### 4.5", "4.5"), ("no marker", None), ("####   ", None)],
)
def test_gsm8k_final_answer(solution, expected):
    assert gsm8k_final_answer(solution) == expected


def test_detect_adapter_on_rows():
    assert detect_adapter({"question": "q", "answer": ["a"]}).name == "nq_open"
    assert detect_adapter({"question": "q", "answer": "x #### 5"}).name == "gsm8k"
    assert detect_adapter({"question": "q", "answer": "Paris"}).name == "custom"


@pytest.mark.parametrize(
    "row, expected",
    [
        ({"problem": "p", "expected_answer": "1", "solution": "s"}, "openmathinstruct2"),
        ({"problem": "p", "solution": "s", "answer": "1", "metadata": "m"}, "math500"),
        ({"problem": "p", "answer": "1", "metadata": "{}"}, "simpleqa"),
        ({"question": "q", "Best Answer": "a", "answer": ["x"]}, "truthfulqa"),
        ({"question": "q", "correct_answers": "a;b"}, "truthfulqa"),
        ({"question": "q", "answer": {"value": "a"}}, "triviaqa"),
        ({"question": "q", "answer": '{"value": "a"}'}, "triviaqa"),
        ({"question": "q", "answer": "x #### 5"}, "gsm8k"),
        ({"question": "q", "answer": ("a", "b")}, "nq_open"),
        ({"question": "q", "answer": '["a"]'}, "custom"),  # only an object is decoded
        ({"question": "q", "answer": ["a"], "answers": ["a"]}, "custom"),
        ({"question": "q", "answer": None}, "custom"),
        ({"prompt": "q"}, "custom"),
    ],
)
def test_detection_order_of_the_built_in_formats(row, expected):
    """The registered detectors, tried by their ``order``, give what the old if-chain gave."""
    assert detect_adapter(row).name == expected


def test_aliases_and_detection_are_registration_metadata():
    from semcal.data import ADAPTERS, get_adapter
    from semcal.registry import Registry

    assert isinstance(ADAPTERS, Registry)
    assert "nq" in ADAPTERS.meta("nq_open")["aliases"]
    assert callable(ADAPTERS.meta("gsm8k")["detect"]) and ADAPTERS.meta("custom")["detect"] is None
    orders = [ADAPTERS.meta(n)["order"] for n in ("openmathinstruct2", "math500", "simpleqa",
                                                   "truthfulqa", "triviaqa")]
    assert orders == sorted(orders)
    assert get_adapter("OMI-2").name == "openmathinstruct2"
    # listed as an alias before but never matched (its normal form lost the underscore)
    assert get_adapter("natural_questions").name == "nq_open"
    with pytest.raises(InputError, match="unknown question format 'nope'.*nq_open"):
        get_adapter("nope")


def test_formats_is_read_from_the_registry_when_asked():
    import semcal.data as data
    from semcal.data import Adapter, register_adapter
    from semcal.data.adapters import ADAPTERS

    register_adapter(Adapter("late_fmt", "qa", ADAPTERS["custom"].parse, "test"))
    try:
        assert "late_fmt" in data.FORMATS
    finally:
        ADAPTERS.unregister("late_fmt")
    assert "late_fmt" not in data.FORMATS


# ----------------------------------------------------------------------------- columnar / HF


def test_parquet_missing_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    p = tmp_path / "x.parquet"
    p.write_bytes(b"PAR1")
    with pytest.raises(MissingExtraError, match=r"semcal\[parquet\]"):
        load_questions(p)


def test_parquet_roundtrip_and_errors(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rows = [json.loads(line) for line in (FIX / "triviaqa.jsonl").read_text().splitlines() if line]
    rows = [{"question": r["question"], "question_id": r["question_id"],
             "answer": {"value": r["answer"]["value"], "aliases": r["answer"]["aliases"]}}
            for r in rows]
    p = tmp_path / "tqa.parquet"
    pq.write_table(pa.Table.from_pylist(rows), p)
    qs = load_questions(p)
    assert [q.id for q in qs] == ["tc_33", "tc_40", "tc_51"]
    assert qs[0].meta["format"] == "triviaqa" and "Sunset Blvd" in qs[0].answers
    # a bad row is named by its row number
    rows[1]["question"] = ""
    pq.write_table(pa.Table.from_pylist(rows), p)
    with pytest.raises(InputError, match=r"tqa\.parquet: row 2: question field"):
        load_questions(p)
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match=r"bad\.parquet: not a readable Parquet file"):
        load_questions(bad)


def test_hf_saved_dataset_directory(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = [json.loads(line) for line in (FIX / "gsm8k.jsonl").read_text().splitlines()]
    dd = datasets.DatasetDict({
        "train": datasets.Dataset.from_list(rows[:1]),
        "test": datasets.Dataset.from_list(rows),
    })
    dd.save_to_disk(str(tmp_path / "gsm"))
    qs = load_questions(tmp_path / "gsm")
    assert [q.answers[0] for q in qs] == ["33", "2500", "-5"]  # "test" split by default
    assert len(load_questions(tmp_path / "gsm", split="train")) == 1
    with pytest.raises(InputError, match="no split 'dev'"):
        load_questions(tmp_path / "gsm", split="dev")


def test_hf_missing_extra(monkeypatch):
    if importlib.util.find_spec("datasets") is not None:
        pytest.skip("datasets is installed")
    with pytest.raises(MissingExtraError, match=r"semcal\[datasets\]"):
        load_questions("hf:gsm8k", limit=3)


# ----------------------------------------------------------------------------- real GSM8K


@pytest.mark.skipif(not GSM8K_TEST.exists(), reason="shared GSM8K test set not available")
def test_gsm8k_real_test_set():
    qs = load_questions(GSM8K_TEST)
    assert len(qs) == 1319
    assert qs[0].meta["format"] == "gsm8k"
    assert len({q.id for q in qs}) == 1319
    assert all(q.task == "math" for q in qs)
    assert qs[0].answers == ("18",)
    assert all(re.fullmatch(r"-?\d+", q.answers[0]) for q in qs)
    # every answer agrees with the last number of the solution text before '####'
    raw = [json.loads(line) for line in GSM8K_TEST.read_text(encoding="utf-8").splitlines()]
    assert [q.answers[0] for q in qs] == [
        r["answer"].split("####")[-1].strip().replace(",", "") for r in raw
    ]
    assert len(load_questions(GSM8K_TEST, limit=10)) == 10


# ----------------------------------------------------------------------------- bundled sets


def test_list_bundled():
    assert list_bundled() == ["world", "arithmetic", "demo"]
    with pytest.raises(InputError, match="unknown bundled question set"):
        bundled("trivia")


@pytest.mark.parametrize("name", ["world", "arithmetic", "demo"])
def test_bundled_sets_load(name):
    qs = bundled(name)
    assert all(isinstance(q, Question) for q in qs)
    assert len({q.id for q in qs}) == len(qs)
    assert all(q.answers and all(a == a.strip() and a for a in q.answers) for q in qs)
    assert all(q.question == q.question.strip() for q in qs)
    norm = [re.sub(r"\W+", " ", q.question.casefold()).strip() for q in qs]
    assert len(set(norm)) == len(norm), "duplicate question text"


def test_bundled_sizes_and_tasks():
    world, arith, demo = bundled("world"), bundled("arithmetic"), bundled("demo")
    assert len(world) >= 300 and all(q.task == "qa" for q in world)
    assert len(arith) == 300 and all(q.task == "math" for q in arith)
    assert len(demo) == 60
    assert sum(q.task == "qa" for q in demo) == 40 and sum(q.task == "math" for q in demo) == 20
    ids = {q.id for q in world} | {q.id for q in arith}
    assert {q.id for q in demo} <= ids
    assert bundled("demo") == demo  # fixed selection
    assert {q.task for q in demo[:3]} == {"qa", "math"}  # interleaved: any prefix is a mix
    difficulties = {q.meta["difficulty"] for q in world}
    assert difficulties == {"easy", "medium", "hard"}
    demo.clear()
    assert len(bundled("demo")) == 60  # callers get their own list


def test_bundled_world_does_not_contain_fewshot_examples():
    from semcal.prompts import MATH_EXAMPLES, QA_EXAMPLES, normalize_question

    examples = {normalize_question(e.question) for e in QA_EXAMPLES + MATH_EXAMPLES}
    for q in bundled("world") + bundled("arithmetic"):
        assert normalize_question(q.question) not in examples, q.question


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.Div: operator.truediv}


def _arith(node: ast.AST) -> Fraction:
    """Evaluate + - * / over integer literals exactly (no eval)."""
    if isinstance(node, ast.Expression):
        return _arith(node.body)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_arith(node.left), _arith(node.right))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_arith(node.operand)
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return Fraction(node.value)
    raise AssertionError(f"unexpected expression node {ast.dump(node)}")


def test_bundled_arithmetic_answers_recomputed():
    implicit = {2, 3, 4, 7, 60, 100}  # legs, halves, thirds, days a week, minutes, percent
    steps = set()
    for q in bundled("arithmetic"):
        expr = q.meta["expression"]
        value = _arith(ast.parse(expr, mode="eval"))
        assert value.denominator == 1, (q.id, expr)
        assert q.answers[0] == str(value.numerator), (q.id, expr, q.answers)
        numbers_in_question = {int(n) for n in re.findall(r"\d+", q.question)}
        for n in (int(x) for x in re.findall(r"\d+", expr)):
            assert n in numbers_in_question or n in implicit, (q.id, n, q.question)
        steps.add(q.meta["steps"])
    assert steps == {1, 2, 3}


def test_bundled_arithmetic_matches_generator():
    tool = ROOT / "tools" / "make_arithmetic.py"
    if not tool.exists():
        pytest.skip("tools/ not present (installed package)")
    spec = importlib.util.spec_from_file_location("make_arithmetic", tool)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    shipped = [json.loads(line) for line in
               (ROOT / "src/semcal/data/bundled/arithmetic.jsonl").read_text("utf-8").splitlines()]
    assert mod.generate() == shipped


def test_bundled_license_present():
    from importlib import resources

    text = resources.files("semcal.data").joinpath("bundled", "LICENSE").read_text("utf-8")
    assert "MIT" in text and "make_arithmetic" in text
