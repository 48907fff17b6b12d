"""Several processes on one store: creation is race-free, runs get distinct names, one run has
one writer (a second one fails with one line naming the holder), other runs go on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from semcal.store import LOCK_DIR, Store

# each child waits for a common start time, then opens the store and its run
_CHILD = r"""
import sys, time
from semcal.runner import open_run
from semcal.spec import RunSpec
from semcal.store import Store
out, seed, start = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
time.sleep(max(0.0, start - time.time()))
with Store(out) as st:
    run, resumed = open_run(st, RunSpec(model="smollm2-135m-instruct", dataset="world", seed=seed))
print(run.id, run.name, resumed)
"""


def _race(out: Path, seeds: list[int]) -> list[tuple[int, str, bool]]:
    start = time.time() + 3.0  # every interpreter is up by then
    procs = [subprocess.Popen([sys.executable, "-c", _CHILD, str(out), str(s), repr(start)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for s in seeds]
    rows = []
    for p in procs:
        o, e = p.communicate(timeout=120)
        assert p.returncode == 0, e
        rid, name, resumed = o.split()
        rows.append((int(rid), name, resumed == "True"))
    return rows


@pytest.mark.parametrize("trial", range(2))
def test_processes_creating_one_store_and_runs_at_once(tmp_path: Path, trial: int) -> None:
    """Six processes open a fresh store at the same moment: no `UNIQUE constraint` failure;
    runs of different specs get distinct names; the same spec gives one run."""
    rows = _race(tmp_path / "exp", [1, 2, 3, 4, 5, 6])
    assert len({r[0] for r in rows}) == 6 and len({r[1] for r in rows}) == 6
    assert not any(r[2] for r in rows)
    same = _race(tmp_path / "exp2", [7, 7, 7, 7])
    assert len({r[0] for r in same}) == 1  # one run, created once
    assert sum(not r[2] for r in same) == 1  # one creator, three found it
    with Store(tmp_path / "exp2", readonly=True) as st:
        assert len(st.runs()) == 1 and st.integrity_check() == "ok"


def _cli(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "semcal.cli", "run", "--model", "smollm2-135m-instruct",
            "--dataset", "world", "--samples", "2", "--max-tokens", "12", "--out", str(out),
            "-q", *extra]


def test_one_writer_per_run_through_the_cli(tmp_path: Path) -> None:
    """Real model: while one `semcal run` samples, the same command fails at once with one
    line naming the holder's pid; a run with other settings in the same store proceeds; after
    the holder is killed with SIGKILL the lock is gone and the run resumes to the end."""
    out = tmp_path / "exp"
    first = subprocess.Popen(_cli(out, "--limit", "200"), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    lock = out / LOCK_DIR / "run-1.lock"
    deadline = time.time() + 120
    while not (lock.exists() and lock.read_text().startswith("pid")):
        assert first.poll() is None, first.communicate()
        assert time.time() < deadline, "the first run never took its lock"
        time.sleep(0.1)
    try:
        second = subprocess.run(_cli(out, "--limit", "200"), capture_output=True, text=True,
                                timeout=120)
        assert second.returncode == 2, second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert "is being sampled by another process" in lines[0]
        assert f"pid {first.pid} on " in lines[0]
        assert "UNIQUE" not in second.stderr and "sqlite" not in second.stderr.lower()
        other = subprocess.run(_cli(out, "--limit", "2", "--seed", "5"), capture_output=True,
                               text=True, timeout=300)
        assert other.returncode == 0, other.stderr
        assert first.poll() is None, "the first run ended too early for this test"
    finally:
        if first.poll() is None:
            os.kill(first.pid, signal.SIGKILL)
        first.communicate()
    again = subprocess.run(_cli(out, "--limit", "3"), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    with Store(out, readonly=True) as st:
        runs = {r.name: r for r in st.runs()}
        assert len(runs) == 2
        progress = sorted(st.progress(r.id)[:2] for r in runs.values())
        assert progress[0] == (2, 2)  # the other run
        assert st.integrity_check() == "ok"
