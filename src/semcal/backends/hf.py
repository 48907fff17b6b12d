"""Sampling with Hugging Face transformers (CPU or GPU), extra ``semcal[hf]``.

One ``generate`` call per prompt draws its ``n`` samples as ``n`` rows of one batch (the
prompt is tokenized once and its copies are prefilled in one batched forward pass, as
``num_return_sequences`` would do).

Reproducibility: sample ``i`` of a prompt is drawn by its own ``torch.Generator`` seeded
with ``sample_seed(prompt_seed(params.seed, prompt), i)``. The token choice happens in a logits processor that
samples each row with that row's generator and hands greedy decoding a one-hot score, so
row ``i`` never consumes random numbers drawn for another row: its text depends on
(model, prompt, params, i) and not on ``n`` or on how rows are chunked. (Batch shape can
still change floating-point rounding in the forward pass, so on GPU or across batch sizes
rare token flips remain possible.)

Log-probabilities: the processor sees the model's raw next-token logits (semcal passes a
fresh ``GenerationConfig``, so no penalty or warper runs before it) and records
``log_softmax(logits)`` of the chosen token, i.e. the unmodified temperature-1 distribution.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from semcal.backends._chat import (
    END_OF_TURN_TOKENS,
    finish_completion,
    guess_is_chat,
    render_chat,
    sandboxed_template,
    trim_ids_by_decode,
)
from semcal.backends.base import prompt_seed, sample_seed, truncate_at_stop
from semcal.backends.chat_template import ChatTemplate
from semcal.backends.models import EMBEDDED, resolve_model
from semcal.errors import BackendError, InputError, require
from semcal.types import Completion, Prompt, SamplingParams, check_n

_DTYPES = {
    "float32": "float32", "fp32": "float32", "float": "float32",
    "float16": "float16", "fp16": "float16", "half": "float16",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
}


def _import_torch() -> Any:
    return require("torch", "the transformers backend", "hf")


def _import_transformers() -> Any:
    return require("transformers", "the transformers backend", "hf")


def _version_tuple(v: str) -> tuple[int, ...]:
    out = []
    for part in v.split(".")[:2]:
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits or 0))
    return tuple(out)


def _locate(model: str, gguf_file: str | None) -> tuple[str, str | None, bool | None, str]:
    """Where to load ``model`` from: (source dir or hub id, gguf file name, is_chat hint, name)."""
    raw = os.fspath(model).strip()
    if not raw:
        raise InputError("no model given", where="--model")
    if gguf_file:
        return raw, gguf_file, None, raw
    path = Path(raw).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return str(path.parent), path.name, None, raw
    if path.is_dir():
        return str(path), None, None, raw

    if raw.lower() in EMBEDDED:  # an embedded short name ("smollm2-135m-instruct", ...)
        spec = resolve_model(raw)
        p = Path(spec.path)
        return str(p.parent), p.name, bool(spec.is_chat), spec.name
    if raw.endswith(".gguf"):
        raise InputError(f"no such file: {raw!r}", where="--model")
    return raw, None, None, raw  # a hub id (cached locally, or online)


class _SeededSampling:
    """A logits processor that picks each row's next token with that row's own generator.

    Returns scores that are 0 at the chosen token and -inf elsewhere, so greedy decoding in
    ``generate`` takes exactly that token. Records the chosen token's log-probability under
    the unprocessed distribution (``log_softmax`` of the logits it receives).
    """

    def __init__(self, torch: Any, generators: list[Any] | None, temperature: float, top_p: float):
        self.torch = torch
        self.generators = generators
        self.temperature = temperature
        self.top_p = top_p
        self.chosen_logprobs: list[Any] = []  # one (rows,) tensor per step

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        torch = self.torch
        logits = scores.float()
        logp = torch.log_softmax(logits, dim=-1)
        if self.generators is None or self.temperature == 0:
            chosen = torch.argmax(logits, dim=-1)
        else:
            probs = torch.softmax(logits / self.temperature, dim=-1)
            if self.top_p < 1.0:
                sorted_p, order = torch.sort(probs, dim=-1, descending=True)
                before = torch.cumsum(sorted_p, dim=-1) - sorted_p
                sorted_p = sorted_p.masked_fill(before >= self.top_p, 0.0)  # keeps the top token
                probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
            rows = []
            for r, gen in enumerate(self.generators):
                rows.append(torch.multinomial(probs[r], 1, generator=gen))
            chosen = torch.cat(rows)
        self.chosen_logprobs.append(logp.gather(-1, chosen[:, None])[:, 0].cpu())
        out = torch.full_like(scores, -math.inf)
        out.scatter_(-1, chosen[:, None], 0.0)
        return out


class HFSampler:
    """A :class:`~semcal.backends.base.Sampler` on a transformers causal LM.

    Parameters
    ----------
    model:
        A hub id (loaded from the local cache when offline), a local model folder, a path to
        a ``.gguf`` file (transformers de-quantizes it; needs ``gguf`` and ``accelerate``),
        or an embedded short name (``"smollm2-135m-instruct"``, ``"gemma-3-270m"``).
    device:
        ``"cuda"``, ``"cuda:1"``, ``"cpu"``, ``"mps"``...; default ``"cuda"`` when available.
    dtype:
        ``"float32"``, ``"bfloat16"``, ``"float16"`` or ``"auto"``; default float32 on CPU,
        bfloat16 on GPUs that support it (float16 otherwise).
    chat:
        Whether the model expects chat messages; ``None`` guesses from the name (or the
        embedded model's kind). Chat prompts need the tokenizer's chat template.
    gguf_file:
        The GGUF file name inside ``model`` (a folder or hub repo) when loading a GGUF.
    max_rows:
        Most sequences generated in one ``generate`` call (``n`` larger than this is chunked).
    trust_remote_code, revision, local_files_only:
        Passed to ``from_pretrained``.
    n_threads:
        CPU threads for torch (``torch.set_num_threads``, which is process-wide).
    """

    def __init__(
        self,
        model: str,
        device: str | None = None,
        dtype: str | None = None,
        chat: bool | None = None,
        gguf_file: str | None = None,
        max_rows: int = 32,
        trust_remote_code: bool = False,
        revision: str | None = None,
        local_files_only: bool | None = None,
        n_threads: int | None = None,
    ) -> None:
        if not isinstance(max_rows, int) or max_rows < 1:
            raise InputError(f"max_rows must be an integer >= 1, got {max_rows!r}")
        if n_threads is not None and (not isinstance(n_threads, int) or n_threads < 1):
            raise InputError(f"n_threads must be an integer >= 1, got {n_threads!r}")
        torch = _import_torch()
        transformers = _import_transformers()
        if n_threads is not None:
            torch.set_num_threads(n_threads)  # CPU threads (process-wide in torch)
        source, gguf_name, chat_hint, name = _locate(model, gguf_file)
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.torch_dtype = self._pick_dtype(torch, dtype)
        kw: dict[str, Any] = {"trust_remote_code": trust_remote_code}
        if revision:
            kw["revision"] = revision
        if local_files_only is not None:
            kw["local_files_only"] = local_files_only
        if gguf_name:
            kw["gguf_file"] = gguf_name
        dtype_key = "dtype" if _version_tuple(transformers.__version__) >= (4, 56) else "torch_dtype"
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(source, **kw)
            self.model = transformers.AutoModelForCausalLM.from_pretrained(
                source, **kw, **{dtype_key: self.torch_dtype}
            )
        except (OSError, ValueError, ImportError) as exc:
            raise BackendError(f"transformers could not load {model!r}: {exc}") from exc
        self.model.to(self.device)
        self.model.eval()
        self._torch = torch
        self._transformers = transformers
        self.max_rows = max_rows
        self.model_name = name
        if chat is not None:
            self.is_chat = bool(chat)
        elif chat_hint is not None:
            self.is_chat = chat_hint
        else:
            self.is_chat = guess_is_chat(name) and bool(getattr(self.tokenizer, "chat_template", None))
        self._eos_ids = self._end_ids()
        self._formatter: ChatTemplate | None = None
        pad = self.tokenizer.pad_token_id
        self._pad_id = pad if pad is not None else self._eos_ids[0]

    # ------------------------------------------------------------------ setup helpers

    def _pick_dtype(self, torch: Any, dtype: str | None) -> Any:
        if dtype is None:
            if self.device.type == "cuda":
                return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            return torch.float32
        if dtype == "auto":
            return "auto"
        key = _DTYPES.get(str(dtype).lower().replace("torch.", ""))
        if key is None:
            raise InputError(f"unknown dtype {dtype!r} (use float32, bfloat16, float16 or auto)")
        return getattr(torch, key)

    def _end_ids(self) -> list[int]:
        """Token ids that end a generation: the configs' EOS plus known end-of-turn tokens."""
        ids: list[int] = []

        def add(x: Any) -> None:
            if x is None:
                return
            for v in x if isinstance(x, (list, tuple)) else [x]:
                if isinstance(v, int) and v >= 0 and v not in ids:
                    ids.append(v)

        add(getattr(self.model.generation_config, "eos_token_id", None))
        add(getattr(self.model.config, "eos_token_id", None))
        add(self.tokenizer.eos_token_id)
        vocab = self.tokenizer.get_vocab()
        for tok in END_OF_TURN_TOKENS:
            if tok in vocab:
                add(vocab[tok])
        if not ids:
            raise BackendError(f"{self.model_name}: the tokenizer defines no end-of-sequence token")
        return ids

    def render(self, prompt: Prompt) -> str:
        """The text a prompt becomes: raw text, or chat messages rendered with the tokenizer's
        chat template in semcal's sandbox (with the generation prompt) + ``assistant_prefix``."""
        if prompt.is_chat and self._formatter is None:
            self._formatter = sandboxed_template(self.tokenizer)
        return render_chat(self._formatter, prompt, str(self.model_name))

    def _encode(self, prompt: Prompt) -> Any:
        text = self.render(prompt)
        enc = self.tokenizer(text, return_tensors="pt", add_special_tokens=not prompt.is_chat)
        ids = enc["input_ids"].to(self.device)
        if ids.shape[1] == 0:
            raise InputError("the prompt encodes to zero tokens")
        return ids

    @property
    def context_length(self) -> int | None:
        """The model's context (``max_position_embeddings`` of its config), None if unknown."""
        n = getattr(getattr(self.model, "config", None), "max_position_embeddings", None)
        return n if isinstance(n, int) and n > 0 else None

    def count_tokens(self, prompt: Prompt) -> int:
        return int(self._encode(prompt).shape[1])

    def _decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    # ------------------------------------------------------------------ sampling

    def _generate(self, ids: Any, params: SamplingParams, seeds: list[int] | None) -> tuple[Any, Any]:
        """Run ``generate`` for ``len(seeds)`` rows (one greedy row when ``seeds`` is None).

        Returns (generated ids (rows, steps), chosen-token log-probs (rows, steps)).
        """
        torch = self._torch
        rows = 1 if seeds is None else len(seeds)
        generators = None
        if seeds is not None:
            generators = []
            for s in seeds:
                g = torch.Generator(device=self.device)
                g.manual_seed(int(s))
                generators.append(g)
        proc = _SeededSampling(torch, generators, float(params.temperature), float(params.top_p))
        config = self._transformers.GenerationConfig(
            max_new_tokens=params.max_tokens,
            do_sample=False,
            num_beams=1,
            eos_token_id=self._eos_ids,
            pad_token_id=self._pad_id,
            return_dict_in_generate=True,
        )
        kwargs: dict[str, Any] = {}
        if params.stop:
            config.stop_strings = list(params.stop)
            kwargs["tokenizer"] = self.tokenizer
        # the prompt's rows are identical copies: greedy decoding over the one-hot scores of
        # the processor gives each row its own sample (what num_return_sequences would do,
        # without generate's shared random stream)
        batch = ids.expand(rows, -1)
        attn = torch.ones_like(batch)
        out = self.model.generate(
            input_ids=batch,
            attention_mask=attn,
            generation_config=config,
            logits_processor=self._transformers.LogitsProcessorList([proc]),
            **kwargs,
        )
        gen = out.sequences[:, ids.shape[1]:].cpu()
        if proc.chosen_logprobs:
            lps = torch.stack(proc.chosen_logprobs, dim=1)
        else:  # pragma: no cover - max_new_tokens >= 1 always runs one step
            lps = torch.zeros((rows, 0))
        return gen, lps

    def _to_completion(self, ids_row: list[int], lp_row: list[float], params: SamplingParams) -> Completion:
        end = len(ids_row)
        hit_eos = False
        for k, t in enumerate(ids_row):
            if t in self._eos_ids:
                end, hit_eos = k, True
                break
        ids = ids_row[:end]
        lps = lp_row[:end]
        text = self._decode(ids)
        cut, stopped = truncate_at_stop(text, params.stop)
        if stopped:
            keep = trim_ids_by_decode(ids, self._decode, len(cut))
            ids, lps = ids[:keep], lps[:keep]
        tokens = [self.tokenizer.decode([t], skip_special_tokens=False) for t in ids]
        reason = "stop" if (hit_eos or stopped) else "length"
        comp = finish_completion(cut, reason, (), tokens, lps if params.logprobs else None,
                                 n_tokens=len(ids))
        if not params.logprobs:
            comp = Completion(text=comp.text, finish_reason=comp.finish_reason, n_tokens=comp.n_tokens)
        return comp

    def sample(
        self, prompts: Sequence[Prompt], n: int, params: SamplingParams
    ) -> list[list[Completion]]:
        """Draw ``n`` completions for each prompt; returns ``len(prompts)`` lists of ``n``."""
        check_n(n)
        torch = self._torch
        out: list[list[Completion]] = []
        with torch.inference_mode():
            for prompt in prompts:
                if not isinstance(prompt, Prompt):
                    raise InputError(f"expected a Prompt, got {type(prompt).__name__}")
                ids = self._encode(prompt)
                if params.greedy:
                    gen, lps = self._generate(ids, params, None)
                    one = self._to_completion(gen[0].tolist(), lps[0].tolist(), params)
                    out.append([one] * n)
                    continue
                comps: list[Completion] = []
                for start in range(0, n, self.max_rows):
                    base = prompt_seed(params.seed, prompt)
                    seeds = [sample_seed(base, i) for i in range(start, min(n, start + self.max_rows))]
                    gen, lps = self._generate(ids, params, seeds)
                    for r in range(len(seeds)):
                        comps.append(self._to_completion(gen[r].tolist(), lps[r].tolist(), params))
                out.append(comps)
        return out

    def next_token_logprobs(self, prompts: Sequence[Prompt], k: int = 5) -> list[dict[str, float]]:
        """Top-``k`` log-probabilities of the first generated token, one dict per prompt."""
        if not isinstance(k, int) or k < 1:
            raise InputError(f"k must be an integer >= 1, got {k!r}")
        torch = self._torch
        result: list[dict[str, float]] = []
        with torch.inference_mode():
            for prompt in prompts:
                ids = self._encode(prompt)
                logits = self.model(input_ids=ids).logits[0, -1].float()
                logp = torch.log_softmax(logits, dim=-1)
                vals, idx = torch.topk(logp, min(k, logp.shape[-1]))
                top: dict[str, float] = {}
                for v, i in zip(vals.tolist(), idx.tolist()):
                    tok = self.tokenizer.decode([i], skip_special_tokens=False)
                    top.setdefault(tok, min(float(v), 0.0))
                result.append(top)
        return result

    def sequence_logprobs(self, prompt: Prompt, completion_ids: Sequence[int]) -> list[float]:
        """Teacher-forced log-probs of ``completion_ids`` after ``prompt`` (one forward pass)."""
        torch = self._torch
        with torch.inference_mode():
            ids = self._encode(prompt)
            tail = torch.tensor([list(completion_ids)], dtype=ids.dtype, device=self.device)
            full = torch.cat([ids, tail], dim=1)
            logits = self.model(input_ids=full).logits[0].float()
            logp = torch.log_softmax(logits[ids.shape[1] - 1 : -1], dim=-1)
            return logp.gather(-1, tail[0][:, None])[:, 0].tolist()

    def close(self) -> None:
        """Free the model (and the GPU cache when on CUDA)."""
        self.model = None  # type: ignore[assignment]
        if self.device.type == "cuda":
            self._torch.cuda.empty_cache()

    def __enter__(self) -> HFSampler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"HFSampler(model={self.model_name!r}, device={str(self.device)!r})"
