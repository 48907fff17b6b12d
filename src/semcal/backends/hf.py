"""Sampling with Hugging Face transformers (CPU or GPU), extra ``semcal[hf]``.

How a call runs: every prompt is tokenized and run through the model once, alone (batch 1).
Its KV cache is then copied to as many rows as it has samples, and semcal's own decode loop
feeds one token per row per step through the model. The rows of several prompts share a
batch (up to ``max_rows`` rows, shorter prompts left-padded under an attention mask) when
the model's cache is a plain full-attention cache; models with sliding-window or chunked
layers get one prompt per batch. A row leaves the batch when it ends (an end token, a stop
string, or ``max_tokens``), and the loop stops when no row is left.

Reproducibility: sample ``i`` of a prompt has the seed
``sample_seed(prompt_seed(params.seed, prompt), i)``. At step ``t`` the row hashes (seed, t)
with splitmix64, in torch integer arithmetic on the model's device, into one uniform number
in [0, 1), and takes the token where that number falls in the cumulative distribution
(temperature applied, top-p filtered). No random state is shared between rows, so the draws
of sample ``i`` depend on (model, prompt, params, i) only: not on ``n``, on ``max_rows``, or
on the other prompts of the call, and ``sample([p], 2)`` is the first two of
``sample([p], 3)``. Greedy decoding (temperature 0) takes the argmax. What can still differ
is floating point: the batch a row runs in (its size, padding, the other prompts) and the
number of torch threads change how the forward pass rounds, by about 1e-6 in the
log-probabilities, which now and then moves a drawn uniform across the boundary between two
tokens. On CPU this flips roughly one
token in a thousand, mostly among very unlikely tokens, after which that sample goes its own
way; a GPU adds its own non-deterministic kernels. Samples drawn by semcal versions before
this method (a ``torch.Generator`` per row) differ from today's: it is another random stream.

Log-probabilities: each recorded value is ``log_softmax`` of the model's raw next-token logits
at the chosen token, i.e. the temperature-1 distribution before any temperature or top-p.
"""

from __future__ import annotations

import copy
import inspect
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
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


# ---------------------------------------------------------------------- seeded draws
#
# splitmix64 in torch int64 arithmetic. Products and sums wrap modulo 2**64 as in C; a right
# shift of an int64 copies the sign bit, so the logical shift masks the top bits off.

def _signed(v: int) -> int:
    """``v`` modulo 2**64 as a signed 64-bit integer (what an int64 tensor holds)."""
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >= 1 << 63 else v


_GAMMA = _signed(0x9E3779B97F4A7C15)
_MIX1 = _signed(0xBF58476D1CE4E5B9)
_MIX2 = _signed(0x94D049BB133111EB)


def _shr(x: Any, k: int) -> Any:
    """Logical right shift of an int64 tensor by ``k`` bits."""
    return (x >> k) & ((1 << (64 - k)) - 1)


def _mix64(x: Any) -> Any:
    """The splitmix64 finaliser, elementwise on an int64 tensor."""
    x = (x ^ _shr(x, 30)) * _MIX1
    x = (x ^ _shr(x, 27)) * _MIX2
    return x ^ _shr(x, 31)


def seed_keys(torch: Any, seeds: Sequence[int], device: Any = "cpu") -> Any:
    """One int64 key per sample seed: the start of that sample's own random stream."""
    return _mix64(torch.tensor([_signed(int(s)) for s in seeds], dtype=torch.int64, device=device))


def seeded_uniforms(keys: Any, step: int) -> Any:
    """The ``step``-th uniform in [0, 1) of each key's stream (float64, one per key).

    Output ``step`` of a splitmix64 generator whose state starts at the key: a pure function of
    (key, step), so a row's draws do not depend on the other rows of its batch.
    """
    z = _mix64(keys + _signed((step + 1) * (_GAMMA & ((1 << 64) - 1))))
    return _shr(z, 11).double() * 2.0**-53


def _choose(torch: Any, logits: Any, keys: Any | None, step: int, temperature: float,
            top_p: float) -> Any:
    """The next token of every row: argmax when greedy, else inverse-CDF sampling of the
    temperature-scaled, top-p-filtered distribution at the row's seeded uniform."""
    if keys is None or temperature == 0:
        return torch.argmax(logits, dim=-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    u = seeded_uniforms(keys, step)[:, None]
    if top_p >= 1.0:
        cdf = torch.cumsum(probs.double(), dim=-1)
        pick = torch.searchsorted(cdf, u * cdf[:, -1:], right=True)
        return pick[:, 0].clamp_max(probs.shape[-1] - 1)
    sorted_p, order = torch.sort(probs, dim=-1, descending=True)
    before = torch.cumsum(sorted_p, dim=-1) - sorted_p
    sorted_p = sorted_p.masked_fill(before >= top_p, 0.0)  # always keeps the top token
    cdf = torch.cumsum(sorted_p.double(), dim=-1)
    pick = torch.searchsorted(cdf, u * cdf[:, -1:], right=True)
    kept = (sorted_p > 0).sum(dim=-1, keepdim=True)
    pick = torch.minimum(pick, kept - 1)  # u * total rounding up to total: the last kept token
    return order.gather(-1, pick)[:, 0]


@dataclass
class _Prefill:
    """A prompt after its one forward pass: its KV cache (batch 1), the logits at its last
    position (1, vocab) and its length in tokens."""

    cache: Any
    logits: Any
    length: int


def _chosen_logprobs(torch: Any, logits: Any, chosen: Any) -> Any:
    """log_softmax(logits) at the chosen tokens: the raw temperature-1 distribution."""
    return logits.gather(-1, chosen[:, None])[:, 0] - torch.logsumexp(logits, dim=-1)


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
        Most rows decoded in one batch: the samples of several prompts share a batch up to this
        many, and ``n`` larger than this is split over batches. Default 128 on CPU, where a
        larger batch spreads the cost of reading the weights at each step over more rows, and
        32 elsewhere (the KV cache of every row is held on the device).
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
        max_rows: int | None = None,
        trust_remote_code: bool = False,
        revision: str | None = None,
        local_files_only: bool | None = None,
        n_threads: int | None = None,
    ) -> None:
        if max_rows is not None and (not isinstance(max_rows, int) or max_rows < 1):
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
        # prefill computes the logits of the last prompt position only where the model allows it
        forward_args = inspect.signature(self.model.forward).parameters
        self._keep_last = "logits_to_keep" in forward_args
        # the KV cache argument: ``cache`` in recent transformers, ``past_key_values`` before
        self._cache_arg = "cache" if "cache" in forward_args else "past_key_values"
        self._torch = torch
        self._transformers = transformers
        self.max_rows = max_rows if max_rows is not None else (128 if self.device.type == "cpu" else 32)
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

    def _prefill(self, ids: Any) -> _Prefill:
        """One forward pass over the prompt ``ids`` (batch 1)."""
        kw: dict[str, Any] = {"use_cache": True}
        if self._keep_last:
            kw["logits_to_keep"] = 1
        with self._torch.inference_mode():
            out = self.model(input_ids=ids, **kw)
        cache = getattr(out, self._cache_arg)
        if isinstance(cache, tuple):  # older transformers hand back the legacy tuple format
            cache = self._transformers.DynamicCache.from_legacy_cache(cache)
        return _Prefill(cache, out.logits[:, -1].float(), int(ids.shape[1]))

    def _paddable(self, cache: Any) -> bool:
        """Whether prefill caches of several prompts may be left-padded into one batch: only
        plain full-attention caches (no sliding-window or chunked layers)."""
        text = self.model.config.get_text_config()
        if any(getattr(text, a, None) is not None for a in ("sliding_window", "attention_chunk_size")):
            return False
        if any(t != "full_attention" for t in getattr(text, "layer_types", None) or ()):
            return False
        dynamic = self._transformers.DynamicCache
        layer_cls = getattr(self._transformers.cache_utils, "DynamicLayer", None)
        layers = getattr(cache, "layers", ())
        return type(cache) is dynamic and all(type(la) is layer_cls for la in layers)

    def _batch_cache(self, parts: list[tuple[_Prefill, int]]) -> tuple[Any, Any | None, Any | None]:
        """One KV cache for ``rows`` copies of each prefill: (cache, attention mask, prompt
        lengths), the last two None when no row needs left padding."""
        torch = self._torch
        if len(parts) == 1:
            pre, rows = parts[0]
            cache = copy.deepcopy(pre.cache)  # the prefill stays valid for the prompt's next batch
            if rows > 1:
                cache.batch_repeat_interleave(rows)
            return cache, None, None
        width = max(pre.length for pre, _ in parts)
        per_layer = []
        for layer in zip(*(list(pre.cache) for pre, _ in parts)):
            keys, values = [], []
            for kv, (pre, rows) in zip(layer, parts):
                pad = (0, 0, width - pre.length, 0)  # left-pad the sequence axis (dim 2)
                keys.append(torch.nn.functional.pad(kv[0], pad).expand(rows, -1, -1, -1))
                values.append(torch.nn.functional.pad(kv[1], pad).expand(rows, -1, -1, -1))
            per_layer.append((torch.cat(keys), torch.cat(values)))
        dynamic = self._transformers.DynamicCache
        if "ddp_cache_data" in inspect.signature(dynamic.__init__).parameters:
            cache = dynamic(ddp_cache_data=per_layer)
        else:  # pragma: no cover - transformers before the ddp_cache_data constructor
            cache = dynamic.from_legacy_cache(tuple(per_layer))
        lengths = torch.tensor([pre.length for pre, rows in parts for _ in range(rows)],
                               device=self.device)
        mask = (torch.arange(width, device=self.device)[None, :] >= (width - lengths)[:, None]).long()
        return cache, mask, lengths

    def _stopped(self, ids: list[int], stop: Sequence[str]) -> bool:
        if not stop:
            return False
        text = self._decode(ids)
        return any(s in text for s in stop)

    def _generate(self, ids: Any, params: SamplingParams, seeds: list[int] | None,
                  prefill: _Prefill | None = None) -> tuple[list[list[int]], list[list[float]]]:
        """Decode ``len(seeds)`` rows of one prompt (one greedy row when ``seeds`` is None);
        ``prefill`` is ``_prefill(ids)``, computed here when not given."""
        pre = prefill if prefill is not None else self._prefill(ids)
        return self._decode_batch([(pre, 1 if seeds is None else len(seeds))], params, seeds)

    def _decode_batch(self, parts: list[tuple[_Prefill, int]], params: SamplingParams,
                      seeds: list[int] | None) -> tuple[list[list[int]], list[list[float]]]:
        """Decode ``rows`` rows from each prefill in ``parts``, all in one batch.

        ``seeds`` holds one sample seed per row (None: greedy). Every row starts from its own
        copy of its prompt's KV cache; a row ends at an end token, a stop string or
        ``max_tokens``, and ended rows leave the batch. Returns, per row, the generated token
        ids and their log-probabilities (the end token included, as ``_to_completion`` expects).
        """
        torch = self._torch
        with torch.inference_mode():
            cache, mask, lengths = self._batch_cache(parts)
            logits = torch.cat([pre.logits.expand(rows, -1) for pre, rows in parts])
            rows = int(logits.shape[0])
            keys = None
            if seeds is not None and params.temperature > 0:
                keys = seed_keys(torch, seeds, self.device)
            active = list(range(rows))  # the row (of the whole batch) at each batch position
            gen: list[list[int]] = [[] for _ in range(rows)]
            lps: list[list[float]] = [[] for _ in range(rows)]
            temperature, top_p = float(params.temperature), float(params.top_p)
            for step in range(params.max_tokens):
                chosen = _choose(torch, logits, keys, step, temperature, top_p)
                chosen_lp = _chosen_logprobs(torch, logits, chosen)
                keep = self._record(active, chosen.tolist(), chosen_lp.tolist(), gen, lps, params)
                if not keep or step + 1 == params.max_tokens:
                    break
                if len(keep) < len(active):
                    index = torch.tensor(keep, device=self.device)
                    cache.batch_select_indices(index)
                    chosen = chosen[index]
                    keys = keys[index] if keys is not None else None
                    if mask is not None:
                        mask, lengths = mask[index], lengths[index]
                    active = [active[j] for j in keep]
                kw: dict[str, Any] = {self._cache_arg: cache}
                if mask is not None:  # left-padded rows: mask the padding, count positions
                    mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
                    kw.update(attention_mask=mask, position_ids=(lengths + step)[:, None])
                out = self.model(input_ids=chosen[:, None], use_cache=True, **kw)
                logits = out.logits[:, -1].float()
        return gen, lps

    def _record(self, active: list[int], tokens: list[int], logprobs: list[float],
                gen: list[list[int]], lps: list[list[float]], params: SamplingParams) -> list[int]:
        """Append each active row's token; return the batch positions of the rows that go on."""
        keep = []
        for j, r in enumerate(active):
            gen[r].append(tokens[j])
            lps[r].append(logprobs[j])
            if tokens[j] not in self._eos_ids and not self._stopped(gen[r], params.stop):
                keep.append(j)
        return keep

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
        for prompt in prompts:
            if not isinstance(prompt, Prompt):
                raise InputError(f"expected a Prompt, got {type(prompt).__name__}")
        encoded = [self._encode(p) for p in prompts]
        per_prompt = 1 if params.greedy else n
        # (prompt, sample) units, packed in order into batches of at most max_rows rows
        units = [(p, i) for p in range(len(prompts)) for i in range(per_prompt)]
        results: dict[tuple[int, int], Completion] = {}
        prefills: dict[int, _Prefill] = {}
        bases = [prompt_seed(params.seed, p) for p in prompts]
        for batch in self._batches(units, encoded, prefills):
            parts = [(prefills[p], len(idx)) for p, idx in batch]
            seeds = None
            if not params.greedy:
                seeds = [sample_seed(bases[p], i) for p, idx in batch for i in idx]
            gen, lps = self._decode_batch(parts, params, seeds)
            rows = iter(zip(gen, lps))
            for p, idx in batch:
                for i in idx:
                    ids_row, lp_row = next(rows)
                    results[(p, i)] = self._to_completion(ids_row, lp_row, params)
                if idx[-1] == per_prompt - 1:
                    del prefills[p]  # its last row is done
        if params.greedy:
            return [[results[(p, 0)]] * n for p in range(len(prompts))]
        return [[results[(p, i)] for i in range(n)] for p in range(len(prompts))]

    def _batches(self, units: list[tuple[int, int]], encoded: list[Any],
                 prefills: dict[int, _Prefill]) -> Iterator[list[tuple[int, list[int]]]]:
        """Split ``units`` into batches of at most ``max_rows`` rows, each a list of (prompt,
        sample indices). Prefills each prompt once, into ``prefills``, when its first row is
        batched (``sample`` drops it after its last batch); a batch holds several prompts only when their caches can be padded."""
        batch: list[tuple[int, list[int]]] = []
        size = 0
        for p, i in units:
            if p not in prefills:
                prefills[p] = self._prefill(encoded[p])
            joins = not batch or batch[-1][0] == p or self._paddable(prefills[p].cache)
            if batch and (size == self.max_rows or not joins):
                yield batch
                batch, size = [], 0
            if batch and batch[-1][0] == p:
                batch[-1][1].append(i)
            else:
                batch.append((p, [i]))
            size += 1
        if batch:
            yield batch

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
