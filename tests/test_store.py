"""The SQLite results store: round trips, atomic batches, errors, crash safety."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from semcal.errors import StoreError
from semcal.store import SCHEMA_VERSION, STORE_NAME, Store, has_store, spec_key
from semcal.types import Completion, Question

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _run(st: Store, name: str = "r1", key: str = "k1"):
    return st.create_run(
        name=name, key=key, spec={"model": "m", "samples": 3}, model="m", backend="fake",
        style="sentence", dataset="demo", temperature=1.0, top_p=1.0, max_tokens=16,
        samples=3, seed=7,
    )


def _qs(n: int = 3) -> list[Question]:
    return [Question(id=f"q{i}", question=f"What is {i}?", answers=(str(i),)) for i in range(n)]


def _comps(n: int, tag: str = "a") -> list[Completion]:
    return [
        Completion(text=f"{tag}{i}", finish_reason="stop", n_tokens=2,
                   token_logprobs=(-0.5, -1.25 - i), tokens=("x", f"y{i}"))
        for i in range(n)
    ]


def test_create_roundtrip(tmp_path: Path) -> None:
    with Store(tmp_path / "exp") as st:
        assert has_store(tmp_path / "exp")
        mode = st.conn.execute("PRAGMA journal_mode").fetchone()[0]
        assert mode.lower() == "wal"
        run = _run(st)
        assert run.name == "r1" and run.seed == 7 and run.spec["samples"] == 3
        assert st.add_questions(run.id, _qs()) == 3
        assert st.add_questions(run.id, _qs()) == 0  # idempotent
        st.add_batch(run.id, "q1", 0, 0, _comps(3), [11, 12, 13], greedy=_comps(1, "g")[0])
        assert st.done_ids(run.id) == {"q1"}
        assert st.progress(run.id) == (1, 3, 3)
    with Store(tmp_path / "exp", readonly=True) as st:
        run = st.find_run("r1")
        assert run is not None and run.semcal_version
        got = st.samples(run.id, "q1")
        assert [s.index for s in got] == [0, 1, 2]
        assert [s.seed for s in got] == [11, 12, 13]
        c = got[2].completion
        assert c.text == "a2" and c.tokens == ("x", "y2") and c.finish_reason == "stop"
        assert c.token_logprobs == pytest.approx((-0.5, -3.25))
        assert st.greedy(run.id)["q1"].text == "g0"
        assert [q.id for q in st.questions(run.id)] == ["q0", "q1", "q2"]
        assert st.integrity_check() == "ok"


def test_untrusted_text_is_stored_verbatim(tmp_path: Path) -> None:
    nasty = "'); DROP TABLE samples; -- \" <script>alert(1)</script> \x00 é"
    with Store(tmp_path) as st:
        run = _run(st, name=nasty)
        q = Question(id=nasty, question=nasty, answers=(nasty,))
        st.add_questions(run.id, [q])
        st.add_batch(run.id, nasty, 0, 0, [Completion(nasty, "stop", 1)], [1])
        assert st.find_run(nasty) is not None
        assert st.samples(run.id, nasty)[0].completion.text == nasty
        assert st.questions(run.id)[0].question == nasty


def test_batch_is_atomic(tmp_path: Path) -> None:
    with Store(tmp_path) as st:
        run = _run(st)
        st.add_questions(run.id, _qs())
        st.add_batch(run.id, "q0", 0, 0, _comps(2), [1, 2], done=False)
        # index 1 collides with a stored sample: the whole batch must be rolled back
        with pytest.raises(StoreError):
            st.add_batch(run.id, "q0", 1, 2 - 1, _comps(3), [3, 4, 5], done=True)
        assert len(st.samples(run.id, "q0")) == 2
        assert "q0" not in st.done_ids(run.id)


def test_keyboard_interrupt_rolls_back(tmp_path: Path) -> None:
    with Store(tmp_path) as st:
        run = _run(st)
        st.add_questions(run.id, _qs())
        with pytest.raises(KeyboardInterrupt):
            with st.transaction() as c:
                c.execute("UPDATE questions SET done=1 WHERE run_id=?", (run.id,))
                raise KeyboardInterrupt
        assert st.done_ids(run.id) == set()


def test_readonly_refuses_writes(tmp_path: Path) -> None:
    with Store(tmp_path) as st:
        run = _run(st)
    with Store(tmp_path, readonly=True) as st:
        with pytest.raises(StoreError, match="read-only"):
            st.add_questions(run.id, _qs())


def test_readonly_missing_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no semcal store"):
        Store(tmp_path / "nothing", readonly=True)


def test_disk_full_is_a_clear_error_and_db_stays_sound(tmp_path: Path) -> None:
    with Store(tmp_path) as st:
        run = _run(st)
        st.add_questions(run.id, _qs(50))
        st.add_batch(run.id, "q0", 0, 0, _comps(3), [1, 2, 3])
        pages = st.conn.execute("PRAGMA page_count").fetchone()[0]
        # simulate a full disk: the database may not grow any more
        st.conn.execute(f"PRAGMA max_page_count={pages + 1}")
        big = [Completion("x" * 20000, "length", 5000, tuple([-1.0] * 5000)) for _ in range(8)]
        with pytest.raises(StoreError, match="no space"):
            st.add_batch(run.id, "q1", 0, 0, big, list(range(8)))
        assert st.samples(run.id, "q1") == []
        assert st.integrity_check() == "ok"
    with Store(tmp_path) as st:
        assert st.integrity_check() == "ok"
        assert len(st.samples(run.id, "q0")) == 3


def test_unwritable_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot create"):
        Store(blocker / "sub")


def test_not_a_store(tmp_path: Path) -> None:
    (tmp_path / STORE_NAME).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a semcal store|damaged"):
        Store(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    con = sqlite3.connect(other / STORE_NAME)
    con.execute("CREATE TABLE t(x)")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="not a semcal store"):
        Store(other)


def test_newer_schema_rejected(tmp_path: Path) -> None:
    with Store(tmp_path) as st:
        with st.transaction() as c:
            c.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(StoreError, match="newer"):
        Store(tmp_path)


def test_changed_question_is_refused(tmp_path: Path) -> None:
    with Store(tmp_path) as st:
        run = _run(st)
        st.add_questions(run.id, _qs())
        changed = [Question(id="q1", question="Something else?", answers=("1",))]
        with pytest.raises(StoreError, match="differs"):
            st.add_questions(run.id, changed)


def test_duplicate_run_name(tmp_path: Path) -> None:
    with Store(tmp_path) as st:
        _run(st)
        with pytest.raises(StoreError, match="already exists"):
            _run(st, key="other")


def test_classes_and_grades_cache(tmp_path: Path) -> None:
    with Store(tmp_path) as st:
        run = _run(st)
        st.add_questions(run.id, _qs())
        st.save_classes(run.id, "exact", [("q0", 3, ["a", "a", "b"], {"a"}, "a")])
        st.save_grades(run.id, "exact", "exact", [("q0", 3, "a", 2, True)])
        assert st.classes(run.id, "exact")["q0"] == (3, ("a", "a", "b"), frozenset({"a"}), "a")
        assert st.grades(run.id, "exact", "exact")["q0"] == (3, "a", 2, True)
        assert st.classes(run.id, "math") == {}


def test_spec_key_is_stable() -> None:
    assert spec_key({"a": 1, "b": [1, 2]}) == spec_key({"b": [1, 2], "a": 1})
    assert spec_key({"a": 1}) != spec_key({"a": 2})


_WRITER = textwrap.dedent(
    """
    import sys
    from semcal.store import Store
    from semcal.types import Completion, Question
    st = Store(sys.argv[1])
    run = st.find_run("r") or st.create_run(name="r", key="k", spec={}, model="m",
        backend="b", style="s", dataset="d", temperature=1.0, top_p=1.0, max_tokens=8,
        samples=20, seed=0)
    qs = [Question(id=f"q{i}", question=f"Q{i}?", answers=("a",)) for i in range(100000)]
    st.add_questions(run.id, qs[:2000])
    print("ready", flush=True)
    done = st.done_ids(run.id)
    for q in qs[:2000]:
        if q.id in done:
            continue
        comps = [Completion("t" * 200, "stop", 50, tuple([-0.1] * 50)) for _ in range(20)]
        st.add_batch(run.id, q.id, 0, 0, comps, list(range(20)))
    """
)


def test_sigkill_never_leaves_a_partial_batch(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    for delay in (0.3, 0.7):
        p = subprocess.Popen([sys.executable, str(script), str(tmp_path / "exp")], env=env,
                             stdout=subprocess.PIPE, text=True)
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        with Store(tmp_path / "exp") as st:
            assert st.integrity_check() == "ok"
            run = st.find_run("r")
            assert run is not None
            counts = st.conn.execute(
                "SELECT q.qid, q.done, count(s.idx) FROM questions q LEFT JOIN samples s"
                " ON s.run_id=q.run_id AND s.qid=q.qid GROUP BY q.qid"
            ).fetchall()
            for _qid, done, n in counts:
                assert (done, n) in ((0, 0), (1, 20))
            assert sum(d for _q, d, _n in counts) > 0


def _downgrade(directory: Path, version: int, *statements: str) -> None:
    """Make a current store look written by an older schema ``version``: run ``statements``
    (undoing what came after it) and record the version."""
    conn = sqlite3.connect(directory / STORE_NAME)
    for st in statements:
        conn.execute(st)
    conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(version),))
    conn.commit()
    conn.close()


def _as_schema_2(directory: Path) -> None:
    """Turn a current store into one written by schema version 2 (M was ``n_samples``)."""
    _downgrade(directory, 2, "ALTER TABLE runs RENAME COLUMN samples TO n_samples",
               "DROP TABLE run_sessions")


def test_a_schema_2_store_is_migrated_and_keeps_its_runs(tmp_path: Path) -> None:
    d = tmp_path / "exp"
    with Store(d) as st:
        run = _run(st)
        st.add_questions(run.id, _qs(2))
        st.add_batch(run.id, "q0", 0, 0, _comps(3), [1, 2, 3])
    _as_schema_2(d)
    # read-only: read as it is (the old column name), nothing written
    with Store(d, readonly=True) as st:
        assert st.get_run(run.id).samples == 3
    conn = sqlite3.connect(d / STORE_NAME)
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "2"
    conn.close()
    # writable: migrated to the current schema, the run and its samples intact
    with Store(d) as st:
        info = st.get_run(run.id)
        assert info.samples == 3 and [s.completion.text for s in st.samples(run.id, "q0")] == ["a0", "a1", "a2"]
        assert st.create_run(name="r2", key="k2", spec={}, model="m", backend="fake", style="sentence",
                             dataset="demo", temperature=1.0, top_p=1.0, max_tokens=16, samples=5,
                             seed=0).samples == 5
    conn = sqlite3.connect(d / STORE_NAME)
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    cols = [r[1] for r in conn.execute("PRAGMA table_info(runs)")]
    conn.close()
    assert "samples" in cols and "n_samples" not in cols
    with Store(d) as st:  # the table added by schema 4 exists and works
        assert st.sessions(run.id) == []
        st.add_session(run.id, "llama-cpp-python 0.3.36")
        assert [x["engine"] for x in st.sessions(run.id)] == ["llama-cpp-python 0.3.36"]


# ---------------------------------------------------------------- sampling sessions, timed


def test_a_session_counts_what_its_store_object_commits(tmp_path: Path) -> None:
    """Each committed batch adds its samples, tokens (greedy included) and finished question
    to the session this store object opened, in the batch's own transaction; a batch whose
    transaction fails adds nothing; another store object (no session of its own) adds nothing."""
    d = tmp_path / "exp"
    with Store(d) as st:
        run = _run(st)
        st.add_questions(run.id, _qs(4))
        st.add_session(run.id, "engine A")
        (s,) = st.sessions(run.id)
        assert s["updated"] is None and s["samples"] is None  # nothing stored yet
        st.add_batch(run.id, "q0", 0, 0, _comps(3), [1, 2, 3], greedy=_comps(1, "g")[0])
        st.add_batch(run.id, "q1", 0, 0, _comps(2), [4, 5], done=False)  # first round only
        with pytest.raises(StoreError):  # q0 again: the batch is refused whole
            st.add_batch(run.id, "q0", 0, 0, _comps(3), [1, 2, 3])
        st.mark_done(run.id, "q1")
        (s,) = st.sessions(run.id)
        assert (s["samples"], s["tokens"], s["questions"]) == (5, 3 * 2 + 2 + 2 * 2, 2)
        assert s["updated"] >= s["started"]
        with Store(d) as other:  # a second writer without a session of its own
            other.add_batch(run.id, "q2", 0, 0, _comps(3), [6, 7, 8])
        st.add_session(run.id, "engine B")  # resumed: a new row counts from here
        st.add_batch(run.id, "q3", 0, 0, _comps(3), [9, 10, 11])
        s1, s2 = st.sessions(run.id)
    assert (s1["samples"], s1["questions"]) == (5, 2)
    assert (s2["samples"], s2["tokens"], s2["questions"], s2["engine"]) == (3, 6, 1, "engine B")


def _one_timed_session(directory: Path, engine: str, questions: int):
    """A store with one run of ``questions`` questions, one sampling session of ``engine`` and
    one batch of 3 samples (question q0) counted in it; returns the run."""
    with Store(directory) as st:
        run = _run(st)
        st.add_questions(run.id, _qs(questions))
        st.add_session(run.id, engine)
        st.add_batch(run.id, "q0", 0, 0, _comps(3), [1, 2, 3])
    return run


def _as_schema_4(directory: Path) -> None:
    """Turn a current store into one written by schema version 4 (sessions without timing)."""
    _downgrade(directory, 4, *(f"ALTER TABLE run_sessions DROP COLUMN {col}"
                               for col in ("updated", "samples", "tokens", "questions")))


def test_a_schema_4_store_gains_session_timing_and_keeps_its_sessions(tmp_path: Path) -> None:
    from semcal.analysis import sampling_note, sampling_time

    d = tmp_path / "exp"
    run = _one_timed_session(d, "old build", questions=2)
    _as_schema_4(d)
    with Store(d, readonly=True) as st:  # read as it is: the session, no timing
        (s,) = st.sessions(run.id)
        assert s["engine"] == "old build" and s["updated"] is None and s["tokens"] is None
    with Store(d) as st:  # migrated: the old row untimed, a new session timed
        st.add_session(run.id, "new build")
        st.add_batch(run.id, "q1", 0, 0, _comps(3), [4, 5, 6])
        old, new = st.sessions(run.id)
    assert old["updated"] is None and (new["samples"], new["tokens"], new["questions"]) == (3, 6, 1)
    t = sampling_time([old, new])
    assert (t["sessions"], t["timed"], t["tokens"], t["questions"]) == (2, 1, 6, 1)
    assert "; 1 session not timed (recorded before semcal timed sampling" in sampling_note(t)
    conn = sqlite3.connect(d / STORE_NAME)
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    conn.close()
    # two processes that both read version 4 before either migrated: the second finds the
    # columns already added (it reads the version again under the write lock) and adds nothing
    with Store(d) as st:
        st._migrate(4)
        assert len(st.sessions(run.id)) == 2


@pytest.mark.parametrize("column, value, why", [
    ("updated", "'yesterday'", "not an ISO 8601 time"),
    ("tokens", "-5", "expected a count"),
    ("samples", "'many'", "expected an integer"),
])
def test_a_damaged_session_row_is_a_store_error_naming_its_column(
        tmp_path: Path, column: str, value: str, why: str) -> None:
    d = tmp_path / "exp"
    run = _one_timed_session(d, "e", questions=1)
    conn = sqlite3.connect(d / STORE_NAME)
    conn.execute(f"UPDATE run_sessions SET {column}={value}")
    conn.commit()
    conn.close()
    with Store(d, readonly=True) as st, pytest.raises(StoreError) as e:
        st.sessions(run.id)
    assert "table run_sessions" in str(e.value) and f"column {column}" in str(e.value)
    assert why in str(e.value)
