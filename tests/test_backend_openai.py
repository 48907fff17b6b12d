"""The OpenAI-compatible HTTP backend against REAL local servers on 127.0.0.1.

- llama.cpp's OpenAI-compatible server (``python -m llama_cpp.server``) serving the embedded
  SmolLM2-135M-Instruct GGUF, started once per session and always killed.
- tests/servers/fault_server.py in synthetic mode (a real HTTP server that answers
  deterministic OpenAI JSON) to check the handling of ``n`` by servers that honour it
  and servers that ignore it.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from semcal.backends import get_sampler  # noqa: E402
from semcal.backends.base import Sampler, sample_seed  # noqa: E402
from semcal.backends.openai import OpenAISampler, _normalize_base_url  # noqa: E402
from semcal.errors import BackendError, InputError  # noqa: E402
from semcal.types import Message, Prompt, SamplingParams  # noqa: E402
from servers import procs  # noqa: E402

HAS_SERVER = importlib.util.find_spec("llama_cpp") is not None and (
    importlib.util.find_spec("uvicorn") is not None and importlib.util.find_spec("fastapi") is not None
)
needs_server = pytest.mark.skipif(not HAS_SERVER, reason="llama-cpp-python[server] not installed")

QA = Prompt(text="Q: What is the capital of France?\nA: Paris\nQ: What is the capital of Italy?\nA:")
STORY = Prompt(text="Once upon a time, in a small village,")
CHAT = Prompt(messages=(Message("user", "What is the capital of France? Answer in one word."),))




@pytest.fixture()
def sampler(llama_srv):
    s = OpenAISampler("smollm2", base_url=llama_srv.base_url, chat=False, concurrency=2,
                      timeout=60, max_retries=2, backoff=0.05)
    yield s
    s.close()


# ------------------------------------------------------------------ against llama.cpp's server


@pytest.mark.slow
@needs_server
def test_shapes_logprobs_and_n_fallback(sampler):
    params = SamplingParams(temperature=1.0, max_tokens=8, seed=3)
    out = sampler.sample([QA, STORY], 3, params)
    assert isinstance(sampler, Sampler)
    assert len(out) == 2 and all(len(row) == 3 for row in out)
    for row in out:
        for c in row:
            assert c.finish_reason in ("stop", "length")
            assert 1 <= c.n_tokens <= 8 or (c.n_tokens == 0 and c.finish_reason == "stop")
            assert c.token_logprobs is not None and c.tokens is not None
            assert len(c.token_logprobs) == len(c.tokens) == c.n_tokens
            assert all(lp <= 0.0 for lp in c.token_logprobs)
            assert c.logprob is not None and c.logprob <= 0.0
            assert "".join(c.tokens) == c.text
            if c.finish_reason == "length":
                assert c.n_tokens == 8
    # llama.cpp's server ignores ``n``: the sampler notices and draws the rest one by one
    assert sampler.stats.n_fallbacks >= 1
    assert sampler._native_n is False
    # three different seeds on a story opening give at least two different continuations
    assert len({c.text for c in out[1]}) >= 2


@pytest.mark.slow
@needs_server
def test_seeds_reproducible_and_independent_of_n(sampler):
    params = SamplingParams(temperature=1.0, max_tokens=8, seed=11)
    a = sampler.sample([STORY], 3, params)[0]
    b = sampler.sample([STORY], 2, params)[0]
    assert [c.text for c in b] == [c.text for c in a[:2]]
    assert [c.token_logprobs for c in b] == [c.token_logprobs for c in a[:2]]
    other = sampler.sample([STORY], 3, SamplingParams(temperature=1.0, max_tokens=8, seed=12))[0]
    assert [c.text for c in other] != [c.text for c in a]


@pytest.mark.slow
@needs_server
def test_greedy_and_stop_strings(sampler):
    greedy = sampler.sample([STORY], 3, SamplingParams(temperature=0.0, max_tokens=12))[0]
    assert len(greedy) == 3 and len({c.text for c in greedy}) == 1
    text = greedy[0].text
    again = sampler.sample([STORY], 1, SamplingParams(temperature=0.0, max_tokens=12, seed=99))[0][0]
    assert again.text == text  # greedy ignores the seed
    # cut the greedy answer at a word that occurs inside it: the server must stop there
    words = [w for w in text.split() if w]
    assert len(words) >= 2, text
    stop = words[1]
    cut = text[: text.index(stop)]
    stopped = sampler.sample([STORY], 1, SamplingParams(temperature=0.0, max_tokens=12, stop=(stop,)))[0][0]
    assert stopped.text == cut
    assert stopped.finish_reason == "stop"
    assert stopped.n_tokens < greedy[0].n_tokens
    # the tokens are the shortest prefix that spells the cut text (one may straddle the stop)
    assert "".join(stopped.tokens).startswith(cut)
    assert len("".join(stopped.tokens[:-1])) < len(cut)


@pytest.mark.slow
@needs_server
def test_chat_endpoint(llama_srv):
    with OpenAISampler("smollm2-135m-instruct", base_url=llama_srv.base_url, max_retries=1) as s:
        assert s.is_chat  # guessed from the name
        out = s.sample([CHAT], 2, SamplingParams(temperature=1.0, max_tokens=10, seed=5))[0]
        assert len(out) == 2
        for c in out:
            assert c.text.strip()
            assert c.token_logprobs is not None and all(lp <= 0 for lp in c.token_logprobs)
            assert len(c.token_logprobs) == c.n_tokens
        no_lp = s.sample([CHAT], 1, SamplingParams(temperature=1.0, max_tokens=4, logprobs=False))
        assert no_lp[0][0].token_logprobs is None and no_lp[0][0].n_tokens >= 1


@pytest.mark.slow
@needs_server
def test_next_token_logprobs_match_greedy(sampler):
    tops = sampler.next_token_logprobs([QA, CHAT], k=3)
    assert len(tops) == 2
    for top in tops:
        assert 1 <= len(top) <= 3
        assert all(v <= 0 for v in top.values())
        assert list(top.values()) == sorted(top.values(), reverse=True)
    first = sampler.sample([QA], 1, SamplingParams(temperature=0.0, max_tokens=1))[0][0]
    assert first.tokens[0] == next(iter(tops[0]))
    assert first.token_logprobs[0] == pytest.approx(tops[0][first.tokens[0]], abs=1e-4)


@pytest.mark.slow
@needs_server
def test_model_auto_discovery_and_get_sampler(llama_srv):
    s = get_sampler("openai", "auto", base_url=llama_srv.root, chat=False)  # "/v1" is added
    try:
        assert s.model_name == "smollm2"
        assert s.base_url == llama_srv.base_url
        out = s.sample([QA], 1, SamplingParams(max_tokens=3))
        assert len(out[0]) == 1
    finally:
        s.close()


@pytest.mark.slow
@needs_server
def test_client_error_is_not_retried(llama_srv):
    # a wrong API root makes the server answer 404: fail at once with its message
    url = llama_srv.root + "/v2"
    s = OpenAISampler("smollm2", base_url=url, max_retries=5, backoff=0.5)
    try:
        with pytest.raises(BackendError) as info:
            s.sample([QA], 1, SamplingParams(max_tokens=3))
        msg = str(info.value)
        assert "HTTP 404" in msg and url + "/completions" in msg and "Not Found" in msg
        assert s.stats.attempts == 1 and s.stats.retries == 0
    finally:
        s.close()


# ------------------------------------------------------------------ n handling (synthetic server)


@pytest.fixture(scope="module")
def synth_servers():
    honours = procs.fault_server()
    ignores = procs.fault_server(ignore_n=True)
    try:
        honours.start(timeout=30)
        ignores.start(timeout=30)
        yield honours, ignores
    finally:
        honours.stop()
        ignores.stop()


def test_native_n_uses_one_request_per_prompt(synth_servers):
    honours, _ = synth_servers
    with OpenAISampler("synthetic", base_url=honours.base_url, max_retries=0) as s:
        out = s.sample([QA, STORY, CHAT], 5, SamplingParams(seed=4, max_tokens=5))
        assert [len(r) for r in out] == [5, 5, 5]
        assert s.stats.attempts == 3 and s.stats.n_fallbacks == 0
        assert len({c.text for c in out[0]}) == 5
        assert all(c.n_tokens == 5 and len(c.token_logprobs) == 5 for r in out for c in r)
        # max_n splits a request into chunks with their own seeds
    with OpenAISampler("synthetic", base_url=honours.base_url, max_retries=0, max_n=2) as s:
        chunked = s.sample([QA], 5, SamplingParams(seed=4, max_tokens=5))
        assert s.stats.attempts == 3  # samples [0,2) [2,4) [4,5)
        assert chunked[0][0].text == out[0][0].text and chunked[0][1].text == out[0][1].text


def test_ignored_n_falls_back_to_per_sample_seeds(synth_servers):
    _, ignores = synth_servers
    with OpenAISampler("synthetic", base_url=ignores.base_url, max_retries=0, concurrency=3) as s:
        out = s.sample([QA, STORY], 4, SamplingParams(seed=9, max_tokens=5))
        assert [len(r) for r in out] == [4, 4]
        assert s._native_n is False and s.stats.n_fallbacks >= 1
        first_attempts = s.stats.attempts
        again = s.sample([QA, STORY], 4, SamplingParams(seed=9, max_tokens=5))
        assert s.stats.attempts - first_attempts == 8  # one request per sample from now on
        assert [[c.text for c in r] for r in again] == [[c.text for c in r] for r in out]
    with OpenAISampler("synthetic", base_url=ignores.base_url, n_mode="separate") as s:
        sep = s.sample([QA], 4, SamplingParams(seed=9, max_tokens=5))
        assert [c.text for c in sep[0]] == [c.text for c in out[0]]
    # sample i of a one-per-request draw is the server's answer for sample i's seed
    with OpenAISampler("synthetic", base_url=ignores.base_url) as s:
        direct = s.sample([QA], 1, SamplingParams(seed=9, max_tokens=5))
        assert direct[0][0].text == out[0][0].text
    assert sample_seed(9, 0) != sample_seed(9, 1)


def test_stop_strings_applied_client_side_when_server_ignores_them(synth_servers):
    honours, _ = synth_servers
    with OpenAISampler("synthetic", base_url=honours.base_url) as s:
        full = s.sample([QA], 1, SamplingParams(seed=1, max_tokens=5))[0][0]
        word = full.tokens[2].strip()
        cut = s.sample([QA], 1, SamplingParams(seed=1, max_tokens=5, stop=(word,)))[0][0]
        # the synthetic server ignores stop strings; the sampler cuts text and tokens itself
        assert cut.text == full.text[: full.text.index(word)]
        assert cut.finish_reason == "stop"
        assert cut.n_tokens == 3 and len(cut.token_logprobs) == 3


# ------------------------------------------------------------------ input validation (no server)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"concurrency": 0},
        {"max_retries": -1},
        {"timeout": 0},
        {"n_mode": "sometimes"},
        {"base_url": "localhost:8000"},
        {"max_n": 0},
    ],
)
def test_bad_options_raise_input_error(kwargs):
    opts = {"base_url": "http://127.0.0.1:9/v1", **kwargs}
    with pytest.raises(InputError):
        OpenAISampler("m", **opts)


def test_base_url_normalisation_and_api_key(monkeypatch):
    assert _normalize_base_url("http://h:1") == "http://h:1/v1"
    assert _normalize_base_url("http://h:1/v1/") == "http://h:1/v1"
    assert _normalize_base_url("https://api.example.com/openai/v1") == "https://api.example.com/openai/v1"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    s = OpenAISampler("m", base_url="http://127.0.0.1:9/v1")
    assert s._headers["Authorization"] == "Bearer sk-test"
    assert "sk-test" not in repr(s)
    s2 = OpenAISampler("m", base_url="http://127.0.0.1:9/v1", api_key="")
    assert "Authorization" not in s2._headers
    assert not s.is_chat and OpenAISampler("gpt-4o-mini", base_url="http://h:1").is_chat


def test_sample_rejects_bad_n():
    s = OpenAISampler("m", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(InputError):
        s.sample([QA], 0, SamplingParams())
    with pytest.raises(InputError):
        s.sample(["not a prompt"], 1, SamplingParams())  # type: ignore[list-item]
