"""Fault tolerance of the OpenAI-compatible HTTP backend, with REAL local server processes.

- A fault-injecting proxy (tests/servers/fault_server.py) in front of llama.cpp's server
  answers 500/502/503/429, hangs, sends garbage, truncated or wrongly shaped JSON, or
  drops the connection; the sampler must retry and end with exactly the samples the
  server gives without faults.
- The llama.cpp server is SIGKILLed mid-run and restarted on the same port.
- A server that dies after every k requests is restarted by a supervisor thread.
- Persistent faults end, within seconds, in a BackendError naming the URL and the failure.

Run with ``-s`` to see the fault figures each test prints.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from semcal.backends.openai import OpenAISampler  # noqa: E402
from semcal.errors import BackendError, InputError  # noqa: E402
from semcal.types import Message, Prompt, SamplingParams  # noqa: E402
from servers import procs  # noqa: E402

HAS_SERVER = all(importlib.util.find_spec(m) is not None for m in ("llama_cpp", "uvicorn", "fastapi"))
needs_server = pytest.mark.skipif(not HAS_SERVER, reason="llama-cpp-python[server] not installed")

PROMPTS = [
    Prompt(text="Q: What is the capital of Spain?\nA:"),
    Prompt(text="The three primary colours are"),
    Prompt(messages=(Message("user", "Name a large animal."),)),
]
MORE_PROMPTS = [
    Prompt(text="Water boils at a temperature of"),
    Prompt(text="Q: Who wrote Hamlet?\nA:"),
    Prompt(messages=(Message("user", "What colour is the sky?"),)),
]
PARAMS = SamplingParams(temperature=1.0, max_tokens=6, seed=21)
GREEDY = SamplingParams(temperature=0.0, max_tokens=6)

#: fault figures of this module: injected faults and how many the sampler survived
FIGURES: Counter = Counter()


def _report(name: str, injected: int, survived: int, sampler: OpenAISampler, seconds: float) -> None:
    FIGURES["injected"] += injected
    FIGURES["survived"] += survived
    print(
        f"\n[faults] {name}: injected={injected} survived={survived} "
        f"attempts={sampler.stats.attempts} retries={sampler.stats.retries} "
        f"failures={dict(sampler.stats.failures)} in {seconds:.1f}s"
    )


@pytest.fixture(scope="module", autouse=True)
def _print_totals():
    yield
    print(f"\n[faults] module total: injected={FIGURES['injected']} survived={FIGURES['survived']}")


def _signature(out):
    return [[(c.text, c.token_logprobs, c.finish_reason) for c in row] for row in out]




@pytest.fixture(scope="module")
def reference(llama_srv):
    """What the real server answers when nothing goes wrong.

    llama.cpp's server reuses the KV cache of the previous request's prompt, which changes
    logits in the last bits, so its samples are reproducible only for the same sequence of
    requests: the reference and the faulty run both send one request at a time.
    """
    with OpenAISampler("smollm2", base_url=llama_srv.base_url, chat=False, max_retries=0,
                       concurrency=1) as s:
        return _signature(s.sample(PROMPTS, 2, PARAMS))


@pytest.fixture(scope="module")
def greedy_reference(llama_srv):
    with OpenAISampler("smollm2", base_url=llama_srv.base_url, chat=False, max_retries=0) as s:
        return s.sample(PROMPTS + MORE_PROMPTS, 1, GREEDY)


# ------------------------------------------------------------------ transient faults survived


ALL_FAULTS = ["500", "hang", "garbage", "reset", "429", "truncated", "badshape", "503", "502"]
EXPECTED_FAILURES = Counter({"http 500": 1, "http 502": 1, "http 503": 1, "http 429": 1,
                             "timeout": 1, "malformed": 3, "connection": 1})


@pytest.mark.slow
@needs_server
def test_transient_faults_through_proxy(llama_srv, reference):
    # no "hang" here: on a loaded machine a real answer can be as slow as a hang's timeout,
    # and an abandoned request would still run and shift the server's KV cache
    faults = [f for f in ALL_FAULTS if f != "hang"]
    proxy = procs.fault_server(upstream=llama_srv.base_url, faults=tuple(faults))
    proxy.start(timeout=30)
    t0 = time.monotonic()
    try:
        with OpenAISampler("smollm2", base_url=proxy.base_url, chat=False, concurrency=1,
                           timeout=120, max_retries=12, backoff=0.02, max_backoff=0.2) as s:
            out = s.sample(PROMPTS, 2, PARAMS)
            elapsed = time.monotonic() - t0
            stats = procs.fault_stats(proxy)
            injected = sum(v for k, v in stats["injected"].items() if k != "ok")
            assert injected == len(faults)
            assert _signature(out) == reference  # the faults left no trace in the samples
            assert s.stats.gave_up == 0
            assert s.stats.retries == len(faults)  # each fault cost exactly one retry
            assert s.stats.failures == EXPECTED_FAILURES - Counter({"timeout": 1})
            _report("proxy faults before llama.cpp", injected, injected, s, elapsed)
    finally:
        proxy.stop()


def test_transient_faults_concurrent_synthetic():
    """All fault kinds, hangs included, with 3 requests in flight (synthetic answers)."""
    ref_srv = procs.fault_server(ignore_n=True)
    ref_srv.start(timeout=30)
    try:
        with OpenAISampler("synthetic", base_url=ref_srv.base_url, max_retries=0) as s:
            reference = _signature(s.sample(PROMPTS, 4, PARAMS))
    finally:
        ref_srv.stop()
    proxy = procs.fault_server(faults=tuple(ALL_FAULTS), hang_seconds=60, ignore_n=True)
    proxy.start(timeout=30)
    t0 = time.monotonic()
    try:
        with OpenAISampler("synthetic", base_url=proxy.base_url, concurrency=3, timeout=2,
                           max_retries=12, backoff=0.02, max_backoff=0.2) as s:
            out = s.sample(PROMPTS, 4, PARAMS)
            elapsed = time.monotonic() - t0
            injected = sum(v for k, v in procs.fault_stats(proxy)["injected"].items() if k != "ok")
            assert injected == len(ALL_FAULTS)
            assert _signature(out) == reference
            assert s.stats.gave_up == 0
            assert s.stats.retries >= len(ALL_FAULTS)
            assert all(s.stats.failures[k] >= v for k, v in EXPECTED_FAILURES.items()), s.stats.failures
            _report("concurrent faults (synthetic)", injected, injected, s, elapsed)
    finally:
        proxy.stop()
    assert elapsed < 30


@pytest.mark.slow
@needs_server
def test_llama_server_killed_mid_run_and_restarted(greedy_reference):
    server = procs.llama_server()
    server.start(timeout=180)
    result: dict = {}
    sampler = OpenAISampler("smollm2", base_url=server.base_url, chat=False, concurrency=2,
                            timeout=30, max_retries=60, backoff=0.05, max_backoff=0.5)

    def run() -> None:
        try:
            result["out"] = sampler.sample(PROMPTS + MORE_PROMPTS, 1, GREEDY)
        except BaseException as exc:  # reported by the main thread
            result["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    t0 = time.monotonic()
    kills = 0
    try:
        worker.start()
        deadline = time.monotonic() + 60
        while sampler.stats.ok < 1 and time.monotonic() < deadline and worker.is_alive():
            time.sleep(0.02)
        assert worker.is_alive(), "the run ended before the server could be killed"
        server.kill()  # SIGKILL: in-flight requests break, new ones are refused
        kills += 1
        time.sleep(0.5)
        server.start(timeout=180)  # same port
        worker.join(timeout=180)
        assert not worker.is_alive(), "the sampler did not finish after the restart"
        elapsed = time.monotonic() - t0
        assert "error" not in result, result.get("error")
        # a restarted server starts with an empty KV cache, so compare greedy answers
        # (robust to last-bit differences) and log-probs up to rounding
        out = result["out"]
        assert [[c.text for c in r] for r in out] == [[c.text for c in r] for r in greedy_reference]
        for row, ref in zip(out, greedy_reference):
            assert row[0].token_logprobs == pytest.approx(ref[0].token_logprobs, abs=0.05)
        assert sampler.stats.failures["connection"] >= 1
        assert sampler.stats.gave_up == 0
        _report("llama server SIGKILL + restart", kills, kills, sampler, elapsed)
    finally:
        sampler.close()
        server.stop()


def test_server_dying_every_k_requests_is_survived():
    """A synthetic server that exits on its 4th request; a supervisor restarts it each time."""
    ref_srv = procs.fault_server(ignore_n=True)
    ref_srv.start(timeout=30)
    try:
        with OpenAISampler("synthetic", base_url=ref_srv.base_url, max_retries=0) as s:
            reference = _signature(s.sample(PROMPTS, 4, PARAMS))
    finally:
        ref_srv.stop()

    server = procs.fault_server(die_after=3, ignore_n=True)
    server.start(timeout=30)
    stop = threading.Event()
    restarts = Counter()

    def supervise() -> None:
        while not stop.is_set() and restarts["n"] < 50:
            if not server.alive():
                restarts["n"] += 1
                try:
                    server.start(timeout=30)
                except RuntimeError:  # port still in use for a moment: try again
                    time.sleep(0.1)
            time.sleep(0.02)

    sup = threading.Thread(target=supervise, daemon=True)
    sup.start()
    t0 = time.monotonic()
    try:
        with OpenAISampler("synthetic", base_url=server.base_url, concurrency=2, timeout=5,
                           max_retries=40, backoff=0.05, max_backoff=0.3) as s:
            out = s.sample(PROMPTS, 4, PARAMS)
            elapsed = time.monotonic() - t0
            assert _signature(out) == reference
            # 12 answered requests (plus the 1-choice probes) at 3 per life: several deaths
            assert restarts["n"] >= 3
            assert s.stats.failures["connection"] >= restarts["n"]
            assert s.stats.gave_up == 0
            _report("server dies after 3 requests", restarts["n"], restarts["n"], s, elapsed)
    finally:
        stop.set()
        sup.join(timeout=10)
        server.stop()
    assert elapsed < 60


# ------------------------------------------------------------------ persistent faults: clear stop


@pytest.fixture(scope="module")
def faulty():
    server = procs.fault_server(hang_seconds=2)
    server.start(timeout=30)
    yield server
    server.stop()


@pytest.mark.parametrize(
    "fault, expected",
    [
        ("500", "HTTP 500: injected server error 500"),
        ("503", "HTTP 503"),
        ("429", "HTTP 429: injected rate limit"),
        ("hang", "no answer within 0.5 s"),
        ("garbage", "the answer is not valid JSON"),
        ("truncated", "the answer is not valid JSON"),
        ("badshape", "unexpected JSON: no 'choices'"),
        ("reset", "connection failed"),
    ],
)
def test_persistent_fault_gives_clear_error(faulty, fault, expected):
    procs.set_faults(faulty, [fault] * 20)
    t0 = time.monotonic()
    with OpenAISampler("synthetic", base_url=faulty.base_url, timeout=0.5, max_retries=3,
                       backoff=0.01, max_backoff=0.05) as s:
        with pytest.raises(BackendError) as info:
            s.sample(PROMPTS[:1], 1, PARAMS)
        elapsed = time.monotonic() - t0
        msg = str(info.value)
        assert msg.startswith(faulty.base_url + "/completions: giving up after 4 attempts (3 retries)")
        assert expected in msg
        assert s.stats.attempts == 4 and s.stats.gave_up == 1
        _report(f"persistent {fault}", 4, 0, s, elapsed)
    assert elapsed < 10
    procs.set_faults(faulty, [])


def test_client_error_fails_at_once_with_server_message(faulty):
    procs.set_faults(faulty, ["400", "ok"])
    with OpenAISampler("synthetic", base_url=faulty.base_url, max_retries=5, backoff=1.0) as s:
        t0 = time.monotonic()
        with pytest.raises(BackendError) as info:
            s.sample(PROMPTS[:1], 1, PARAMS)
        assert time.monotonic() - t0 < 2  # no backoff sleeps
        msg = str(info.value)
        assert "rejected the request: HTTP 400: injected bad request: unknown field 'foo'" in msg
        assert faulty.base_url in msg
        assert s.stats.attempts == 1 and s.stats.retries == 0
    procs.set_faults(faulty, [])


def test_nobody_listening_gives_connection_error():
    url = f"http://127.0.0.1:{procs.free_port()}/v1"
    with OpenAISampler("m", base_url=url, max_retries=2, backoff=0.01, timeout=2) as s:
        with pytest.raises(BackendError) as info:
            s.sample(PROMPTS[:1], 1, PARAMS)
        msg = str(info.value)
        assert url in msg and "giving up after 3 attempts" in msg and "connection failed" in msg
        assert s.stats.failures["connection"] == 3


def test_retry_after_and_backoff_growth():
    s = OpenAISampler("m", base_url="http://127.0.0.1:9/v1", backoff=0.1, max_backoff=1.0)
    delays = [s._delay(k, None) for k in range(6)]
    for k, d in enumerate(delays):
        cap = min(1.0, 0.1 * 2**k)
        assert cap / 2 <= d <= cap  # jitter keeps it in [cap/2, cap]
    assert s._delay(0, 0.8) >= 0.8  # Retry-After is honoured...
    assert s._delay(0, 100.0) <= 1.0  # ...up to max_backoff


# ------------------------------------------------------------------ bad fields in a 200 answer


@pytest.mark.parametrize("prompt", [PROMPTS[0], PROMPTS[2]], ids=["completion", "chat"])
def test_an_answer_without_text_is_malformed_not_empty(faulty, prompt):
    """A 200 answer whose choice has a null text / message.content was stored as '' before;
    it is a malformed answer: retried, and a clear BackendError when it persists."""
    procs.set_faults(faulty, ["nulltext", "ok"])
    with OpenAISampler("synthetic", base_url=faulty.base_url, max_retries=3, backoff=0.01) as s:
        (out,) = s.sample([prompt], 1, PARAMS)
        assert out[0].text.strip()  # the retry's real answer, not ''
        assert s.stats.failures["malformed"] == 1 and s.stats.retries == 1
    procs.set_faults(faulty, ["nulltext"] * 10)
    with OpenAISampler("synthetic", base_url=faulty.base_url, max_retries=2, backoff=0.01) as s:
        with pytest.raises(BackendError, match="has no (text|content)"):
            s.sample([prompt], 1, PARAMS)
    procs.set_faults(faulty, [])


def test_surrogates_and_absurd_token_counts_are_sanitised_into_the_store(faulty, tmp_path):
    """A lone surrogate in the text (UnicodeEncodeError in SQLite before) and
    usage.completion_tokens = 10**30 (OverflowError before) end in a complete, stored run."""
    from semcal.runner import run
    from semcal.spec import RunSpec
    from semcal.store import Store

    qfile = tmp_path / "q.jsonl"
    qfile.write_text('{"id": "a", "question": "Capital of Spain?", "answers": ["Madrid"]}\n'
                     '{"id": "b", "question": "Capital of Peru?", "answers": ["Lima"]}\n')
    # "ok" for the runner's GET /models that checks the server before a new run
    procs.set_faults(faulty, ["ok", "surrogate", "hugeusage"])
    spec = RunSpec(model="synthetic", backend="openai", dataset=str(qfile), samples=1,
                   greedy=False, style="concise", k_shot=0, max_tokens=6,
                   backend_options={"base_url": faulty.base_url, "chat": False, "concurrency": 1})
    res = run(spec, tmp_path / "exp", quiet=True)
    assert not res.interrupted
    with Store(tmp_path / "exp", readonly=True) as st:
        (info,) = st.runs()
        samples = [s.completion for ss in st.all_samples(info.id).values() for s in ss]
    assert len(samples) == 2
    texts = sorted(c.text for c in samples)
    assert any("\ufffd" in t for t in texts)  # the surrogate became U+FFFD
    assert all(0 <= c.n_tokens < 2**31 for c in samples)
    procs.set_faults(faulty, [])


# ------------------------------------------------------------------ size and time of an answer


@pytest.mark.parametrize("fault", ["huge", "hugechunked"])
def test_an_answer_larger_than_max_response_bytes_is_never_stored(faulty, fault, tmp_path):
    """A 20 MB answer to max_tokens = 8 was read and stored whole before; now it is a
    malformed answer (retried: the next, normal answer is used) and, when it persists, a
    BackendError, with the process's memory not holding it."""
    procs.set_faults(faulty, [fault, "ok"])
    with OpenAISampler("synthetic", base_url=faulty.base_url, max_retries=2, backoff=0.01,
                       max_response_bytes=1 << 20) as s:
        (out,) = s.sample([PROMPTS[0]], 1, PARAMS)
        assert len(out[0].text) < 1000
        assert s.stats.failures["malformed"] == 1 and s.stats.retries == 1
    procs.set_faults(faulty, [fault] * 5)
    with OpenAISampler("synthetic", base_url=faulty.base_url, max_retries=1, backoff=0.01,
                       max_response_bytes=1 << 20) as s:
        with pytest.raises(BackendError, match="max_response_bytes"):
            s.sample([PROMPTS[0]], 1, PARAMS)
    procs.set_faults(faulty, [])


def test_a_trickled_answer_ends_at_the_deadline(faulty):
    """A server sending one byte every 0.5 s passes every per-read timeout; before, the
    request lasted as long as the server liked (minutes for one answer). The deadline bounds
    the whole request."""
    procs.set_faults(faulty, ["trickle", "ok"])
    t = time.monotonic()
    with OpenAISampler("synthetic", base_url=faulty.base_url, max_retries=1, backoff=0.01,
                       timeout=2, deadline=3) as s:
        (out,) = s.sample([PROMPTS[0]], 1, PARAMS)
        assert out[0].text.strip()
        assert s.stats.failures["timeout"] == 1
    assert time.monotonic() - t < 15
    procs.set_faults(faulty, [])


@pytest.mark.parametrize("opts", [{"deadline": 0}, {"deadline": True}, {"max_response_bytes": 10},
                                  {"max_response_bytes": 2**40}])
def test_limits_are_checked(opts):
    with pytest.raises(InputError):
        OpenAISampler("synthetic", base_url="http://127.0.0.1:9/v1", **opts)
