"""Unbounded work: every count a user can give has an upper bound (semcal.limits), every input
is bounded by what it expands to, and a stopped analysis leaves no worker process behind.

Each case goes through the CLI in a subprocess: exit status 2, one line naming the flag (or
key) and its bound, little CPU time, and nothing written.
"""

from __future__ import annotations

import os
import random
import resource
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import pytest

from semcal.errors import InputError
from semcal.limits import BOUNDS, MAX_DATASET_LINES, MAX_LIST_ITEMS

CLI = [sys.executable, "-m", "semcal.cli"]


def _cli(args: list[str], cwd: Path, timeout: float = 120) -> tuple[Any, float, float]:
    """Run the CLI; return the result, its wall time and its CPU time (user + system)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    r = subprocess.run([*CLI, *args, "-q"], cwd=cwd, capture_output=True, text=True,
                       timeout=timeout)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return r, wall, cpu


def _one_error_line(r: Any) -> str:
    assert "Traceback" not in r.stderr + r.stdout, r.stderr
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("semcal") and ": error: " in lines[0], lines[0]
    assert "unexpected error" not in lines[0]
    return lines[0]


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file()}


def _small_store(folder: Path, n_questions: int, n_samples: int) -> None:
    from semcal.store import Store
    from semcal.types import Completion, Question

    rng = random.Random(0)
    with Store(folder) as s:
        run = s.create_run(name="r", key="k", spec={}, model="m", backend="mock",
                           style="concise", dataset="d", temperature=1.0, top_p=1.0,
                           max_tokens=8, samples=n_samples, seed=0)
        qs = [Question(f"q{i}", f"Q{i}?", ("Paris",)) for i in range(n_questions)]
        s.add_questions(run.id, qs)
        for q in qs:
            comps = [Completion(rng.choice(["Paris", "London", "Rome"]), "stop", 1)
                     for _ in range(n_samples)]
            s.add_batch(run.id, q.id, 0, 0, comps, list(range(n_samples)))
        s.mark_run_finished(run.id)


@pytest.fixture(scope="module")
def exp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bounds") / "exp"
    _small_store(folder, 3, 2)
    return folder


# ----------------------------------------------------------------------------- flags

_RUN = ["run", "--out", "{tmp}/o", "--model", "mock", "--backend", "mock"]
_DEMO = ["demo", "--out", "{tmp}/o"]
_REP = ["reproduce", "--out", "{tmp}/rep"]
#: (command, flag, bound name): the flag is given its bound + 1
FLAGS = [
    (_RUN, "--samples", "samples"),
    (_RUN, "--max-tokens", "max_tokens"),
    (_RUN, "--seed", "seed"),
    (_RUN, "--k-shot", "k_shot"),
    (_RUN, "--batch-questions", "batch_questions"),
    (_RUN, "--limit", "limit"),
    (_RUN, "--threads", "threads"),
    (_RUN, "--workers", "workers"),
    ([*_RUN, "--adaptive"], "--round", "adaptive.round"),
    ([*_RUN, "--adaptive"], "--min-samples", "adaptive.min_samples"),
    (_DEMO, "--samples", "samples"),
    (_DEMO, "--limit", "limit"),
    (_DEMO, "--seed", "seed"),
    (_DEMO, "--threads", "threads"),
    (["analyze", "{exp}"], "--n-boot", "n_boot"),
    (["analyze", "{exp}", "--replay-adaptive"], "--round", "adaptive.round"),
    (["analyze", "{exp}", "--replay-adaptive"], "--min-samples", "adaptive.min_samples"),
    (["report", "{exp}"], "--n-boot", "n_boot"),
    (["compare", "{exp}", "{exp}"], "--n-boot", "n_boot"),
    (_REP, "--n-boot", "n_boot"),
    (_REP, "--questions", "questions"),
    (_REP, "--samples", "samples"),
    (_REP, "--seed", "seed"),
]


def _check_refused(argv: list[str], tmp_path: Path, exp: Path, names: tuple[str, ...],
                   bound: int, cpu_limit: float = 1.0) -> None:
    """``argv`` fails at once: one line naming ``names`` and ``bound``, under ``cpu_limit``
    seconds of CPU (a flag fails while the arguments are parsed; a spec file after the
    command has imported its modules, about 0.6-1.2 s), nothing written."""
    before = _snapshot(exp)
    args = [a.replace("{tmp}", str(tmp_path)).replace("{exp}", str(exp)) for a in argv]
    r, wall, cpu = _cli(args, cwd=tmp_path)
    line = _one_error_line(r)
    for name in names:
        assert name in line, line
    assert str(bound) in line, line
    assert cpu < cpu_limit, f"{cpu:.2f} s of CPU before refusing"
    assert wall < 30, wall
    written = sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".toml"))
    assert written == [], written  # no experiment folder, no compare.html
    assert _snapshot(exp) == before  # the store was not touched


@pytest.mark.parametrize(("cmd", "flag", "name"), FLAGS,
                         ids=[f"{c[0]}{f}" + ("-replay" if "--replay-adaptive" in c else "")
                              for c, f, _ in FLAGS])
def test_every_count_flag_has_an_upper_bound(cmd: list[str], flag: str, name: str,
                                             tmp_path: Path, exp: Path) -> None:
    hi = BOUNDS[name].high
    _check_refused([*cmd, flag, str(hi + 1)], tmp_path, exp, (flag,), hi)


@pytest.mark.parametrize("tool", ["--collapse-opt", "--grader-opt"])
def test_the_judge_reply_budget_is_bounded(tool: str, tmp_path: Path, exp: Path) -> None:
    hi = BOUNDS["max_tokens"].high
    _check_refused(["analyze", "{exp}", tool, f"max_tokens={hi + 1}"], tmp_path, exp,
                   (tool, "max_tokens"), hi, cpu_limit=3.0)  # after `analyze` imports numpy


def test_a_huge_n_boot_fails_at_once(tmp_path: Path, exp: Path) -> None:
    """The reported case: `analyze --n-boot 100000000` ran past 300 s and 6.7 GB."""
    _check_refused(["analyze", "{exp}", "--n-boot", "100000000"], tmp_path, exp,
                   ("--n-boot",), BOUNDS["n_boot"].high)


# ----------------------------------------------------------------------------- spec files

#: (TOML text, key shown, bound)
RUN_SPECS = [
    ("samples = {v}", "samples", "samples"),
    ("max_tokens = {v}", "max_tokens", "max_tokens"),
    ("k_shot = {v}", "k_shot", "k_shot"),
    ("seed = {v}", "seed", "seed"),
    ("batch_questions = {v}", "batch_questions", "batch_questions"),
    ("limit = {v}", "limit", "limit"),
    ("[adaptive]\nround = {v}", "adaptive.round", "adaptive.round"),
    ("[adaptive]\nmin_samples = {v}", "adaptive.min_samples", "adaptive.min_samples"),
    ('[executor]\nkind = "ray"\nworkers = {v}', "executor.workers", "workers"),
    ('[executor]\nkind = "ray"\nshard_questions = {v}', "executor.shard_questions",
     "shard_questions"),
]
EXPERIMENT_SPECS = [
    ("n_boot = {v}", "n_boot", "n_boot"),
    ("questions = {v}", "questions", "questions"),
    ("samples = {v}", "samples", "samples"),
    ("[max_tokens]\ncot = {v}", "max_tokens.cot", "max_tokens"),
    ("[trajectories]\ncontinuations = {v}", "trajectories.continuations",
     "trajectories.continuations"),
    ("[selfpredict]\ntop_k = {v}", "selfpredict.top_k", "selfpredict.top_k"),
    ("[selfpredict]\nmax_tokens = {v}", "selfpredict.max_tokens", "max_tokens"),
]


@pytest.mark.parametrize(("text", "key", "name"), RUN_SPECS, ids=[k for _, k, _ in RUN_SPECS])
def test_a_run_spec_cannot_dodge_the_bound(text: str, key: str, name: str, tmp_path: Path,
                                           exp: Path) -> None:
    hi = BOUNDS[name].high
    (tmp_path / "s.toml").write_text('model = "mock"\nbackend = "mock"\n'
                                     + text.format(v=hi + 1) + "\n")
    _check_refused(["run", "{tmp}/s.toml", "--out", "{tmp}/o"], tmp_path, exp, (key,), hi,
                   cpu_limit=3.0)


@pytest.mark.parametrize(("text", "key", "name"), EXPERIMENT_SPECS,
                         ids=[k for _, k, _ in EXPERIMENT_SPECS])
def test_an_experiment_spec_cannot_dodge_the_bound(text: str, key: str, name: str,
                                                   tmp_path: Path, exp: Path) -> None:
    hi = BOUNDS[name].high
    (tmp_path / "e.toml").write_text('backend = "mock"\n' + text.format(v=hi + 1) + "\n")
    _check_refused(["reproduce", "{tmp}/e.toml", "--out", "{tmp}/rep"], tmp_path, exp,
                   (key,), hi, cpu_limit=3.0)


def test_an_experiment_spec_list_is_bounded(tmp_path: Path, exp: Path) -> None:
    """Each temperature is a run: a list of a thousand is refused."""
    values = ", ".join(f"{0.1 + i / 1000:.3f}" for i in range(MAX_LIST_ITEMS + 1))
    (tmp_path / "e.toml").write_text(f'backend = "mock"\n[temperature]\nvalues = [{values}]\n')
    _check_refused(["reproduce", "{tmp}/e.toml", "--out", "{tmp}/rep"], tmp_path, exp,
                   ("temperature.values",), MAX_LIST_ITEMS, cpu_limit=3.0)


def test_the_bounds_table_is_sound() -> None:
    for name, b in BOUNDS.items():
        assert 0 <= b.low < b.high, name
        assert b.why.strip(), name


# ----------------------------------------------------------------------------- inputs


def _gzip(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: a gzip member
    return c.compress(data) + c.flush()


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small .gz files that expand without end: repeated gzip members (one compressed once,
    written many times), a few MB each."""
    d = tmp_path_factory.mktemp("bombs")
    (d / "zeros.jsonl.gz").write_bytes(_gzip(b"\0" * (64 << 20)) * 40)  # 2.5 GiB of zeros
    line = b'{"question": "What is the capital of France?", "answer": "Paris"}\n'
    member = _gzip(line * ((64 << 20) // len(line)))
    (d / "lines.jsonl.gz").write_bytes(member * 20)  # 1.25 GiB, 20 M valid questions
    (d / "lines.csv.gz").write_bytes(
        _gzip(b"question,answer\n") + _gzip(b"What is 2+2?,4\n" * (4 << 20)) * 4)
    (d / "newlines.jsonl.gz").write_bytes(_gzip(b"\n" * (MAX_DATASET_LINES + 10)))
    return d


@pytest.mark.parametrize(("name", "fragment"), [
    ("zeros.jsonl.gz", "line longer than"),
    ("lines.jsonl.gz", "counted after decompression"),
    ("lines.csv.gz", "counted after decompression"),
    ("newlines.jsonl.gz", "counted after decompression"),
])
def test_a_gzip_bomb_is_refused_fast(name: str, fragment: str, bombs: Path,
                                     tmp_path: Path) -> None:
    """Before: a 2 MB .jsonl.gz ran 285 s to a MemoryError. The bounds count decompressed
    bytes and lines; a .gz is measured before any line is parsed."""
    assert (bombs / name).stat().st_size < 8 << 20
    r, wall, cpu = _cli(["run", "--model", "mock", "--backend", "mock", "--dataset",
                         str(bombs / name), "--out", str(tmp_path / "o")], cwd=tmp_path)
    line = _one_error_line(r)
    assert fragment in line and name in line, line
    assert cpu < 4.0, f"{cpu:.2f} s of CPU"
    assert not (tmp_path / "o").exists()


def _fifo(path: Path) -> Path:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes here")
    os.mkfifo(path)
    return path


def _special_inputs(tmp_path: Path) -> dict[str, list[str]]:
    fifo = str(_fifo(tmp_path / "pipe.jsonl"))
    spec = str(_fifo(tmp_path / "pipe.toml"))
    gguf = str(_fifo(tmp_path / "pipe.gguf"))
    gzfifo = str(_fifo(tmp_path / "pipe.jsonl.gz"))
    run = ["run", "--model", "mock", "--backend", "mock", "--out", str(tmp_path / "o")]
    return {
        "dataset-fifo": [*run, "--dataset", fifo],
        "dataset-fifo-gz": [*run, "--dataset", gzfifo],
        "dataset-fifo-format": [*run, "--dataset", fifo, "--format", "csv"],
        "dataset-dev-zero": [*run, "--dataset", "/dev/zero", "--format", "jsonl"],
        "dataset-folder": [*run, "--dataset", str(tmp_path)],
        "spec-fifo": ["run", spec, "--out", str(tmp_path / "o")],
        "spec-dev-zero": ["run", "/dev/zero", "--out", str(tmp_path / "o")],
        "spec-folder": ["run", str(tmp_path), "--out", str(tmp_path / "o")],
        "experiment-fifo": ["reproduce", spec, "--out", str(tmp_path / "o")],
        "model-fifo": ["run", "--model", gguf, "--out", str(tmp_path / "o")],
    }


_SPECIAL = ["dataset-fifo", "dataset-fifo-gz", "dataset-fifo-format", "dataset-dev-zero",
            "dataset-folder", "spec-fifo", "spec-dev-zero", "spec-folder", "experiment-fifo",
            "model-fifo"]


@pytest.mark.parametrize("case", _SPECIAL)
def test_a_pipe_device_or_folder_is_refused_at_once(case: str, tmp_path: Path) -> None:
    """Opening a FIFO waits for a writer for ever, /dev/zero never ends: each is refused
    from its stat before it is opened (before: the CLI hung)."""
    if case.endswith("dev-zero") and not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    argv = _special_inputs(tmp_path)[case]
    r, wall, cpu = _cli(argv, cwd=tmp_path, timeout=60)
    line = _one_error_line(r)
    assert cpu < 3.0, f"{cpu:.2f} s of CPU"  # mostly the command's imports
    assert not (tmp_path / "o").exists(), line
    if case == "model-fifo":
        assert "is not a regular file" in line, line


def test_questions_beyond_the_bound_are_refused(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from semcal.data import loader

    monkeypatch.setattr(loader, "MAX_QUESTIONS", 5)
    f = tmp_path / "q.jsonl"
    f.write_text("".join(f'{{"question": "Q{i}?", "answer": "a"}}\n' for i in range(8)))
    with pytest.raises(InputError, match="more than 5 questions; take the first N with --limit"):
        loader.load_questions(f)
    assert len(loader.load_questions(f, limit=5)) == 5


def test_a_parquet_file_is_bounded_by_its_decompressed_size(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    from semcal.data import loader, readers

    f = tmp_path / "q.parquet"
    pq.write_table(pa.table({"question": [f"What {i}? " + "x" * 100_000 for i in range(20)],
                             "answer": ["a"] * 20}), f, compression="zstd")
    assert f.stat().st_size < 100_000 < 2_000_000  # compressed small, expands to 2 MB
    monkeypatch.setattr(readers, "MAX_PARQUET_BYTES", 1 << 20)
    with pytest.raises(InputError, match="Parquet data expand to"):
        loader.load_questions(f)
    monkeypatch.setattr(readers, "MAX_PARQUET_BYTES", 1 << 30)
    monkeypatch.setattr(readers, "MAX_DATASET_LINES", 10)
    with pytest.raises(InputError, match="holds 20 rows, more than 10"):
        loader.load_questions(f)


def test_a_label_file_must_be_a_regular_file(tmp_path: Path) -> None:
    from semcal.collapse.labelled import load_labelled

    (tmp_path / "m--s.jsonl").write_text(
        '{"id": "a", "question": "Q?", "answers": ["x"], "responses": [{"text": "x"}]}\n')
    (tmp_path / "labels").mkdir()
    _fifo(tmp_path / "labels" / "m--s.jsonl")
    with pytest.raises(InputError, match="named pipe"):
        load_labelled(tmp_path)


# ----------------------------------------------------------------------------- worker pool

needs_pool = pytest.mark.skipif(
    (os.cpu_count() or 1) < 2 or not sys.platform.startswith("linux"),
    reason="the analysis uses worker processes only with 2+ cores (and /proc is Linux's)")


@pytest.fixture(scope="module")
def big_exp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3000 questions x 5 samples: too few texts for collapsing in worker processes, so the
    one pool is the bootstrap's, which with --n-boot 50000 runs for a minute on 2 cores."""
    folder = tmp_path_factory.mktemp("pool") / "exp"
    _small_store(folder, 3000, 5)
    return folder


def _children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # a zombie is dead, waiting to be reaped


def _start_analysis(big_exp: Path) -> tuple[subprocess.Popen[str], list[int]]:
    p = subprocess.Popen([*CLI, "analyze", str(big_exp), "--n-boot", "50000", "-q"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    deadline = time.monotonic() + 60
    while not _children(p.pid):
        if p.poll() is not None or time.monotonic() > deadline:
            p.kill()
            pytest.fail(f"no worker processes appeared: {p.communicate()[1]}")
        time.sleep(0.05)
    time.sleep(0.5)  # the pool is busy
    return p, _children(p.pid)


def _gone_within(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        left = [q for q in pids if _alive(q)]
        if not left:
            return []
        time.sleep(0.1)
    left = [q for q in pids if _alive(q)]
    for q in left:  # do not leave them running after a failure
        os.kill(q, signal.SIGKILL)
    return left


@needs_pool
@pytest.mark.parametrize(("how", "status", "said"), [
    ("SIGTERM to the CLI", 128 + signal.SIGTERM, "semcal: stopped by SIGTERM"),
    ("SIGTERM to the group", 128 + signal.SIGTERM, "semcal: stopped by SIGTERM"),
    ("SIGINT to the group", 130, "semcal: interrupted"),
], ids=["term", "term-group", "ctrl-c"])
def test_a_stopped_analysis_ends_its_workers_quietly(how: str, status: int, said: str,
                                                     big_exp: Path) -> None:
    """SIGTERM (from `timeout`, which signals the whole group, or a scheduler) or Ctrl-C
    during `analyze`: one line, no worker traceback, the workers ended at once (before: the
    CLI waited for the running bootstrap, 45 s at --n-boot 50000, and
    workers could print tracebacks)."""
    p, workers = _start_analysis(big_exp)
    sig = signal.SIGINT if "SIGINT" in how else signal.SIGTERM
    t0 = time.monotonic()
    if "group" in how:
        os.killpg(p.pid, sig)
    else:
        os.kill(p.pid, sig)
    try:
        out, err = p.communicate(timeout=60)
    finally:
        p.kill()
    waited = time.monotonic() - t0
    assert "Traceback" not in err, err
    assert err.strip().splitlines() == [said], err
    assert p.returncode == status
    assert waited < 10, f"the CLI took {waited:.1f} s to stop"
    assert _gone_within(workers, 5) == []


@needs_pool
def test_workers_die_with_a_killed_parent(big_exp: Path) -> None:
    """`kill -9` of the CLI (before: its 6 workers ran on for 85 minutes under PID 1)."""
    p, workers = _start_analysis(big_exp)
    os.kill(p.pid, signal.SIGKILL)
    p.communicate(timeout=30)
    assert _gone_within(workers, 5) == []
