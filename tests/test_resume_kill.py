"""kill -9 a real `semcal run` mid-way, resume it, and get exactly the uninterrupted results."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from semcal.store import STORE_NAME, Store

SRC = str(Path(__file__).resolve().parents[1] / "src")
N_Q, M = 5, 4
ARGS = ["run", "--model", "smollm2-135m-instruct", "--dataset", "demo", "--limit", str(N_Q),
        "--samples", str(M), "--style", "concise", "--max-tokens", "10", "--seed", "5", "--quiet"]


def _cmd(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from semcal.cli import main; sys.exit(main())",
            *ARGS, *extra, "--out", str(out)]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _done(out: Path) -> int:
    db = out / STORE_NAME
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return int(con.execute("SELECT count(*) FROM questions WHERE done=1").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def _content(out: Path) -> dict:
    with Store(out, readonly=True) as st:
        assert st.integrity_check() == "ok"
        (r,) = st.runs()
        samples = {
            q.id: [(s.round, s.index, s.seed, s.completion.text, s.completion.n_tokens,
                    s.completion.finish_reason) for s in st.samples(r.id, q.id)]
            for q in st.questions(r.id)
        }
        return {"samples": samples, "greedy": {k: v.text for k, v in st.greedy(r.id).items()},
                "done": sorted(st.done_ids(r.id)), "name": r.name}


def _analyze(out: Path) -> list[dict]:
    p = subprocess.run(
        [sys.executable, "-c", "import sys; from semcal.cli import main; sys.exit(main())",
         "analyze", str(out), "--json", "--n-boot", "200"],
        env=_env(), capture_output=True, text=True, timeout=300,
    )
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@pytest.mark.slow
def test_sigkill_mid_run_then_resume(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    t0 = time.monotonic()
    p = subprocess.run(_cmd(ref), env=_env(), capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    t_ref = time.monotonic() - t0

    proc = subprocess.Popen(_cmd(cut), env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 600
        while _done(cut) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the run finished before it could be killed"
        time.sleep(0.3)  # land inside the next batch
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    killed_at = _done(cut)
    assert 2 <= killed_at < N_Q

    partial = _content(cut)
    for qid in partial["done"]:
        assert len(partial["samples"][qid]) == M
    for qid, rows in partial["samples"].items():
        assert qid in partial["done"] or rows == []  # no half-stored batch

    # resume from what the store remembers (the spec is stored with the run)
    p = subprocess.run(
        [sys.executable, "-c", "import sys; from semcal.cli import main; sys.exit(main())",
         "resume", str(cut)],
        env=_env(), capture_output=True, text=True, timeout=600,
    )
    assert p.returncode == 0, p.stderr
    assert "(resumed)" in p.stderr

    a, b = _content(ref), _content(cut)
    assert sum(len(v) for v in b["samples"].values()) == N_Q * M  # nothing lost, nothing twice
    assert b == a
    # the resumed run kept what was stored before the kill
    for qid in partial["done"]:
        assert b["samples"][qid] == partial["samples"][qid]
    ma, mb = _analyze(ref), _analyze(cut)
    keys = ("n", "accuracy", "mean_confidence", "smece", "smece_lo", "smece_hi", "ece", "brier")
    assert [{k: m[k] for k in keys} for m in ma] == [{k: m[k] for k in keys} for m in mb]
    # the sampling time: the killed session counts exactly the batches it stored (counts and
    # samples commit together), the resumed one the rest; nothing lost or counted twice
    with Store(cut, readonly=True) as st:
        (r,) = st.runs()
        s1, s2 = st.sessions(r.id)
        tokens = st.conn.execute("SELECT coalesce(sum(n_tokens), 0) FROM samples").fetchone()[0]
        tokens += st.conn.execute("SELECT coalesce(sum(n_tokens), 0) FROM greedy").fetchone()[0]
    assert (s1["questions"], s1["samples"]) == (killed_at, killed_at * M)
    assert (s1["questions"] + s2["questions"], s1["samples"] + s2["samples"]) == (N_Q, N_Q * M)
    assert s1["tokens"] + s2["tokens"] == tokens > 0
    t = mb[0]["audit"]["sampling"]
    assert (t["sessions"], t["timed"], t["tokens"], t["questions"]) == (2, 2, tokens, N_Q)
    assert t["tokens_per_s"] is None or t["tokens_per_s"] > 0  # None: both spans under a second
    print(f"uninterrupted run {t_ref:.1f}s; killed after {killed_at}/{N_Q} questions")


@pytest.mark.slow
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_stop_like_ctrl_c(tmp_path: Path, sig: str) -> None:
    """`timeout`, a batch scheduler or a closed terminal stop a run the way Ctrl-C does: what
    is committed stays, the resume command is printed, the exit status is 128 + signal."""
    pytest.importorskip("llama_cpp")
    signum = getattr(signal, sig)
    out = tmp_path / "cut"
    proc = subprocess.Popen(_cmd(out), env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 600
        while _done(out) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the run finished before it could be stopped"
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signum, err  # before: killed silently by the signal
    assert f"stopped by {sig}" in err and f"Resume with: semcal resume {out}" in err, err
    assert "Traceback" not in err
    stopped_at = _done(out)
    assert 2 <= stopped_at <= N_Q
    p = subprocess.run(
        [sys.executable, "-c", "import sys; from semcal.cli import main; sys.exit(main())",
         "resume", str(out)],
        env=_env(), capture_output=True, text=True, timeout=600,
    )
    assert p.returncode == 0, p.stderr
    got = _content(out)
    assert got["done"] == sorted(got["samples"]) and len(got["done"]) == N_Q
    assert sum(len(v) for v in got["samples"].values()) == N_Q * M
