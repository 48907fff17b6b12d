"""Issue 22 (reliability round three): resuming from a run's stored questions, analyze and
compare on unfinished / empty / same-named runs, valid JSON, normalised question ids."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest

from semcal.backends.mock import MockSampler
from semcal.cli import main
from semcal.store import Store

N_Q = 6
RUN = ["--model", "mock", "--backend", "mock", "--samples", "4", "--style", "concise", "-q"]


def _write(path: Path, questions: list[dict]) -> Path:
    path.write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in questions),
                    encoding="utf-8")
    return path


def _questions(n: int = N_Q) -> list[dict]:
    return [{"id": f"q{i}", "question": f"Which city is number {i}?", "answers": ["Paris"]}
            for i in range(n)]


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        rc = main(list(argv))
    except SystemExit as exc:
        rc = int(exc.code or 0)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _samples(out: Path) -> dict[str, list[tuple]]:
    with Store(out, readonly=True) as st:
        (r,) = st.runs()
        return {q.id: [(s.index, s.seed, s.completion.text) for s in st.samples(r.id, q.id)]
                for q in st.questions(r.id)}


def _stored_questions(out: Path) -> dict[str, str]:
    with Store(out, readonly=True) as st:
        (r,) = st.runs()
        return {q.id: q.question for q in st.questions(r.id)}


def _warnings(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    """The warning lines logged that hold ``text`` (in-process, logging goes to caplog)."""
    return [r.getMessage() for r in caplog.records
            if r.levelname == "WARNING" and text in r.getMessage()]


def _interrupt_after(monkeypatch: pytest.MonkeyPatch, calls: int) -> None:
    """The mock backend raises KeyboardInterrupt (a Ctrl-C) on its ``calls + 1``-th sampling
    call of M > 1 samples (greedy calls are not counted)."""
    real = MockSampler.sample
    seen = {"n": 0}

    def sample(self, prompts, n, params):
        if n > 1:
            seen["n"] += 1
            if seen["n"] > calls:
                raise KeyboardInterrupt
        return real(self, prompts, n, params)

    monkeypatch.setattr(MockSampler, "sample", sample)


def _partial_run(tmp_path: Path, capsys, monkeypatch, done: int) -> tuple[Path, Path]:
    """A run of N_Q questions interrupted after ``done`` of them; returns (data file, out)."""
    data = _write(tmp_path / "q.jsonl", _questions())
    out = tmp_path / "cut"
    with monkeypatch.context() as m:
        _interrupt_after(m, done)
        rc, _, err = _cli(capsys, "run", *RUN, "--dataset", str(data), "--out", str(out))
    assert rc == 130, err
    with Store(out, readonly=True) as st:
        (r,) = st.runs()
        assert len(st.done_ids(r.id)) == done and st.progress(r.id)[1] == N_Q
    return data, out


def _reference(tmp_path: Path, capsys, data: Path) -> Path:
    ref = tmp_path / "ref"
    rc, _, err = _cli(capsys, "run", *RUN, "--dataset", str(data), "--out", str(ref))
    assert rc == 0, err
    return ref


# ----------------------------------------------------------------------------- item 1: resume


def test_resume_after_an_unsampled_question_was_edited(tmp_path, capsys, monkeypatch,
                                                       caplog) -> None:
    """Editing a question not yet sampled no longer stops `semcal resume`: the run resumes
    from the questions stored with it (all of them are stored before sampling), says so in
    one warning line, and ends equal, sample for sample, to an uninterrupted run of the
    original file; the samples of the finished part are untouched."""
    data, out = _partial_run(tmp_path, capsys, monkeypatch, done=2)
    ref = _reference(tmp_path, capsys, data)  # the original file, uninterrupted
    before = _samples(out)
    qs = _questions()
    qs[4]["question"] = "An edited question, not yet sampled?"
    qs[4]["answers"] = ["Rome"]
    _write(data, qs)

    rc, _, err = _cli(capsys, "resume", str(out))
    assert rc == 0, err
    warned = _warnings(caplog, "differ from the copies stored")
    assert len(warned) == 1 and "'q4'" in warned[0] and "\n" not in warned[0]
    assert "Traceback" not in err
    after = _samples(out)
    assert all(after[q] == before[q] for q in ("q0", "q1"))  # the finished part unchanged
    assert after == _samples(ref)  # the stored q4 was sampled, not the edited one
    assert _stored_questions(out)["q4"] == "Which city is number 4?"
    with Store(out, readonly=True) as st:
        (r,) = st.runs()
        assert r.finished is not None and st.progress(r.id)[:2] == (N_Q, N_Q)


def test_resume_ignores_an_edit_of_a_sampled_question(tmp_path, capsys, monkeypatch,
                                                      caplog) -> None:
    """An edit to an already-sampled question is ignored in favour of the stored text (the run
    is its stored copy; analyze reads the stored question too), with the same warning line;
    questions appended to the file do not join the run on `resume`."""
    data, out = _partial_run(tmp_path, capsys, monkeypatch, done=3)
    before = _samples(out)
    qs = _questions() + [{"id": "extra", "question": "Appended later?", "answers": ["x"]}]
    qs[0]["question"] = "Edited after it was sampled?"
    _write(data, qs)

    rc, _, err = _cli(capsys, "resume", str(out))
    assert rc == 0, err
    (warned,) = _warnings(caplog, "differ from the copies stored")
    assert "'q0'" in warned
    after = _samples(out)
    assert set(after) == {f"q{i}" for i in range(N_Q)}  # "extra" did not join
    assert all(after[q] == before[q] for q in ("q0", "q1", "q2"))
    assert _stored_questions(out)["q0"] == "Which city is number 0?"
    rc, stdout, err = _cli(capsys, "analyze", str(out), "--json", "--n-boot", "0")
    assert rc == 0, err
    assert json.loads(stdout)[0]["n"] == N_Q


def test_resume_of_a_run_whose_data_file_is_gone(tmp_path, capsys, monkeypatch) -> None:
    data, out = _partial_run(tmp_path, capsys, monkeypatch, done=1)
    ref = _reference(tmp_path, capsys, data)
    data.unlink()
    rc, _, err = _cli(capsys, "resume", str(out))
    assert rc == 0, err
    assert _samples(out) == _samples(ref)


def test_run_again_with_an_edited_file_uses_the_stored_copies(tmp_path, capsys,
                                                              monkeypatch) -> None:
    """`semcal run` of the same spec (not `resume`) still lets the file pick the questions (a
    new question extends the run) but takes each question the run holds from the store."""
    data, out = _partial_run(tmp_path, capsys, monkeypatch, done=2)
    qs = _questions() + [{"id": "q_new", "question": "A new one?", "answers": ["x"]}]
    qs[5]["question"] = "Edited, unsampled?"
    _write(data, qs)
    rc, _, err = _cli(capsys, "run", *RUN, "--dataset", str(data), "--out", str(out))
    assert rc == 0, err
    stored = _stored_questions(out)
    assert stored["q5"] == "Which city is number 5?" and stored["q_new"] == "A new one?"
    assert len(_samples(out)["q_new"]) == 4


# ----------------------------------------------------------------------------- items 2, 3: analyze


def _strict(text: str):
    """json.loads that refuses NaN / Infinity (not JSON, though Python writes them)."""
    def refuse(name: str):
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_analyze_report_mark_an_unfinished_run(tmp_path, capsys, monkeypatch) -> None:
    """A partial run is marked in the analyze table, its --json and the report's run header
    and overview; once resumed to the end the marks are gone."""
    _, out = _partial_run(tmp_path, capsys, monkeypatch, done=2)
    note = f"unfinished: 2 of {N_Q} questions"
    rc, stdout, err = _cli(capsys, "analyze", str(out), "--n-boot", "0")
    assert rc == 0, err
    assert f"({note})" in stdout.splitlines()[2]
    rc, stdout, err = _cli(capsys, "analyze", str(out), "--json", "--n-boot", "0")
    assert rc == 0, err
    (row,) = _strict(stdout)
    assert row["finished"] is False and row["questions_planned"] == N_Q and row["n"] == 2
    rc, _, err = _cli(capsys, "report", str(out), "--n-boot", "0", "--no-tables", "-q")
    assert rc == 0, err
    html = (out / "report.html").read_text(encoding="utf-8")
    assert html.count(note) == 2  # the overview row and the run's header
    assert "<h2 id=\"run-0\">Run: " in html and f"({note})</span></h2>" in html

    rc, _, err = _cli(capsys, "resume", str(out))
    assert rc == 0, err
    rc, stdout, err = _cli(capsys, "analyze", str(out), "--json", "--n-boot", "0")
    (row,) = _strict(stdout)
    assert row["finished"] is True and row["questions_planned"] == N_Q and row["n"] == N_Q
    rc, stdout, _ = _cli(capsys, "analyze", str(out), "--n-boot", "0")
    assert "unfinished" not in stdout
    rc, _, _ = _cli(capsys, "report", str(out), "--n-boot", "0", "--no-tables", "-q")
    assert "unfinished" not in (out / "report.html").read_text(encoding="utf-8")


def test_analyze_json_of_an_empty_run_is_valid_json(tmp_path, capsys, monkeypatch) -> None:
    """An n = 0 run's metrics are undefined: --json writes them as null, never a bare NaN."""
    _, out = _partial_run(tmp_path, capsys, monkeypatch, done=0)
    rc, stdout, err = _cli(capsys, "analyze", str(out), "--json", "--n-boot", "0")
    assert rc == 0, err
    assert "NaN" not in stdout and "Infinity" not in stdout
    (row,) = _strict(stdout)
    assert row["n"] == 0 and row["smece"] is None and row["accuracy"] is None
    assert row["finished"] is False and row["questions_planned"] == N_Q


def test_json_safe_maps_every_non_finite_number_to_null() -> None:
    import numpy as np

    from semcal.cli import _strict_json

    v = {"a": float("nan"), "b": [float("inf"), -float("inf"), 1.5], "c": np.float64("nan"),
         "d": np.int64(3), "e": (np.float32(2.0), None), "f": np.array([1.0, np.nan]), 4: "x"}
    assert _strict(_strict_json(v)) == {"a": None, "b": [None, None, 1.5], "c": None, "d": 3,
                                        "e": [2.0, None], "f": [1.0, None], "4": "x"}


# ----------------------------------------------------------------------------- item 4: compare


def _finished_run(tmp_path: Path, capsys, name: str, questions: list[dict]) -> Path:
    data = _write(tmp_path / f"{name}.jsonl", questions)
    out = tmp_path / name
    rc, _, err = _cli(capsys, "run", *RUN, "--dataset", str(data), "--out", str(out))
    assert rc == 0, err
    return out


def test_compare_names_datasets_leaves_out_empty_runs_and_tells_same_names_apart(
        tmp_path, capsys, monkeypatch) -> None:
    a = _finished_run(tmp_path, capsys, "cities", _questions())
    # the same spec in another directory: a run of the same name
    twin = tmp_path / "twin"
    rc, _, err = _cli(capsys, "run", *RUN, "--dataset", str(tmp_path / "cities.jsonl"),
                      "--out", str(twin))
    assert rc == 0, err
    other = _finished_run(tmp_path, capsys, "rivers", [
        {"id": f"r{i}", "question": f"Which river is number {i}?", "answers": ["Nile"]}
        for i in range(4)])
    (tmp_path / "e").mkdir()
    _, empty = _partial_run(tmp_path / "e", capsys, monkeypatch, done=0)
    with Store(a, readonly=True) as st:
        (run_a,) = st.runs()
    with Store(empty, readonly=True) as st:
        (run_empty,) = st.runs()

    page = tmp_path / "cmp.html"
    rc, stdout, err = _cli(capsys, "compare", str(a), str(twin), str(other), str(empty),
                           "-o", str(page), "--n-boot", "0", "-q")
    assert rc == 0, err
    warnings = [ln for ln in err.splitlines() if ln.strip()]
    assert len(warnings) == 2, err
    left_out = next(ln for ln in warnings if "left out" in ln)
    assert left_out.startswith("semcal: warning: ") and f"{run_empty.name} ({empty})" in left_out
    assert "n = 0" in left_out
    different = next(ln for ln in warnings if "different datasets" in ln)
    assert "cities.jsonl" in different and "rivers.jsonl" in different

    header, _, *rows = stdout.splitlines()[:-1]
    assert header.split()[:4] == ["run", "model", "style", "dataset"]
    assert len(rows) == 3  # the n = 0 run is left out
    assert any(f"{run_a.name} ({a})" in r for r in rows)
    assert any(f"{run_a.name} ({twin})" in r for r in rows)
    assert sum("cities.jsonl" in r for r in rows) == 2 and sum("rivers.jsonl" in r for r in rows) == 1

    html = page.read_text(encoding="utf-8")
    assert "<th>dataset</th>" in html and "rivers.jsonl" in html
    assert "different datasets" in html and "left out" in html
    assert f"{run_a.name} ({a})" in html and f"{run_a.name} ({twin})" in html
    assert f"<td>{a}</td>" in html and f"<td>{empty}</td>" not in html  # the directories


def test_compare_of_only_empty_runs_is_one_line(tmp_path, capsys, monkeypatch) -> None:
    _, empty = _partial_run(tmp_path, capsys, monkeypatch, done=0)
    page = tmp_path / "cmp.html"
    rc, _, err = _cli(capsys, "compare", str(empty), "-o", str(page), "--n-boot", "0")
    assert rc == 2 and err.count("\n") == 1 and "nothing to compare" in err
    assert "n = 0" in err and not page.exists()


# ----------------------------------------------------------------------------- item 5: Unicode

ZERO_WIDTH = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff")


@pytest.mark.parametrize("zw", ZERO_WIDTH)
def test_zero_width_characters_are_removed_from_answers(zw: str) -> None:
    from semcal.collapse.normalize import normalize_answer

    assert normalize_answer(f"R{zw}ome") == "rome"
    assert normalize_answer(f"{zw}The Eiffel{zw} Tower{zw}") == "eiffel tower"
    assert normalize_answer(f"1{zw},000") == "1000"


@pytest.mark.parametrize("name", ["exact", "auto"])
def test_a_zero_width_space_does_not_split_an_answer_class(name: str) -> None:
    from semcal.collapse import collapse_for
    from semcal.types import Question

    q = Question(id="q", question="What is the capital of Italy?", answers=("Rome",), task="qa")
    texts = ["The answer is R\u200bome.", "The answer is Rome.", "The answer is \ufeffRome", "Rome\u2060."]
    col = collapse_for(name, style="concise")(q, texts)
    assert len(set(col.labels)) == 1 and col.labels[0] in col.gold


def _nfc_nfd_file(tmp_path: Path) -> Path:
    nfc, nfd = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    assert nfc != nfd
    return _write(tmp_path / "ids.jsonl", [
        {"id": nfc, "question": "Composed?", "answers": ["x"]},
        {"id": "other", "question": "Other?", "answers": ["y"]},
        {"id": nfd, "question": "Decomposed?", "answers": ["z"]},
    ])


def test_ids_are_nfc_and_two_spellings_of_one_id_are_a_duplicate(tmp_path) -> None:
    from semcal.data import load_questions
    from semcal.errors import InputError

    with pytest.raises(InputError, match=r"ids\.jsonl:3: duplicate id 'café'"):
        load_questions(str(_nfc_nfd_file(tmp_path)))
    one = _write(tmp_path / "nfd.jsonl", [
        {"id": unicodedata.normalize("NFD", "Zürich-1"), "question": "Q?", "answers": ["a"]}])
    (q,) = load_questions(str(one))
    assert q.id == unicodedata.normalize("NFC", "Zürich-1")


def test_cli_refuses_ids_differing_only_by_normalisation(tmp_path, capsys) -> None:
    out = tmp_path / "o"
    rc, stdout, err = _cli(capsys, "run", *RUN, "--dataset", str(_nfc_nfd_file(tmp_path)),
                           "--out", str(out))
    assert rc == 2 and stdout == ""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("semcal: error: ") and "duplicate id" in lines[0]
    assert "Traceback" not in err and not out.exists()  # nothing written
