"""The transformers backend on a REAL small model, offline.

transformers loads the embedded SmolLM2-135M-Instruct Q4_1 GGUF (llama architecture) and
de-quantizes it to float32 (needs the ``gguf`` and ``accelerate`` packages). The model is
loaded once per module; every generation is a few tokens.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from semcal.backends.base import Sampler  # noqa: E402
from semcal.errors import InputError, MissingExtraError  # noqa: E402
from semcal.types import Message, Prompt, SamplingParams  # noqa: E402
from servers.procs import smollm2_gguf  # noqa: E402

HAS_HF = all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers", "gguf", "accelerate"))

QA = Prompt(text="Q: What is the capital of France?\nA: Paris\nQ: What is the capital of Italy?\nA:")
STORY = Prompt(text="Once upon a time, in a small village,")
CHAT = Prompt(messages=(Message("user", "What is the capital of France? Answer in one word."),))


@pytest.fixture(scope="module")
def hf():
    if not HAS_HF:
        pytest.skip("torch/transformers/gguf/accelerate not installed")
    from semcal.backends.hf import HFSampler

    # by file path: works whether or not the embedded-model registry is importable
    s = HFSampler(str(smollm2_gguf()), device="cpu")
    yield s
    s.close()


@pytest.mark.slow
def test_shapes_seeds_and_independence_of_n(hf):
    assert isinstance(hf, Sampler)
    assert hf.is_chat  # "Instruct" in the file name, and the GGUF has a chat template
    params = SamplingParams(temperature=1.0, max_tokens=6, seed=7)
    out = hf.sample([STORY, QA], 3, params)
    assert [len(r) for r in out] == [3, 3]
    for row in out:
        for c in row:
            assert c.finish_reason in ("stop", "length")
            assert len(c.token_logprobs) == len(c.tokens) == c.n_tokens <= 6
            assert all(lp <= 0 for lp in c.token_logprobs)
            if c.finish_reason == "length":
                assert c.n_tokens == 6
    assert len({c.text for c in out[0]}) >= 2
    # sample i is drawn by its own generator: it does not depend on n or chunking
    fewer = hf.sample([STORY], 2, params)[0]
    assert [c.text for c in fewer] == [c.text for c in out[0][:2]]
    other = hf.sample([STORY], 3, SamplingParams(temperature=1.0, max_tokens=6, seed=8))[0]
    assert [c.text for c in other] != [c.text for c in out[0]]


@pytest.mark.slow
def test_logprobs_are_the_unmodified_distribution(hf):
    """Sampling at temperature 0.7 / top-p 0.9 still records raw temperature-1 log-probs."""
    ids = hf._encode(STORY)
    params = SamplingParams(temperature=0.7, top_p=0.9, max_tokens=5, seed=3)
    gen, lps = hf._generate(ids, params, [11, 12])
    for r in range(2):
        row = gen[r].tolist()
        teacher = hf.sequence_logprobs(STORY, row)
        assert lps[r].tolist() == pytest.approx(teacher, abs=2e-3)


@pytest.mark.slow
def test_greedy_and_stop_strings(hf):
    greedy = hf.sample([STORY], 2, SamplingParams(temperature=0.0, max_tokens=10))[0]
    assert greedy[0] == greedy[1]
    text = greedy[0].text
    words = text.split()
    assert len(words) >= 2, text
    stop = words[1]
    cut = text[: text.index(stop)]
    stopped = hf.sample([STORY], 1, SamplingParams(temperature=0.0, max_tokens=10, stop=(stop,)))[0][0]
    assert stopped.text == cut
    assert stopped.finish_reason == "stop"
    assert stopped.n_tokens < greedy[0].n_tokens
    assert stopped.token_logprobs == greedy[0].token_logprobs[: stopped.n_tokens]


@pytest.mark.slow
def test_chat_template_and_next_token_logprobs(hf):
    out = hf.sample([CHAT], 1, SamplingParams(temperature=0.0, max_tokens=8))[0][0]
    assert "Paris" in out.text  # the instruct model answers the chat-formatted question
    tops = hf.next_token_logprobs([CHAT, QA], k=3)
    assert [len(t) for t in tops] == [3, 3]
    for top in tops:
        assert all(v <= 0 for v in top.values())
        assert list(top.values()) == sorted(top.values(), reverse=True)
    assert out.tokens[0] == next(iter(tops[0]))
    assert out.token_logprobs[0] == pytest.approx(tops[0][out.tokens[0]], abs=1e-3)


def test_missing_transformers_gives_one_line_error(monkeypatch):
    import semcal.backends.hf as hf_mod

    monkeypatch.setitem(sys.modules, "transformers", None)  # makes the import fail
    with pytest.raises(MissingExtraError) as info:
        hf_mod.HFSampler("anything")
    assert "semcal[hf]" in str(info.value) and "\n" not in str(info.value)


def test_missing_gguf_file_is_input_error():
    if not HAS_HF:
        pytest.skip("transformers not installed")
    from semcal.backends.hf import HFSampler

    with pytest.raises(InputError):
        HFSampler("/nonexistent/model.gguf")


@pytest.mark.slow
def test_chat_template_renders_as_transformers_does(hf):
    """semcal's bounded sandbox renders the real model's template to exactly the text of
    transformers' own apply_chat_template (same variables: messages, special tokens, ...)."""
    convs = [
        [{"role": "user", "content": "What is the capital of France?"}],
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}],
        [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."},
         {"role": "user", "content": "<b>&amp; {{ x }} {% raw %}"}],
    ]
    for msgs in convs:
        p = Prompt(messages=tuple(Message(m["role"], m["content"]) for m in msgs))
        want = hf.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        assert hf.render(p) == want


_PEAK_AT_EXIT = """
import atexit, sys
def _peak(path):  # VmHWM: this program's own peak resident memory
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            open(path, "w").write(line.split()[1])
atexit.register(_peak, sys.argv[1])
sys.argv = ["semcal", *sys.argv[2:]]
from semcal.cli import main
sys.exit(main())
"""


def _tiny_chat_model(folder: Path, chat_template: str) -> None:
    """A randomly initialised two-layer llama with SmolLM2's tokenizer and the given template."""
    import torch
    import transformers

    gguf = smollm2_gguf()
    tok = transformers.AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tok.chat_template = chat_template
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    transformers.LlamaForCausalLM(config).save_pretrained(folder)


@pytest.mark.slow
def test_a_chat_template_bomb_under_semcal_run_hf_is_one_line(tmp_path: Path) -> None:
    """The transformers backend renders through semcal's bounded sandbox: a template that
    grew to 4.3 GB and exited 0 in transformers' own sandbox ends in one line, exit 2, within
    seconds and without growing past a few hundred MB over an ordinary run's peak."""
    if not HAS_HF:
        pytest.skip("torch/transformers/gguf/accelerate not installed")
    import os
    import subprocess
    import time

    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "HF_HUB_DISABLE_PROGRESS_BARS": "1"}  # transformers' "Loading weights" bar

    def run(name: str, template: str) -> tuple[subprocess.CompletedProcess[str], float, float]:
        model = tmp_path / f"{name}-instruct"  # 'instruct': semcal takes it for a chat model
        _tiny_chat_model(model, template)
        peak = tmp_path / f"{name}.peak"
        t0 = time.monotonic()
        r = subprocess.run(
            [sys.executable, "-c", _PEAK_AT_EXIT, str(peak), "run", "--backend", "hf",
             "--model", str(model), "--dataset", "demo", "--samples", "1", "--max-tokens", "2",
             "--out", str(tmp_path / f"{name}-out")],
            env=env, capture_output=True, text=True, timeout=600)
        return r, time.monotonic() - t0, int(peak.read_text()) / 1024

    ordinary = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    ok, ok_seconds, ok_mb = run("ordinary", ordinary)
    assert ok.returncode == 0, ok.stderr[-2000:]
    bomb = ordinary + "{% set x = 'A' * 1000000000 %}{{ x * 3 }}"
    r, seconds, mb = run("bomb", bomb)
    assert r.returncode == 2, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("semcal: error: "), r.stderr[-2000:]
    assert "chat template: a product would hold more than" in lines[0]
    assert "Traceback" not in r.stderr
    assert seconds < ok_seconds + 10, (seconds, ok_seconds)
    assert mb < ok_mb + 400, (mb, ok_mb)
    print(f"ordinary run {ok_seconds:.1f} s, {ok_mb:.0f} MB; bomb {seconds:.1f} s, {mb:.0f} MB")
