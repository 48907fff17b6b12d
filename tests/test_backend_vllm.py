"""The vLLM backend.

vLLM needs a CUDA GPU, so the end-to-end test runs only where ``vllm`` and CUDA exist
(model from ``$SEMCAL_VLLM_MODEL``, default: the embedded SmolLM2 GGUF). Everywhere else
the pure conversions (semcal params -> vLLM kwargs, vLLM outputs -> Completion) and the
sampler's wiring are tested with small fake objects shaped like vLLM's.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from semcal.backends.base import prompt_seed, sample_seed  # noqa: E402
from semcal.backends.vllm import (  # noqa: E402
    build_engine_kwargs,
    completion_from_vllm,
    top_logprobs_from_vllm,
    vllm_sampling_kwargs,
)
from semcal.errors import BackendError, InputError, MissingExtraError  # noqa: E402
from semcal.types import Message, Prompt, SamplingParams  # noqa: E402

# ------------------------------------------------------------------ fakes shaped like vLLM's


@dataclass
class FakeLogprob:
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class FakeCompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: list[dict[int, FakeLogprob]] | None
    finish_reason: str | None = "length"
    stop_reason: int | str | None = None


@dataclass
class FakeRequestOutput:
    prompt: str | None
    outputs: list[FakeCompletionOutput] = field(default_factory=list)


def _output(pieces, lps, finish="length", index=0, extra=None):
    ids = list(range(100 + index * 10, 100 + index * 10 + len(pieces)))
    steps = []
    for k, (tid, piece, lp) in enumerate(zip(ids, pieces, lps)):
        step = {tid: FakeLogprob(lp, rank=2, decoded_token=piece)}
        step[7] = FakeLogprob(-0.01, rank=1, decoded_token="<top>")  # the top-1 alternative
        if extra and k in extra:
            step.update(extra[k])
        steps.append(step)
    text = "".join(pieces)
    return FakeCompletionOutput(index, text, ids, sum(lps), steps, finish)


# ------------------------------------------------------------------ pure conversions


def test_sampling_kwargs():
    params = SamplingParams(temperature=0.7, top_p=0.9, max_tokens=32, stop=("\n", "Q:"), seed=5)
    kw = vllm_sampling_kwargs(params, 8, 1234)
    assert kw == {
        "n": 8, "temperature": 0.7, "top_p": 0.9, "max_tokens": 32, "seed": 1234,
        "stop": ["\n", "Q:"], "logprobs": 1, "skip_special_tokens": True,
    }
    no_lp = vllm_sampling_kwargs(SamplingParams(logprobs=False), 1, 0)
    assert no_lp["logprobs"] is None
    greedy = vllm_sampling_kwargs(SamplingParams(temperature=0), 1, 0)
    assert greedy["temperature"] == 0.0 and greedy["n"] == 1
    with pytest.raises(InputError):
        vllm_sampling_kwargs(SamplingParams(temperature=0), 4, 0)
    with pytest.raises(InputError):
        vllm_sampling_kwargs(params, 0, 0)


def test_completion_from_output_with_logprobs():
    out = _output([" Par", "is", "."], [-0.5, -0.25, -1.0])
    c = completion_from_vllm(out)
    assert c.text == " Paris."
    assert c.tokens == (" Par", "is", ".")
    assert c.token_logprobs == (-0.5, -0.25, -1.0)  # the sampled token, not the top-1
    assert c.n_tokens == 3 and c.finish_reason == "length"
    assert c.logprob == pytest.approx(-1.75)


def test_completion_from_output_eos_and_stop_string_tokens_dropped():
    # finished by EOS: token_ids keep the EOS token (decoded "") ...
    eos = _output([" Rome", "</s>"], [-0.1, -0.2], finish="stop")
    eos.text = " Rome"
    c = completion_from_vllm(eos)
    assert c.text == " Rome" and c.tokens == (" Rome",) and c.token_logprobs == (-0.1,)
    assert c.finish_reason == "stop" and c.n_tokens == 1
    # ... finished by a stop string: vLLM cut the text, the token spelling "\n" is dropped
    stop = _output([" Rome", "\n"], [-0.1, -0.3], finish="stop")
    stop.text, stop.stop_reason = " Rome", "\n"
    c = completion_from_vllm(stop, stop=("\n",))
    assert c.tokens == (" Rome",) and c.finish_reason == "stop"
    # a stop string vLLM did not apply (guard): cut client-side
    raw = _output([" Rome", "\n", "Q"], [-0.1, -0.3, -0.2])
    c = completion_from_vllm(raw, stop=("\n",))
    assert c.text == " Rome" and c.finish_reason == "stop" and c.n_tokens == 1


def test_completion_without_logprobs_and_odd_values():
    out = FakeCompletionOutput(0, "abc", [1, 2], None, None, "length")
    c = completion_from_vllm(out)
    assert c.token_logprobs is None and c.tokens is None and c.n_tokens == 2
    # a tiny positive value from rounding is clamped; -inf stays
    odd = _output(["a", "b"], [1e-7, float("-inf")])
    c = completion_from_vllm(odd)
    assert c.token_logprobs == (0.0, float("-inf"))
    # a step without the sampled token: log-probs are dropped rather than invented
    broken = _output(["a", "b"], [-0.1, -0.2])
    broken.logprobs[1] = {7: FakeLogprob(-0.01, decoded_token="x")}
    assert completion_from_vllm(broken).token_logprobs is None
    with pytest.raises(BackendError):
        completion_from_vllm(FakeCompletionOutput(0, None, [], None, None))  # type: ignore[arg-type]


def test_completion_uses_tokenizer_when_tokens_are_not_decoded():
    class Tok:
        def decode(self, ids):
            return f"<{ids[0]}>"

    out = _output(["x", "y"], [-0.1, -0.2])
    for step in out.logprobs:
        for entry in step.values():
            entry.decoded_token = None
    c = completion_from_vllm(out, tokenizer=Tok())
    assert c.tokens == ("<100>", "<101>")


def test_top_logprobs():
    step = {
        1: FakeLogprob(-2.0, decoded_token=" B"),
        2: FakeLogprob(-0.1, decoded_token=" A"),
        3: FakeLogprob(-3.0, decoded_token=" C"),
        4: FakeLogprob(-0.5, decoded_token=" A"),  # same text, lower: first one wins
    }
    assert top_logprobs_from_vllm(step, 2) == {" A": -0.1, " B": -2.0}
    assert list(top_logprobs_from_vllm(step, 5)) == [" A", " B", " C"]


def test_engine_kwargs():
    kw = build_engine_kwargs("Qwen/Qwen2.5-7B", tensor_parallel_size=4, pipeline_parallel_size=2,
                             distributed_executor_backend="ray", max_model_len=4096,
                             dtype="bfloat16", quantization=None)
    assert kw == {
        "model": "Qwen/Qwen2.5-7B", "tensor_parallel_size": 4, "pipeline_parallel_size": 2,
        "enable_prefix_caching": True, "gpu_memory_utilization": 0.9,
        "distributed_executor_backend": "ray", "max_model_len": 4096, "dtype": "bfloat16",
    }
    assert "distributed_executor_backend" not in build_engine_kwargs("m")
    with pytest.raises(InputError):
        build_engine_kwargs("m", distributed_executor_backend="slurm")
    with pytest.raises(InputError):
        build_engine_kwargs("m", tensor_parallel_size=2, distributed_executor_backend="uni")
    with pytest.raises(InputError):
        build_engine_kwargs("m", max_model_len=0)


# ------------------------------------------------------------------ the sampler's wiring (fake engine)


class FakeTokenizer:
    # a real jinja chat template: semcal renders it in its own sandbox, never through the
    # tokenizer's apply_chat_template
    chat_template = ("<bos>{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
                     "{% if add_generation_prompt %}<assistant>{% endif %}")
    eos_token_id = 0

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True):
        raise AssertionError("semcal must not render through the tokenizer's own sandbox")

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": [ord(ch) for ch in text]}

    def decode(self, ids):
        return "".join(chr(i) for i in ids)


class FakeLLM:
    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.calls = []

    def get_tokenizer(self):
        return FakeTokenizer()

    def generate(self, prompts, sampling_params, use_tqdm=True):
        self.calls.append((prompts, sampling_params))
        results = []
        sps = sampling_params if isinstance(sampling_params, list) else [sampling_params] * len(prompts)
        for prompt, sp in zip(prompts, sps):
            outs = []
            for i in reversed(range(sp["n"])):  # out of order on purpose
                piece = f" s{sp['seed']}-{i}"
                outs.append(_output([piece], [-0.5], index=i))
            results.append(FakeRequestOutput(str(prompt), outs))
        return results


@pytest.fixture()
def fake_vllm(monkeypatch):
    mod = types.ModuleType("vllm")
    mod.LLM = FakeLLM
    mod.SamplingParams = lambda **kw: kw  # the kwargs themselves stand in for the object
    monkeypatch.setitem(sys.modules, "vllm", mod)
    return mod


def test_sampler_wiring_with_fake_engine(fake_vllm):
    from semcal.backends.vllm import VLLMSampler

    s = VLLMSampler("my-org/model-7b-instruct", tensor_parallel_size=2, enforce_eager=True)
    assert s.is_chat and s.model_name == "my-org/model-7b-instruct"
    assert s.llm.kwargs["tensor_parallel_size"] == 2 and s.llm.kwargs["enforce_eager"] is True
    text = Prompt(text="Q: 2+2?\nA:")
    chat = Prompt(messages=(Message("user", "Hi"),), assistant_prefix="The answer")
    params = SamplingParams(seed=3, max_tokens=4)
    out = s.sample([text, chat], 3, params)
    prompts, sps = s.llm.calls[-1]
    assert prompts[0] == "Q: 2+2?\nA:"
    # chat prompts are rendered with the template (+ assistant prefix) and sent as token ids
    assert prompts[1] == {"prompt_token_ids": [ord(c) for c in "<bos><user>Hi<assistant>The answer"]}
    base = prompt_seed(3, text)
    assert [sp["n"] for sp in sps] == [3, 3] and sps[0]["seed"] == sample_seed(base, 0)
    # each prompt has its own seed, so prompts sampled together get independent draws
    assert sps[1]["seed"] == sample_seed(prompt_seed(3, chat), 0) != sps[0]["seed"]
    # outputs are put back in index order
    assert [c.text for c in out[0]] == [f" s{sample_seed(base, 0)}-{i}" for i in range(3)]
    # split_samples: one request per sample, seeded with sample i's seed
    s.split_samples = True
    out = s.sample([text], 3, params)
    _, sps = s.llm.calls[-1]
    assert [sp["seed"] for sp in sps] == [sample_seed(base, i) for i in range(3)]
    assert [c.text for c in out[0]] == [f" s{sample_seed(base, i)}-0" for i in range(3)]
    # greedy: one request, repeated
    out = s.sample([text], 4, SamplingParams(temperature=0))
    _, sps = s.llm.calls[-1]
    assert len(sps) == 1 and sps[0]["n"] == 1 and len(out[0]) == 4
    top = s.next_token_logprobs([text], k=2)
    assert top == [{"<top>": -0.01, " s0-0": -0.5}]
    s.close()
    assert s.llm is None


def test_missing_vllm_gives_one_line_error(monkeypatch):
    from semcal.backends.vllm import VLLMSampler

    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(MissingExtraError) as info:
        VLLMSampler("m")
    assert "semcal[vllm]" in str(info.value) and "\n" not in str(info.value)


def test_bad_options_checked_before_import():
    from semcal.backends.vllm import VLLMSampler

    with pytest.raises(InputError):
        VLLMSampler("m", tensor_parallel_size=0)
    with pytest.raises(InputError):
        VLLMSampler("m", gpu_memory_utilization=1.5)


# ------------------------------------------------------------------ real engine (GPU only)


def _cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None or not _cuda(),
                    reason="needs vllm and a CUDA GPU")
def test_real_vllm_engine():
    from semcal.backends.vllm import VLLMSampler
    from servers.procs import smollm2_gguf

    model = os.environ.get("SEMCAL_VLLM_MODEL") or str(smollm2_gguf())
    with VLLMSampler(model, gpu_memory_utilization=0.3, max_model_len=2048, chat=True) as s:
        params = SamplingParams(temperature=1.0, max_tokens=8, seed=1, stop=("\n",))
        prompts = [Prompt(text="Once upon a time,"),
                   Prompt(messages=(Message("user", "Capital of France?"),))]
        out = s.sample(prompts, 4, params)
        assert [len(r) for r in out] == [4, 4]
        for row in out:
            for c in row:
                assert "\n" not in c.text
                assert c.token_logprobs is not None and all(lp <= 0 for lp in c.token_logprobs)
                assert len(c.token_logprobs) == c.n_tokens <= 8
        greedy = s.sample(prompts[:1], 2, SamplingParams(temperature=0, max_tokens=8))
        assert greedy[0][0].text == greedy[0][1].text
        tops = s.next_token_logprobs(prompts, k=3)
        assert all(len(t) <= 3 and all(v <= 0 for v in t.values()) for t in tops)


# ------------------------------------------------------------------ shared chat helpers


def test_render_chat_folds_a_rejected_system_turn():
    from semcal.backends._chat import render_chat, sandboxed_template

    class NoSystem(FakeTokenizer):
        chat_template = ("{% if messages[0]['role'] == 'system' %}"
                         "{{ raise_exception('System role not supported') }}{% endif %}"
                         + FakeTokenizer.chat_template)

    p = Prompt(messages=(Message("system", "Be brief."), Message("user", "Hi")))
    assert render_chat(sandboxed_template(NoSystem()), p) == "<bos><user>Be brief.\n\nHi<assistant>"
    assert render_chat(None, Prompt(text="plain")) == "plain"

    class NoTemplate(FakeTokenizer):
        chat_template = None

    with pytest.raises(InputError):
        sandboxed_template(NoTemplate())


def test_vllm_renders_chat_templates_in_the_sandbox():
    """A template bomb through the vLLM backend is one InputError, not gigabytes."""
    from semcal.backends._chat import render_chat, sandboxed_template

    class Bomb(FakeTokenizer):
        chat_template = "{% set x = 'A' * 1000000000 %}{{ x * 3 }}"

    p = Prompt(messages=(Message("user", "Hi"),))
    with pytest.raises(InputError, match="model 'm'"):
        render_chat(sandboxed_template(Bomb()), p, "m")


def test_guess_is_chat_from_the_name():
    from semcal.backends._chat import guess_is_chat

    assert guess_is_chat("Qwen2.5-7B-Instruct") and guess_is_chat("gemma-3-4b-it")
    assert not guess_is_chat("Qwen2.5-7B") and not guess_is_chat("gemma-3-270m")
