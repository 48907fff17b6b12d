"""Reliability of the OpenAI-compatible backend, round three (issue 22), against a real
local HTTP server (tests/servers/scripted_server.py) and through the CLI:

1. empty answers ("" or whitespace, finish_reason "length", 0 tokens: what a reasoning model
   behind such an API returns when its budget runs out) are stored as samples, warned about
   at run time with their count, labelled ``<no answer>`` by every B, and a question whose
   plurality is no answer has confidence 0, never 1;
2. a server that cannot be reached is one line, exit 2, and leaves no empty run behind;
3. a server that trickles its headers is cut off at ``timeout`` (a wall-clock total).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from semcal.analysis import analyze_dir  # noqa: E402
from semcal.backends.openai import OpenAISampler  # noqa: E402
from semcal.collapse import get_collapse  # noqa: E402
from semcal.confidence import estimate_all  # noqa: E402
from semcal.errors import BackendError  # noqa: E402
from semcal.grade import Grade, answer_confidence, is_empty_answer  # noqa: E402
from semcal.store import STORE_NAME, Store  # noqa: E402
from semcal.types import NO_ANSWER, REFUSAL, Message, Prompt, Question, SamplingParams  # noqa: E402
from servers import procs  # noqa: E402
from servers.scripted_server import ScriptedServer, completion_json  # noqa: E402

SRC = str(Path(__file__).resolve().parents[1] / "src")
TEXT = Prompt(text="Q: What is the capital of France?\nA:")
CHAT = Prompt(messages=(Message("user", "What is the capital of France?"),))
PARAMS = SamplingParams(temperature=1.0, max_tokens=8, seed=1)
PARIS = Question("q1", "What is the capital of France?", ("Paris",))
EMPTIES = ["", " ", "\n\n", "\t \u00a0\n"]


def _semcal(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "semcal.cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def _dataset(tmp_path: Path, n: int = 3) -> Path:
    data = tmp_path / "q.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "question": f"What is the capital of country {i}?",
                                        "answers": ["Paris"]}) + "\n" for i in range(n)))
    return data


def _run_args(data: Path, out: Path, base_url: str, *extra: str) -> list[str]:
    return ["run", "--backend", "openai", "--model", "m", "--dataset", str(data), "--out", str(out),
            "--samples", "4", "--style", "concise", "-q", "--backend-opt", f'base_url="{base_url}"',
            "--backend-opt", "chat=false", "--backend-opt", "backoff=0.01", *extra]


# ------------------------------------------------------------------ 1. empty answers


@pytest.mark.parametrize("chat", [False, True], ids=["completions", "chat"])
def test_an_empty_answer_is_a_sample_not_a_fault(chat):
    """"" and whitespace-only content (finish_reason "length", 0 completion tokens) is a real
    draw of the model: returned as a sample, not retried (a null content is; see
    test_backend_faults.py::test_an_answer_without_text_is_malformed_not_empty)."""
    answers = iter(EMPTIES * 2)
    with ScriptedServer(lambda path, body: completion_json(next(answers), chat=chat)) as srv:
        with OpenAISampler("m", base_url=srv.base_url, chat=chat, n_mode="separate",
                           max_retries=0, timeout=10) as s:
            out = s.sample([CHAT if chat else TEXT], 4, PARAMS)
            assert s.stats.failures == {} and s.stats.ok == 4
    texts = sorted(c.text for c in out[0])
    assert texts == sorted(EMPTIES)
    assert all(c.finish_reason == "length" and c.n_tokens == 0 for c in out[0])
    assert all(is_empty_answer(t) for t in texts) and not is_empty_answer(" x ")


@pytest.mark.parametrize("name", ["exact", "math", "auto"])
def test_every_builtin_b_labels_an_empty_text_no_answer(name):
    q = PARIS if name != "math" else Question("m1", "What is 2 + 2?", ("4",), task="math")
    col = get_collapse(name)(q, [*EMPTIES, "Paris" if name != "math" else "4"])
    assert col.labels[: len(EMPTIES)] == (NO_ANSWER,) * len(EMPTIES)
    assert col.labels[-1] in col.gold


def test_a_question_that_gives_no_answer_has_confidence_zero():
    """The plurality stays the paper's (non-answers lose ties only), but a non-answer
    prediction carries no confidence: before, [<no answer>] * M had confidence 1.0."""
    assert answer_confidence(NO_ANSWER, 5, 5) == 0.0
    assert answer_confidence(REFUSAL, 3, 4) == 0.0
    assert answer_confidence("paris", 3, 4) == 0.75
    assert answer_confidence("paris", 0, 0) == 0.0
    assert Grade(NO_ANSWER, 5, 5, False).confidence == 0.0
    est = estimate_all([NO_ANSWER] * 5, None, None)
    assert est["semantic"] == 0.0 and est["semantic_laplace"] == 0.0
    assert est["neg_num_classes"] == -1  # scores are left as they are
    est = estimate_all([NO_ANSWER, NO_ANSWER, "paris", "paris", "rome"], None, None)
    assert est["semantic"] == pytest.approx(2 / 5)  # an answer wins the tie and keeps its share


def test_empty_answers_through_the_cli_warn_and_never_show_confidence_one(tmp_path):
    """The issue's run: every answer is "" with finish_reason "length" and 0 tokens. Before:
    exit 0 without a word, then confidence 1.000 and smECE 1.000 in `semcal analyze`."""
    data = _dataset(tmp_path)
    out = tmp_path / "o"
    with ScriptedServer(completion_json("", finish_reason="length", completion_tokens=0)) as srv:
        r = _semcal(*_run_args(data, out, srv.base_url))
    assert r.returncode == 0, r.stderr
    warnings = [ln for ln in r.stderr.splitlines() if "are empty" in ln]
    assert len(warnings) == 1, r.stderr
    assert "12 of 12 samples" in warnings[0] and "finish_reason 'length' for 12" in warnings[0]
    assert "Traceback" not in r.stderr
    with Store(out, readonly=True) as st:  # stored, every one of them
        assert st.progress(st.runs()[0].id) == (3, 3, 12)
    (a,) = analyze_dir(out, n_boot=0)
    assert [q.prediction for q in a.questions] == [NO_ANSWER] * 3
    assert [q.confidence for q in a.questions] == [0.0] * 3
    assert a.summary["accuracy"] == 0.0 and a.summary["smece"] < 0.01
    assert all(q.estimates["semantic"] == 0.0 for q in a.questions)
    r = _semcal("analyze", str(out), "--json", "--n-boot", "0")
    assert r.returncode == 0, r.stderr
    (summary,) = json.loads(r.stdout)
    assert summary["mean_confidence"] == 0.0 and summary["smece"] < 0.01
    assert summary["no_answer_rate"] == 1.0


def test_a_run_with_some_empty_answers_warns_with_their_reasons(tmp_path):
    """Mixed answers: the warning counts the empty ones by finish_reason; a question whose
    plurality is a real answer keeps its share; no warning when nothing is empty."""
    data = _dataset(tmp_path, n=2)
    pattern = ["Paris", "", "  ", "Paris"]
    seen: dict[str, int] = {}

    def answer(path, body):  # each question's k-th request gets pattern[k % 4]
        k = seen[body["prompt"]] = seen.get(body["prompt"], -1) + 1
        text = pattern[k % 4]
        return completion_json(text, finish_reason="length" if text == "" else "stop",
                               completion_tokens=len(text.split()))

    with ScriptedServer(answer) as srv:
        r = _semcal(*_run_args(data, tmp_path / "o", srv.base_url, "--backend-opt", "concurrency=1",
                               "--backend-opt", 'n_mode="separate"'))
    assert r.returncode == 0, r.stderr
    (line,) = [ln for ln in r.stderr.splitlines() if "are empty" in ln]
    assert "4 of 8 samples" in line
    assert "finish_reason 'length' for 2" in line and "finish_reason 'stop' for 2" in line
    (a,) = analyze_dir(tmp_path / "o", n_boot=0)
    for q in a.questions:  # 2 x paris, 2 x <no answer>: the answer wins the tie
        assert q.prediction == "paris" and q.confidence == 0.5 and q.correct
    with ScriptedServer(completion_json("Paris", finish_reason="stop", completion_tokens=1)) as srv:
        r = _semcal(*_run_args(data, tmp_path / "p", srv.base_url))
    assert r.returncode == 0 and "empty" not in r.stderr, r.stderr


# ------------------------------------------------------------------ 2. a server not there


def test_a_server_that_cannot_be_reached_is_one_line_and_leaves_no_run(tmp_path):
    """Before: exit 2 with "... (every finished question is stored; resume with: ...)" and a
    store holding a run with n = 0. Now the server is tried before the run is created."""
    data = _dataset(tmp_path)
    url = f"http://127.0.0.1:{procs.free_port()}/v1"
    out = tmp_path / "o"
    t0 = time.monotonic()
    r = _semcal(*_run_args(data, out, url, "--backend-opt", "max_retries=1"))
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("semcal: error: "), r.stderr
    assert f"the server at {url} cannot be reached" in lines[0]
    assert "resume" not in lines[0] and "Traceback" not in r.stderr
    assert not (out / STORE_NAME).exists()
    assert time.monotonic() - t0 < 60

    # a store that holds other runs: still no hint to resume and no empty run added
    with ScriptedServer(completion_json("Paris", finish_reason="stop", completion_tokens=1)) as srv:
        assert _semcal(*_run_args(data, out, srv.base_url)).returncode == 0
    r = _semcal(*_run_args(data, out, url, "--backend-opt", "max_retries=0", "--seed", "7"))
    assert r.returncode == 2 and "cannot be reached" in r.stderr and "resume" not in r.stderr
    with Store(out, readonly=True) as st:
        runs = st.runs()
        assert len(runs) == 1 and st.progress(runs[0].id) == (3, 3, 12)


def test_check_server_accepts_any_http_answer_and_waits_for_a_starting_one():
    with ScriptedServer() as srv:
        with OpenAISampler("m", base_url=srv.base_url, max_retries=0) as s:
            s.check_server()  # GET /models answers
            assert srv.requests == 0  # no completion was asked for
    url = f"http://127.0.0.1:{procs.free_port()}/v1"
    with OpenAISampler("m", base_url=url, max_retries=2, backoff=0.01) as s:
        with pytest.raises(BackendError, match=r"the server at .* cannot be reached \(3 attempts"):
            s.check_server()


# ------------------------------------------------------------------ 3. trickled headers


@pytest.mark.parametrize("opts,limit", [({"timeout": 3}, 3), ({"timeout": 30, "deadline": 2}, 2)],
                         ids=["timeout", "deadline"])
def test_trickled_headers_end_at_the_time_limit(opts, limit):
    """A server sending its status line and headers one byte every 0.5 s passed every
    per-read timeout: `timeout=5, max_retries=0` hung past 200 s. Now the headers must all
    arrive within `timeout` (and the request within `deadline`): one clear error."""
    with ScriptedServer(trickle_headers=True) as srv:
        with OpenAISampler("m", base_url=srv.base_url, max_retries=0, **opts) as s:
            t0 = time.monotonic()
            with pytest.raises(BackendError) as info:
                s.sample([TEXT], 1, PARAMS)
            took = time.monotonic() - t0
            assert s.stats.failures == {"timeout": 1}
    assert limit - 0.5 < took < limit + 2
    msg = str(info.value)
    assert "giving up after 1 attempts" in msg
    assert f"no answer within {limit:g} s (the server sent no complete headers)" in msg
    assert "\n" not in msg


def test_the_time_limit_leaves_ordinary_answers_and_pooled_connections_alone():
    """The guard is disarmed after each request: many quick answers on kept-alive
    connections, with a short timeout, all arrive and none is cut."""
    def paris(path, body):
        return completion_json("Paris", chat=path.endswith("/chat/completions"), finish_reason="stop")

    with ScriptedServer(paris) as srv:
        with OpenAISampler("m", base_url=srv.base_url, max_retries=0, timeout=0.5,
                           n_mode="separate", concurrency=4) as s:
            out = s.sample([TEXT, CHAT], 20, PARAMS)
            time.sleep(0.7)  # past every alarm of the requests above
            out += s.sample([TEXT], 5, PARAMS)
            assert s.stats.failures == {}
    assert [len(row) for row in out] == [20, 20, 5]
    assert all(c.text == "Paris" for row in out for c in row)
