"""The store and the files beside it are never overwritten, followed through links, or misread.

Through the command line with the mock backend (no model):

- no output path (``report -o``, ``compare -o``, ``analyze --csv/--parquet``) may name a store,
  any SQLite file, a store's ``-wal``/``-shm``/``-journal``, the lock folder or a label file,
  also through a symbolic link: one line, exit 2, before any work, nothing changed;
- a symbolic or hard link in the lock folder, or a linked lock folder, is refused and the file
  it points at keeps its content;
- damaged cells (text that is not UTF-8, a log-prob blob of the wrong length, JSON that does
  not parse) are one ``StoreError`` line naming the store, the table, the row and the column;
- an empty (0-byte) ``semcal.sqlite`` is an error for ``analyze``, ``report`` and ``resume``,
  and stays 0 bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from semcal.cli import main
from semcal.errors import InputError, StoreError
from semcal.files import atomic_path, check_output, write_text
from semcal.store import Store


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    rc = main(list(argv))
    return rc, capsys.readouterr().err


def _one_error(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("semcal: error: "), err
    assert "Traceback" not in err and "unexpected error" not in err
    return lines[0]


def _snapshot(d: Path) -> dict[str, str]:
    """Every file under ``d`` (links as their target's name) with a hash of its content."""
    out = {}
    for p in sorted(d.rglob("*")):
        key = str(p.relative_to(d))
        if p.is_symlink():
            out[key] = "-> " + os.readlink(p)
        elif p.is_file():
            out[key] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[key] = "dir"
    return out


def _run_args(data: Path, out: Path) -> list[str]:
    return ["run", "--model", "mock", "--backend", "mock", "--dataset", str(data), "--out",
            str(out), "--samples", "4", "--style", "concise", "-q"]


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(dataset, experiment directory) of one finished mock run of 4 questions × 4 samples."""
    base = tmp_path_factory.mktemp("safety")
    data = base / "q.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "question": f"Which city {i}?",
                                        "answers": ["Paris"]}) + "\n" for i in range(4)))
    assert main(_run_args(data, base / "exp")) == 0
    return data, base / "exp"


@pytest.fixture()
def exp(experiment: tuple[Path, Path], tmp_path: Path) -> Path:
    """A fresh copy of the experiment directory."""
    d = tmp_path / "exp"
    shutil.copytree(experiment[1], d, symlinks=True)
    return d


# ----------------------------------------------------------------------------- 1. outputs


def _sqlite_elsewhere(exp: Path) -> str:
    other = exp.parent / "other.db"
    shutil.copy(exp / "semcal.sqlite", other)
    return str(other)


def _link_to_store(exp: Path) -> str:
    link = exp.parent / "looks-harmless.html"
    link.symlink_to(exp / "semcal.sqlite")
    return str(link)


def _through_a_linked_folder(exp: Path) -> str:
    folder = exp.parent / "linked-folder"
    folder.symlink_to(exp)
    return str(folder / "semcal.sqlite")


OUTPUTS = {
    "report-onto-the-store": (["report", "{d}", "-o", "{d}/semcal.sqlite"], "it is a semcal store"),
    "compare-onto-the-store": (["compare", "{d}", "-o", "{d}/semcal.sqlite"], "semcal store"),
    "csv-onto-the-wal": (["analyze", "{d}", "--csv", "{d}/semcal.sqlite-wal"], "write-ahead log"),
    "csv-onto-the-journal": (["analyze", "{d}", "--csv", "{d}/semcal.sqlite-journal"], "journal"),
    "report-onto-the-shm": (["report", "{d}", "-o", "{d}/semcal.sqlite-shm"], "shared-memory"),
    "parquet-onto-another-sqlite-file": (["analyze", "{d}", "--parquet", _sqlite_elsewhere],
                                         "an SQLite database"),
    "report-through-a-link-to-the-store": (["report", "{d}", "-o", _link_to_store],
                                           "a link to .*semcal.sqlite\\): it is a semcal store"),
    "report-through-a-linked-folder": (["report", "{d}", "-o", _through_a_linked_folder],
                                       "it is a semcal store"),
    "report-onto-a-lock": (["report", "{d}", "-o", "{d}/.semcal-locks/run-1.lock"], "lock folder"),
    "report-into-the-lock-folder": (["report", "{d}", "-o", "{d}/.semcal-locks/x.html"],
                                    "lock folder"),
    "report-onto-labels": (["report", "{d}", "-o", "{d}/labels.jsonl"], "a label file"),
    "compare-onto-named-labels": (["compare", "{d}", "-o", "{d}/judge.labels.jsonl"], "label file"),
    "csv-onto-labels-in-an-experiment": (["analyze", "{d}", "--csv", "{d}/labels-b.jsonl"],
                                         "a label file"),
}


@pytest.mark.parametrize("case", list(OUTPUTS))
def test_no_output_may_name_a_store_lock_or_label_file(
        case: str, exp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`report DIR -o DIR/semcal.sqlite` replaced every sample with HTML, exit 0. Now every
    output that names data semcal keeps is one line, exit 2, before the analysis runs (the
    store and the folder are byte for byte as they were)."""
    argv, why = OUTPUTS[case]
    args = [a(exp) if callable(a) else a.format(d=exp) for a in argv]
    before, around = _snapshot(exp), _snapshot(exp.parent)
    rc, err = _cli(capsys, *args, "--n-boot", "0", "-q")
    line = _one_error(err)
    assert rc == 2
    assert "refusing to write" in line
    assert re.search(why, line), line
    assert _snapshot(exp) == before and _snapshot(exp.parent) == around


def test_the_library_writers_refuse_too(exp: Path, tmp_path: Path) -> None:
    """`atomic_path` (behind every report, compare page, export, figure, results.json and
    summary.md) checks its target: a reproduce output that is a link to a store is refused,
    nothing is written and no temporary file is left."""
    out = tmp_path / "repro"
    out.mkdir()
    (out / "summary.md").symlink_to(exp / "semcal.sqlite")
    before = _snapshot(exp)
    for target in (out / "summary.md", exp / "semcal.sqlite", exp / "semcal.sqlite-wal",
                   exp / ".semcal-locks" / "run-1.lock", exp / "labels.jsonl"):
        with pytest.raises(InputError, match="refusing to write"):
            write_text(target, "x")
    assert _snapshot(exp) == before
    assert sorted(p.name for p in out.iterdir()) == ["summary.md"]
    # ordinary targets are fine: a new file, an existing HTML file, a CSV next to a store
    for ok in (tmp_path / "new.html", exp / "questions.csv", exp / "labels-notes.txt"):
        check_output(ok)
    (tmp_path / "old.html").write_text("<p>old</p>")
    write_text(tmp_path / "old.html", "<p>new</p>")
    assert (tmp_path / "old.html").read_text() == "<p>new</p>"


def test_ordinary_outputs_still_work(exp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, err = _cli(capsys, "report", str(exp), "-o", str(exp / "r.html"), "--n-boot", "0", "-q")
    assert rc == 0, err
    assert (exp / "r.html").read_text(encoding="utf-8").lstrip().startswith("<!")
    rc, err = _cli(capsys, "analyze", str(exp), "--csv", str(exp / "q.csv"), "--n-boot", "0",
                   "-q")
    assert rc == 0, err and (exp / "q.csv").is_file()


def test_a_temporary_file_swapped_for_a_link_is_not_followed(tmp_path: Path) -> None:
    """The temporary file of an atomic write is created with O_EXCL|O_NOFOLLOW (mkstemp) and
    reopened with O_NOFOLLOW to flush it and set its mode: a link put in its place is refused.
    Before, the outside file's mode was changed and the target became a link to it."""
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    outside.chmod(0o600)
    target = tmp_path / "report.html"
    with pytest.raises(InputError, match="cannot write"):
        with atomic_path(target) as tmp:
            tmp.unlink()
            tmp.symlink_to(outside)
    assert outside.read_text() == "precious" and (outside.stat().st_mode & 0o777) == 0o600
    assert not target.exists() and not target.is_symlink()
    assert [p.name for p in tmp_path.iterdir()] == ["outside.txt"]


# ----------------------------------------------------------------------------- 2. locks


def _plant_symlink(exp: Path, outside: Path) -> None:
    lock = exp / ".semcal-locks" / "run-1.lock"
    lock.unlink()
    lock.symlink_to(outside)


def _plant_dangling_symlink(exp: Path, outside: Path) -> None:
    outside.unlink()
    _plant_symlink(exp, outside)


def _plant_hard_link(exp: Path, outside: Path) -> None:
    lock = exp / ".semcal-locks" / "run-1.lock"
    lock.unlink()
    os.link(outside, lock)


def _plant_linked_folder(exp: Path, outside: Path) -> None:
    folder = outside.parent / "locks-elsewhere"
    folder.mkdir()
    outside.rename(folder / "run-1.lock")
    outside.symlink_to(folder / "run-1.lock")  # the test reads the content through this name
    shutil.rmtree(exp / ".semcal-locks")
    (exp / ".semcal-locks").symlink_to(folder)


LOCK_CASES = {
    "symlinked-lock": (_plant_symlink, r"run-1.lock: the run lock is a symbolic link"),
    "dangling-symlinked-lock": (_plant_dangling_symlink,
                                r"run-1.lock: the run lock is a symbolic link"),
    "hard-linked-lock": (_plant_hard_link, r"run-1.lock: the run lock is a hard link"),
    "symlinked-lock-folder": (_plant_linked_folder,
                              r"\.semcal-locks: the lock folder is a symbolic link"),
}


@pytest.mark.parametrize("case", list(LOCK_CASES))
def test_a_link_in_the_lock_folder_is_refused(
        case: str, experiment: tuple[Path, Path], exp: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A link at `.semcal-locks/run-1.lock` made `semcal run` truncate the file it points at
    (exit 0). Now the lock is opened with O_NOFOLLOW (and must be a plain file with one name),
    the folder with O_DIRECTORY|O_NOFOLLOW: one line naming the link, exit 2, the outside file
    keeps its content."""
    plant, message = LOCK_CASES[case]
    outside = tmp_path / "outside.txt"
    outside.write_text("precious data\n")
    plant(exp, outside)
    before = _snapshot(exp)
    rc, err = _cli(capsys, *_run_args(experiment[0], exp))
    line = _one_error(err)
    assert rc == 2
    assert re.search(message, line), line
    if case == "dangling-symlinked-lock":
        assert not outside.exists()  # nothing created through the link
    else:
        assert outside.read_text() == "precious data\n"
    assert _snapshot(exp) == before


def test_a_plain_lock_still_works(experiment: tuple[Path, Path], exp: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    rc, err = _cli(capsys, *_run_args(experiment[0], exp))
    assert rc == 0, err
    assert (exp / ".semcal-locks" / "run-1.lock").read_bytes() == b""  # released


def test_a_held_lock_still_stops_a_second_writer(experiment: tuple[Path, Path], exp: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    with Store(exp) as st:
        lock = st.lock_run(st.runs()[0])
        try:
            assert f"pid {os.getpid()} on " in (exp / ".semcal-locks" / "run-1.lock").read_text()
            rc, err = _cli(capsys, *_run_args(experiment[0], exp))
        finally:
            lock.release()
    assert rc == 2 and "is being sampled by another process (pid" in _one_error(err)


# ----------------------------------------------------------------------------- 3. damaged cells


def _damage(exp: Path, *sql: str) -> None:
    conn = sqlite3.connect(exp / "semcal.sqlite")
    for s in sql:
        conn.execute(s)
    conn.commit()
    conn.close()


S12 = "WHERE qid='q1' AND idx=2"
SAMPLE = r"table samples, run 1, question 'q1', sample 2, column "
DAMAGE = {
    "text-not-utf8": (f"UPDATE samples SET text=CAST(x'ff' AS TEXT) {S12}",
                      SAMPLE + "text: bytes that are not valid UTF-8"),
    "text-a-blob": (f"UPDATE samples SET text=x'ff41' {S12}",
                    SAMPLE + "text: bytes that are not valid UTF-8"),
    "logprobs-wrong-length": (f"UPDATE samples SET token_logprobs=x'010203' {S12}",
                              SAMPLE + "token_logprobs: a blob of 3 bytes"),
    "logprobs-text": (f"UPDATE samples SET token_logprobs='garbage' {S12}",
                      SAMPLE + "token_logprobs: text"),
    "n-tokens-text": (f"UPDATE samples SET n_tokens='many' {S12}",
                      SAMPLE + "n_tokens: text \\(expected an integer\\)"),
    "answers-not-json": ("UPDATE questions SET answers='not json' WHERE qid='q2'",
                         r"table questions, run 1, question 'q2', column answers: text that is "
                         "not JSON"),
    "answers-an-object": ("UPDATE questions SET answers='{\"a\": 1}' WHERE qid='q2'",
                          r"question 'q2', column answers: JSON of another shape"),
    "answers-empty": ("UPDATE questions SET answers='[]' WHERE qid='q2'",
                      r"question 'q2', column answers: .*no gold answer"),
    "meta-not-an-object": ("UPDATE questions SET meta='[1]' WHERE qid='q2'",
                           r"question 'q2', column meta: JSON of another shape"),
    "question-not-utf8": ("UPDATE questions SET question=CAST(x'c328' AS TEXT) WHERE qid='q2'",
                          r"question 'q2', column question: bytes that are not valid UTF-8"),
    "spec-not-json": ("UPDATE runs SET spec='{'", r"table runs, run 1, column spec: text that "
                      "is not JSON"),
    "cached-labels-not-json": ("UPDATE classes SET labels='[' WHERE qid='q0'",
                               r"table classes, run 1, question 'q0', B '[^']+', column labels"),
    "schema-version-not-a-number": ("UPDATE meta SET value='four' WHERE key='schema_version'",
                                    r"table meta, key 'schema_version', column value"),
}


@pytest.mark.parametrize("command", ["analyze", "report"])
@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_cell_is_one_line_naming_table_row_and_column(
        case: str, command: str, exp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Invalid UTF-8, a log-prob blob of the wrong length, JSON that does not parse gave
    'unexpected error: TypeError/ValueError/JSONDecodeError', exit 1."""
    sql, where = DAMAGE[case]
    _damage(exp, sql)
    rc, err = _cli(capsys, command, str(exp), "--n-boot", "0", "-q")
    line = _one_error(err)
    assert rc == 2
    assert re.search(re.escape(str(exp / "semcal.sqlite")) + ": damaged store: .*" + where,
                     line), line


def _unfinish(exp: Path) -> None:
    """Make the run unfinished: question q3 has no samples yet."""
    _damage(exp, "UPDATE questions SET done=0 WHERE qid='q3'", "DELETE FROM samples WHERE qid='q3'",
            "UPDATE runs SET finished=NULL")


@pytest.mark.parametrize("case", ["answers-not-json", "meta-not-an-object", "text-not-utf8",
                                  "logprobs-wrong-length", "spec-not-json"])
def test_resume_of_a_damaged_store_is_one_line(case: str, exp: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    sql, where = DAMAGE[case]
    _unfinish(exp)
    _damage(exp, sql)
    rc, err = _cli(capsys, "resume", str(exp), "-q")
    line = _one_error(err)
    assert rc == 2
    assert re.search("damaged store: .*" + where, line), line


def test_sound_cells_read_back_unchanged(exp: Path) -> None:
    """The checked decoding gives the same values as before: text, JSON and log-probs."""
    with Store(exp, readonly=True) as st:
        run = st.runs()[0]
        samples = st.all_samples(run.id)
        questions = st.questions(run.id)
    assert [q.id for q in questions] == ["q0", "q1", "q2", "q3"]
    assert questions[0].answers == ("Paris",) and isinstance(questions[0].meta, dict)
    assert sum(len(v) for v in samples.values()) == 16
    for rows in samples.values():
        for s in rows:
            assert isinstance(s.completion.text, str) and s.completion.text


def test_a_damaged_cell_through_the_library_is_a_store_error(exp: Path) -> None:
    _damage(exp, f"UPDATE samples SET tokens='not json' {S12}")
    with Store(exp, readonly=True) as st:
        with pytest.raises(StoreError, match=SAMPLE + "tokens: text that is not JSON"):
            st.all_samples(1)
        with pytest.raises(StoreError, match=SAMPLE + "tokens"):
            st.samples(1, "q1")
        assert len(st.all_samples(1, tokens=False)["q1"]) == 4  # analysis does not read them


# ----------------------------------------------------------------------------- 4. empty store


@pytest.mark.parametrize("command", ["resume", "analyze", "report"])
def test_an_empty_store_file_is_an_error_and_stays_empty(
        command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A 0-byte semcal.sqlite: `analyze` turned it into an empty store (writing a schema), after
    which `resume` said nothing and exited 0. Now each command says the store is empty, exit
    2, and the file stays 0 bytes with no -wal/-shm beside it."""
    d = tmp_path / "exp"
    d.mkdir()
    (d / "semcal.sqlite").touch()
    rc, err = _cli(capsys, command, str(d), "-q", *(["--n-boot", "0"] if command != "resume" else []))
    line = _one_error(err)
    assert rc == 2
    assert "the store is empty (0 bytes" in line and "damaged" in line
    assert sorted(p.name for p in d.iterdir()) == ["semcal.sqlite"]
    assert (d / "semcal.sqlite").stat().st_size == 0


def test_resume_of_a_store_without_runs_is_an_error(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    Store(tmp_path / "exp").close()  # a schema, no runs (what older analyze made of a 0-byte file)
    rc, err = _cli(capsys, "resume", str(tmp_path / "exp"), "-q")
    assert rc == 2 and "the store has no runs" in _one_error(err)


def test_a_run_may_still_start_in_an_empty_file(experiment: tuple[Path, Path], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Writers still create the store in an existing empty file (processes creating one store
    at once see each other's empty file); only readers refuse it."""
    d = tmp_path / "exp"
    d.mkdir()
    (d / "semcal.sqlite").touch()
    rc, err = _cli(capsys, *_run_args(experiment[0], d))
    assert rc == 0, err
    with Store(d, readonly=True) as st:
        assert st.progress(st.runs()[0].id) == (4, 4, 16)
