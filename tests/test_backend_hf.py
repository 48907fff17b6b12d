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
        teacher = hf.sequence_logprobs(STORY, gen[r])
        assert lps[r] == pytest.approx(teacher, abs=1e-4)


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


# ---------------------------------------------------------------- the seeded decode loop


def _splitmix64_reference(key: int, step: int) -> float:
    """Output ``step`` of a splitmix64 generator whose state starts at ``key``, in plain
    Python integers (the definition semcal's torch version must match bit for bit)."""
    mask = 2**64 - 1

    def mix(z: int) -> int:
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        return z ^ (z >> 31)

    z = mix((mix(key & mask) + (step + 1) * 0x9E3779B97F4A7C15) & mask)
    return (z >> 11) * 2.0**-53


def test_seeded_uniforms_are_a_counter_based_hash():
    torch = pytest.importorskip("torch")
    from semcal.backends.hf import seed_keys, seeded_uniforms

    seeds = [0, 1, 2, 7, 2**31 - 1, 123456789]
    keys = seed_keys(torch, seeds)
    grid = torch.stack([seeded_uniforms(keys, t) for t in range(50)])  # (steps, seeds)
    assert grid.dtype == torch.float64
    assert bool((grid >= 0).all()) and bool((grid < 1).all())
    # the torch integer arithmetic wraps exactly like 64-bit unsigned arithmetic
    for j, s in enumerate(seeds):
        for t in (0, 1, 49):
            assert grid[t, j].item() == _splitmix64_reference(s, t)
    # deterministic, and a row's uniform does not depend on the other keys of the tensor
    assert torch.equal(seeded_uniforms(seed_keys(torch, seeds), 3), grid[3])
    assert seeded_uniforms(seed_keys(torch, [7]), 3).item() == grid[3, 3].item()
    # distinct across seeds and across steps
    assert len(set(grid.flatten().tolist())) == grid.numel()
    many = seeded_uniforms(seed_keys(torch, range(20000)), 0)
    assert abs(many.mean().item() - 0.5) < 0.01
    assert abs((many < 0.1).float().mean().item() - 0.1) < 0.01


def test_inverse_cdf_choice_follows_the_filtered_distribution():
    torch = pytest.importorskip("torch")
    from semcal.backends.hf import _choose, seed_keys

    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = probs.log().expand(4000, -1)
    keys = seed_keys(torch, range(4000))
    picks = _choose(torch, logits, keys, 0, 1.0, 1.0)
    freq = torch.bincount(picks, minlength=4).double() / 4000
    assert torch.allclose(freq, probs.double(), atol=0.03)
    # top-p 0.7 keeps the two most likely tokens (0.5 + 0.3), renormalised to 5/8 and 3/8
    top = torch.bincount(_choose(torch, logits, keys, 0, 1.0, 0.7), minlength=4).double() / 4000
    assert top[2:].sum().item() == 0
    assert abs(top[0].item() - 0.625) < 0.03
    # greedy is the argmax, with or without keys; a row's pick ignores its neighbours
    assert _choose(torch, logits[:3], None, 0, 1.0, 1.0).tolist() == [0, 0, 0]
    assert _choose(torch, logits[:3], keys[:3], 5, 0.0, 1.0).tolist() == [0, 0, 0]
    one = _choose(torch, logits[7:8], keys[7:8], 0, 1.0, 1.0)
    assert one.item() == picks[7].item()


@pytest.mark.slow
def test_a_sample_does_not_depend_on_n_max_rows_or_the_other_prompts(hf):
    """Sample i of a prompt is the same text alone, with more samples, chunked, or in a batch
    with other prompts of other lengths (left-padded rows)."""
    params = SamplingParams(temperature=1.0, max_tokens=8, seed=5)
    alone = {p: [c.text for c in hf.sample([p], 3, params)[0]] for p in (STORY, QA, CHAT)}
    together = hf.sample([STORY, QA, CHAT], 4, params)
    assert [[c.text for c in row[:3]] for row in together] == [alone[STORY], alone[QA], alone[CHAT]]
    saved = hf.max_rows
    try:
        hf.max_rows = 3  # batches that split prompts and mix them
        chunked = hf.sample([CHAT, STORY, QA], 4, params)
    finally:
        hf.max_rows = saved
    assert [[c.text for c in r] for r in chunked] == [[c.text for c in r] for r in
                                                      (together[2], together[0], together[1])]
    assert len({c.text for c in together[0]}) >= 2  # the rows are different samples


@pytest.mark.slow
def test_recorded_logprobs_match_a_teacher_forced_pass(hf):
    """In float32 the decode loop's log-probs (one token at a time on a shared, repeated and
    left-padded cache) equal one teacher-forced forward pass over prompt + completion."""
    params = SamplingParams(temperature=0.8, top_p=0.95, max_tokens=10, seed=2)
    story, qa = hf._prefill(hf._encode(STORY)), hf._prefill(hf._encode(QA))
    assert story.length < qa.length  # the STORY rows are left-padded in the shared batch
    gen, lps = hf._decode_batch([(story, 3), (qa, 3)], params, [21, 22, 23, 31, 32, 33])
    for prompt, ids, got in zip([STORY] * 3 + [QA] * 3, gen, lps):
        assert len(ids) == len(got) >= 1
        assert got == pytest.approx(hf.sequence_logprobs(prompt, ids), abs=1e-4)
    # sample() records the same values in its completions
    row = hf.sample([STORY], 1, params)[0][0]
    base_ids = hf._encode(STORY)
    from semcal.backends.base import prompt_seed, sample_seed

    ids, lp = hf._generate(base_ids, params, [sample_seed(prompt_seed(2, STORY), 0)])
    assert row.token_logprobs == pytest.approx(lp[0][: row.n_tokens], abs=1e-6)


@pytest.mark.slow
def test_each_prompt_is_prefilled_once(hf, monkeypatch):
    """One forward pass over each prompt's tokens, whatever n and max_rows; every other pass
    feeds one token per row."""
    widths: list[tuple[int, int]] = []
    forward = hf.model.forward

    def counting(*args, **kwargs):
        ids = kwargs["input_ids"]
        widths.append((int(ids.shape[0]), int(ids.shape[1])))
        return forward(*args, **kwargs)

    monkeypatch.setattr(hf.model, "forward", counting)
    monkeypatch.setattr(hf, "max_rows", 4)  # n = 6 needs two batches per prompt
    hf.sample([STORY, QA], 6, SamplingParams(temperature=1.0, max_tokens=4, seed=1))
    prefills = [w for w in widths if w[1] > 1]
    assert prefills == [(1, hf.count_tokens(STORY)), (1, hf.count_tokens(QA))]
    steps = [w for w in widths if w[1] == 1]
    assert steps and max(rows for rows, _ in steps) <= 4
    assert len(widths) == len(prefills) + len(steps)
