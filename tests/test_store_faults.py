"""Store faults: a read-only file system and a full disk end in one clear StoreError, and the
store is never corrupted (``PRAGMA integrity_check`` is "ok" afterwards, every batch that was
committed before the fault is still there, and a run can be resumed once space is back).

Real faults are injected with small tmpfs mounts (needs root / CAP_SYS_ADMIN; skipped with a
reason otherwise). The in-process variant (SQLite ``max_page_count``) is
tests/test_store.py::test_disk_full_is_a_clear_error_and_db_stays_sound. HTTP server faults
(dropped connections, 5xx, a server killed mid-run) are in tests/test_backend_faults.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from semcal.backends.base import sample_seed
from semcal.backends.mock import MockSampler
from semcal.errors import StoreError
from semcal.store import STORE_NAME, Store
from semcal.types import Completion, Question


def _mount(target: Path, options: str) -> None:
    target.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, f"semcal-{uuid.uuid4().hex[:6]}",
                        str(target)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.strip() or r.returncode}")


def _umount(target: Path) -> None:
    subprocess.run(["umount", "-l", str(target)], capture_output=True)


@pytest.fixture()
def mount_tmpfs() -> Iterator[Callable[[Path, str], Path]]:
    """``mount_tmpfs(path, options)`` mounts a tmpfs there; every mount is undone at teardown."""
    if shutil.which("mount") is None or not sys.platform.startswith("linux"):
        pytest.skip("tmpfs fault injection needs Linux mount")
    done: list[Path] = []

    def mount(target: Path, options: str) -> Path:
        _mount(target, options)
        done.append(target)
        return target

    yield mount
    for target in reversed(done):
        _umount(target)


@pytest.fixture()
def tiny_fs(tmp_path: Path, mount_tmpfs) -> Path:
    """A 1 MiB file system (fills after a few dozen batches)."""
    return mount_tmpfs(tmp_path / "tiny", "size=1m")


def _remount(mnt: Path, options: str) -> None:
    r = subprocess.run(["mount", "-o", f"remount,{options}", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot remount the tmpfs: {r.stderr.strip()}")


def _new_run(st: Store, n_questions: int = 300):
    run = st.create_run(name="r", key="k", spec={}, model="m", backend="b", style="concise",
                        dataset="d", temperature=1.0, top_p=1.0, max_tokens=512, samples=4, seed=0)
    st.add_questions(run.id, [Question(f"q{i}", f"Question {i}?", ("a",)) for i in range(n_questions)])
    return run


def _batch(i: int) -> list[Completion]:
    return [Completion(f"{i}-{j} " + "y" * 3000, "length", 500, tuple([-0.5] * 500)) for j in range(4)]


def _fill_until_full(st: Store, run_id: int) -> tuple[int, StoreError]:
    """Add batches until the disk is full; returns (batches committed, the error)."""
    for i in range(10_000):
        try:
            st.add_batch(run_id, f"q{i}", 0, 0, _batch(i), [1, 2, 3, 4])
        except StoreError as exc:
            return i, exc
    raise AssertionError("the file system never filled up")


# ----------------------------------------------------------------------------- disk full


def test_disk_full_gives_a_clear_error_and_loses_nothing_committed(tiny_fs: Path) -> None:
    st = Store(tiny_fs / "exp")
    run = _new_run(st)
    ok, err = _fill_until_full(st, run.id)
    assert ok >= 1, "the fs filled before one batch fit: enlarge the tmpfs"
    msg = str(err)
    assert "no space left" in msg and str(tiny_fs) in msg and "\n" not in msg
    # the failed batch is absent as a whole, the committed ones are intact
    assert st.samples(run.id, f"q{ok}") == []
    assert f"q{ok}" not in st.done_ids(run.id)
    assert st.progress(run.id) == (ok, 300, 4 * ok)
    assert st.integrity_check() == "ok"
    # further writes keep failing cleanly (no half state, no other exception type)
    with pytest.raises(StoreError, match="no space left"):
        st.add_batch(run.id, f"q{ok}", 0, 0, _batch(ok), [1, 2, 3, 4])
    st.close()  # the WAL checkpoint may fail on a full disk: logged, not raised
    with Store(tiny_fs / "exp", readonly=True) as ro:
        assert ro.integrity_check() == "ok"
        assert ro.progress(run.id) == (ok, 300, 4 * ok)
        texts = [s.completion.text for s in ro.samples(run.id, "q0")]
        assert texts == [c.text for c in _batch(0)]


def test_writing_resumes_after_space_is_freed(tiny_fs: Path) -> None:
    ballast = tiny_fs / "ballast"
    ballast.write_bytes(b"\0" * 600 * 1024)
    st = Store(tiny_fs / "exp")
    run = _new_run(st, 60)
    ok, _ = _fill_until_full(st, run.id)
    ballast.unlink()
    # the same batch that failed now goes in, and the store is sound
    st.add_batch(run.id, f"q{ok}", 0, 0, _batch(ok), [1, 2, 3, 4])
    assert st.progress(run.id)[0] == ok + 1
    assert st.integrity_check() == "ok"
    st.close()


def test_disk_full_at_creation_is_a_clear_error(tiny_fs: Path) -> None:
    (tiny_fs / "ballast").write_bytes(b"\0" * (1024 * 1024 - 8192))
    fill = tiny_fs / "ballast2"
    try:  # top up to the last byte
        with open(fill, "wb") as fh:
            while True:
                fh.write(b"\0" * 512)
                fh.flush()
    except OSError:
        pass
    with pytest.raises(StoreError) as exc:
        st = Store(tiny_fs / "exp2")
        _new_run(st, 50)
    assert "no space left" in str(exc.value) or "cannot" in str(exc.value)


def test_runner_on_a_full_disk_fails_cleanly_and_resumes_identically(tmp_path: Path, mount_tmpfs) -> None:
    """The runner's fault path: StoreError out of run(), nothing half-written, and a resume
    with space back produces exactly the samples an uninterrupted run stores."""
    import json

    from semcal.runner import run
    from semcal.spec import RunSpec

    qf = tmp_path / "q.jsonl"
    qf.write_text("".join(json.dumps({"id": f"q{i}", "question": f"Question number {i}?",
                                      "answers": ["a"]}) + "\n" for i in range(20)))

    # a deterministic engine with long outputs that depend on (prompt, seed, index)
    big = MockSampler("big", chat=True, respond=lambda p, i, params: (
        f"{p.messages[-1].content}|{sample_seed(params.seed, i)}|" + "z" * 2000))

    spec = RunSpec(model="big", dataset=str(qf), samples=4, style="concise")
    # the write-ahead log grows by whole pages per commit until it is checkpointed (at 4 MB),
    # so the run needs a few MB: a 4 MiB file system, 3.7 MiB of it taken by ballast
    tiny_fs = mount_tmpfs(tmp_path / "fs4m", "size=4m")
    ballast = tiny_fs / "ballast"
    ballast.write_bytes(b"\0" * 3700 * 1024)
    with pytest.raises(StoreError, match="no space left"):
        run(spec, tiny_fs / "exp", sampler=big, quiet=True, progress=False)
    with Store(tiny_fs / "exp", readonly=True) as st:
        assert st.integrity_check() == "ok"
        (r,) = st.runs()
        done, total, n = st.progress(r.id)
        assert 0 < done < total and n == 4 * done  # whole batches only
    ballast.unlink()
    res = run(spec, tiny_fs / "exp", sampler=big, quiet=True, progress=False)
    assert res.resumed and res.complete
    ref = run(spec, tmp_path / "ref", sampler=big, quiet=True, progress=False)

    def dump(d: Path):
        with Store(d, readonly=True) as st:
            (r,) = st.runs()
            return {q: [(s.index, s.seed, s.completion) for s in v]
                    for q, v in st.all_samples(r.id).items()}, st.greedy(r.id)

    assert dump(tiny_fs / "exp") == dump(tmp_path / "ref")
    assert ref.samples_total == res.samples_total == 80


# ----------------------------------------------------------------------------- read-only


def test_new_store_on_a_read_only_file_system(tmp_path: Path, mount_tmpfs) -> None:
    mnt = mount_tmpfs(tmp_path / "ro", "ro,size=64k")
    with pytest.raises(StoreError) as exc:
        Store(mnt / "exp")
    assert str(mnt) in str(exc.value) and "\n" not in str(exc.value)
    assert "Read-only" in str(exc.value) or "read-only" in str(exc.value)


def test_existing_store_on_a_file_system_turned_read_only(tiny_fs: Path) -> None:
    with Store(tiny_fs / "exp") as st:
        run = _new_run(st, 5)
        st.add_batch(run.id, "q0", 0, 0, _batch(0), [1, 2, 3, 4])
    _remount(tiny_fs, "ro")
    try:
        # opening for writing fails with one clear message ...
        with pytest.raises(StoreError, match="read-only|readonly|cannot"):
            st = Store(tiny_fs / "exp")
            st.add_batch(run.id, "q1", 0, 0, _batch(1), [1, 2, 3, 4])
        # ... while analysis (read-only open) still works and sees everything committed
        with Store(tiny_fs / "exp", readonly=True) as ro:
            assert ro.integrity_check() == "ok"
            assert ro.progress(run.id) == (1, 5, 4)
            assert ro.samples(run.id, "q0")[0].completion.text == _batch(0)[0].text
    finally:
        _remount(tiny_fs, "rw")
    with Store(tiny_fs / "exp") as st:
        assert st.integrity_check() == "ok"
        st.add_batch(run.id, "q1", 0, 0, _batch(1), [1, 2, 3, 4])
        assert st.progress(run.id) == (2, 5, 8)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions (the tmpfs tests cover root)")
def test_store_in_a_directory_without_write_permission(tmp_path: Path) -> None:
    d = tmp_path / "locked"
    d.mkdir()
    d.chmod(0o555)
    try:
        with pytest.raises(StoreError, match="cannot"):
            Store(d)
    finally:
        d.chmod(0o755)


def test_cli_run_into_a_read_only_directory_is_one_line(tmp_path: Path, mount_tmpfs) -> None:
    """Through the CLI: one line on stderr, exit status 2, no traceback, nothing sampled
    (the store is opened before the model is loaded)."""
    mnt = mount_tmpfs(tmp_path / "ro", "ro,size=64k")
    r = subprocess.run(
        [sys.executable, "-m", "semcal.cli", "run", "--model", "gemma-3-270m",
         "--dataset", "demo", "--limit", "1", "--samples", "1", "--out", str(mnt / "exp")],
        capture_output=True, text=True, timeout=120,
    )
    err = r.stderr.strip()
    assert r.returncode == 2, (r.returncode, err)
    assert "Traceback" not in r.stderr + r.stdout
    assert err.startswith("semcal: error:") and len(err.splitlines()) == 1, err
    assert str(mnt) in err


# ----------------------------------------------------------------------------- damaged files


def test_truncated_store_is_reported_not_crashed(tmp_path: Path) -> None:
    with Store(tmp_path / "exp") as st:
        run = _new_run(st, 50)
        for i in range(10):
            st.add_batch(run.id, f"q{i}", 0, 0, _batch(i), [1, 2, 3, 4])
    path = tmp_path / "exp" / STORE_NAME
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(StoreError, match="damaged|not a semcal store|cannot"):
        with Store(tmp_path / "exp", readonly=True) as st:
            for r in st.runs():
                st.all_samples(r.id)
            if st.integrity_check() != "ok":
                raise StoreError("integrity_check failed")


def test_analyze_and_report_of_a_read_only_store_print_no_warnings(tiny_fs: Path, tmp_path: Path) -> None:
    """`semcal analyze` of a store on a read-only file system: the table and no WARNING lines
    (the class cache cannot be written; that is not the user's problem). A report written
    elsewhere works too."""
    with Store(tiny_fs / "exp") as st:
        run = _new_run(st, 3)
        for i in range(3):
            st.add_batch(run.id, f"q{i}", 0, 0, _batch(i), [1, 2, 3, 4])
    _remount(tiny_fs, "ro")
    try:
        for argv in (["analyze", str(tiny_fs / "exp"), "--n-boot", "10"],
                     ["report", str(tiny_fs / "exp"), "-o", str(tmp_path / "r.html"), "--n-boot", "10"]):
            r = subprocess.run([sys.executable, "-m", "semcal.cli", *argv], capture_output=True,
                               text=True, timeout=120)
            assert r.returncode == 0, r.stderr
            assert r.stderr.strip() == "", r.stderr
    finally:
        _remount(tiny_fs, "rw")
