"""llama.cpp sampling backend (CPU default), through llama-cpp-python's low-level API.

How one ``sample(prompts, n, params)`` call runs:

* Every prompt is evaluated **once**. Its KV cache is shared, not copied, by the sequences that
  continue it (``llama_memory_seq_cp`` on a unified KV cache only tags the prompt's cells with
  more sequence ids), and the logits of its last position are kept, so the first token of every
  sample is drawn from them without another forward pass.
* Up to ``n_parallel`` sequences — the samples of one prompt, or of several — are decoded
  **together**: each step sends one token per live sequence in one ``llama_decode`` batch, so the
  weights are read once per step for all of them (matrix–matrix work instead of ``n``
  matrix–vector passes). Finished sequences free their slot for the next sample or prompt.
* Consecutive prompts that share a prefix (few-shot examples) re-use its KV cells, within a
  call and from one call to the next: one extra sequence keeps the last prompt, and the next
  prompt evaluates only the tokens after the common prefix, in whole blocks of
  ``PREFIX_BLOCK`` tokens (``prefix_cache=True``, the default).
* Sampling is done here, vectorised in numpy over the ``(n_live, vocab)`` logits matrix that
  llama.cpp fills for the batch (only the last position of each sequence is computed, never the
  whole context). One softmax pass gives both the draw (inverse CDF on blocked cumulative sums)
  and the exact log-probability of the drawn token under the model's unmodified distribution.
* Sample ``i`` of a prompt draws its uniforms from its own ``numpy`` generator seeded with
  ``sample_seed(prompt_seed(params.seed, prompt), i)``. With llama.cpp's plain CPU
  kernels (``repack=False``, the default) a sequence's logits are bit-identical whatever else
  shares its batch. The prefix cache is built so that it changes no bit either: prompts are
  always evaluated in chunks that end at multiples of ``PREFIX_BLOCK`` (cached or not), only
  whole chunks are re-used, the cache is cut back to them before the rest of the prompt is
  evaluated (so it lands in the very cells a fresh evaluation would use), and a call starts from
  the previous call's cache only when that call had one prompt (otherwise the cells are
  interleaved and the call starts empty). So a one-prompt call — what the runner makes — gives
  the same bits whatever was sampled before (``tests/test_determinism.py``). An earlier cache
  that re-used any number of tokens and left the old prompt's cells in place moved
  log-probabilities by up to 0.05 nats depending on the previous prompt.
* Text-level stop strings are matched on the decoded text (so a stop string may span tokens);
  partial UTF-8 characters are held back until complete; end-of-generation tokens stop a sample.
"""

from __future__ import annotations

import codecs
import ctypes
import dataclasses
import logging
import math
import os
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from semcal.backends.base import check_context, prompt_seed, sample_seed
from semcal.backends.chat_template import ChatTemplate
from semcal.backends.models import ModelSpec, resolve_model
from semcal.errors import BackendError, InputError, require
from semcal.types import Completion, Prompt, SamplingParams, check_n

__all__ = ["LlamaCppSampler", "choose_tokens"]

log = logging.getLogger(__name__)

#: block width of the blocked cumulative sums used to draw from a softmax row
_BLOCK = 1024


# ---------------------------------------------------------------------------------------------
# vectorised token choice
# ---------------------------------------------------------------------------------------------


#: prompts are evaluated in chunks that end at multiples of this many tokens when the prefix
#: cache is on, and only whole chunks are re-used from it (see ``LlamaCppSampler._prefill``)
PREFIX_BLOCK = 64
#: KV cells the planned context aims at when max_tokens is large (see ``_plan_ctx``)
CELL_BUDGET = 16384


def choose_tokens(
    logits: np.ndarray,
    rows: np.ndarray,
    uniforms: np.ndarray | None,
    temperature: float,
    top_p: float = 1.0,
    want_logprobs: bool = True,
    work: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Draw one token per sequence from rows of a logits matrix.

    Args:
        logits: ``(m, V)`` float32 raw logits (one row per distinct distribution).
        rows: ``(k,)`` int, the logits row each of the ``k`` sequences draws from.
        uniforms: ``(k,)`` floats in [0, 1), one per sequence; ignored (may be None) when
            ``temperature == 0`` (greedy: the first arg-max).
        temperature, top_p: the sampling distribution is ``softmax(logits / temperature)``
            restricted to the smallest set of most likely tokens whose mass reaches ``top_p``.
        want_logprobs: also return the log-probability of each chosen token under the
            *unmodified* distribution ``softmax(logits)``.
        work: optional ``(>= m, V)`` float32 scratch buffer (avoids an allocation per step).

    Returns:
        ``(tokens, logprobs)``: ``(k,)`` int64 token ids and ``(k,)`` float64 log-probabilities
        (``<= 0``), or ``None`` for the latter when not asked for.
    """
    logits = np.asarray(logits)
    m, vocab = logits.shape
    rows = np.asarray(rows, dtype=np.int64)
    if work is None or work.shape[0] < m or work.shape[1] != vocab:
        work = np.empty((m, vocab), dtype=np.float32)
    buf = work[:m]
    top = logits.max(axis=1)

    def log_norm() -> np.ndarray:
        # log sum_j exp(x_j - max) per row, at temperature 1
        np.subtract(logits, top[:, None], out=buf)
        np.exp(buf, out=buf)
        return np.log(buf.sum(axis=1, dtype=np.float64))

    if temperature == 0:
        tokens = logits.argmax(axis=1)[rows]
        if not want_logprobs:
            return tokens, None
        return tokens, -log_norm()[rows]

    np.subtract(logits, top[:, None], out=buf)
    if temperature != 1:
        buf *= np.float32(1.0 / temperature)
    np.exp(buf, out=buf)
    # blocked sums: one pass gives the normaliser and a coarse CDF to search
    n_full = vocab // _BLOCK
    parts = []
    if n_full:
        parts.append(buf[:, : n_full * _BLOCK].reshape(m, n_full, _BLOCK).sum(axis=2, dtype=np.float64))
    if vocab % _BLOCK:
        parts.append(buf[:, n_full * _BLOCK :].sum(axis=1, dtype=np.float64)[:, None])
    block_cdf = np.cumsum(np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0], axis=1)
    totals = block_cdf[:, -1]
    if uniforms is None:
        raise InputError("uniforms are required when temperature > 0")
    u = np.asarray(uniforms, dtype=np.float64)
    tokens = np.empty(len(rows), dtype=np.int64)
    if top_p >= 1.0:
        targets = u * totals[rows]
        blocks = (block_cdf[rows] <= targets[:, None]).sum(axis=1)
        blocks = np.minimum(blocks, block_cdf.shape[1] - 1)
        for j, (r, b, t) in enumerate(zip(rows, blocks, targets)):
            start = int(b) * _BLOCK
            seg = buf[r, start : start + _BLOCK]
            before = block_cdf[r, b - 1] if b > 0 else 0.0
            local = np.cumsum(seg, dtype=np.float64) + before
            i = int(np.searchsorted(local, t, side="right"))
            i = min(i, len(seg) - 1)
            while i > 0 and seg[i] == 0:  # rounding at the very end of a block
                i -= 1
            tokens[j] = start + i
    else:
        for j, (r, t) in enumerate(zip(rows, u)):
            tokens[j] = _nucleus_draw(buf[r], float(totals[r]), top_p, float(t))
    if not want_logprobs:
        return tokens, None
    lse = np.log(totals) if temperature == 1 else log_norm()
    chosen = logits[rows, tokens].astype(np.float64)
    return tokens, np.minimum(chosen - top[rows] - lse[rows], 0.0)


def _nucleus_draw(weights: np.ndarray, total: float, top_p: float, u: float) -> int:
    """Draw from the top-p nucleus of one row of unnormalised weights (``(V,)`` float32)."""
    vocab = weights.shape[0]
    k = min(vocab, 256)
    while True:
        if k < vocab:
            cand = np.argpartition(weights, vocab - k)[vocab - k :]
        else:
            cand = np.arange(vocab)
        cand = cand[np.argsort(-weights[cand], kind="stable")]
        mass = np.cumsum(weights[cand], dtype=np.float64) / total
        if mass[-1] >= top_p or k == vocab:
            keep = min(int(np.searchsorted(mass, top_p, side="left")) + 1, len(cand))
            kept = mass[:keep]
            i = int(np.searchsorted(kept, u * kept[-1], side="right"))
            return int(cand[min(i, keep - 1)])
        k = min(vocab, k * 8)


# ---------------------------------------------------------------------------------------------
# bookkeeping of shared prompt cells
# ---------------------------------------------------------------------------------------------


class _PromptCells:
    """Counts the KV cells held by prompts that share prefixes.

    A prompt's cells are a chain of *blocks* (runs of cells made by one prefill), each used up
    to some length; the prompt cache and every live prompt group hold a chain. A block's cells
    stay alive as long as some holder uses them, so the cells in use are, per block, the
    longest length any holder uses.
    """

    def __init__(self) -> None:
        self._next = 0
        self._refs: dict[int, dict[object, int]] = {}
        self.chains: dict[object, list[tuple[int, int]]] = {}

    def new_chain(self, base: list[tuple[int, int]], keep: int, extra: int) -> list[tuple[int, int]]:
        """The first ``keep`` cells of ``base`` followed by a new block of ``extra`` cells."""
        chain: list[tuple[int, int]] = []
        left = keep
        for block, length in base:
            if left <= 0:
                break
            chain.append((block, min(length, left)))
            left -= length
        if extra > 0:
            chain.append((self._next, extra))
            self._next += 1
        return chain

    def hold(self, owner: object, chain: list[tuple[int, int]]) -> None:
        self.release(owner)
        self.chains[owner] = chain
        for block, length in chain:
            self._refs.setdefault(block, {})[owner] = length

    def release(self, owner: object) -> None:
        for block, _ in self.chains.pop(owner, []):
            refs = self._refs.get(block)
            if refs is not None:
                refs.pop(owner, None)
                if not refs:
                    del self._refs[block]

    def cells(self, extra_chain: list[tuple[int, int]] | None = None) -> int:
        """Cells in use, optionally as if ``extra_chain`` were also held."""
        extra = dict(extra_chain or [])
        total = 0
        for block, refs in self._refs.items():
            total += max(max(refs.values()), extra.pop(block, 0))
        return total + sum(extra.values())


# ---------------------------------------------------------------------------------------------
# per-sequence state
# ---------------------------------------------------------------------------------------------


@dataclass
class _Group:
    """One prompt being sampled: its tokens, its first-token logits and its samples."""

    index: int
    tokens: list[int]
    n_samples: int
    seed: int = 0
    next_sample: int = 0
    done: int = 0
    first_logits: np.ndarray | None = None
    live_slots: set[int] = field(default_factory=set)
    idle_slots: list[int] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)


@dataclass
class _Result:
    """One finished sample with its token ids (used by tests and by :meth:`sample`)."""

    text: str
    finish_reason: str
    ids: list[int]
    logprobs: list[float]
    pieces: list[str]


class _Seq:
    """A sample being generated in one KV slot."""

    __slots__ = ("slot", "group", "index", "rng", "ids", "logprobs", "text", "ends", "decoder", "pos")

    def __init__(self, slot: int, group: _Group, index: int, seed: int, pos: int):
        self.slot = slot
        self.group = group
        self.index = index
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.ids: list[int] = []
        self.logprobs: list[float] = []
        self.text = ""
        self.ends: list[int] = []  # len(text) after each token
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.pos = pos  # position of the next token to feed


# ---------------------------------------------------------------------------------------------
# the sampler
# ---------------------------------------------------------------------------------------------


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies of the whole machine from /proc/stat; None where it is missing."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
        values = [int(x) for x in fields[1:9]]  # user nice system idle iowait irq softirq steal
    except (OSError, ValueError, IndexError):
        return None
    if len(values) < 5:
        return None
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def _busy_cores(window: float = 0.25) -> float | None:
    """How many of the machine's cores other work keeps busy, measured over ``window``
    seconds (None where /proc/stat cannot be read)."""
    first = _cpu_times()
    if first is None:
        return None
    time.sleep(window)
    second = _cpu_times()
    if second is None or second[1] <= first[1]:
        return None
    share = (second[0] - first[0]) / (second[1] - first[1])
    return share * (os.cpu_count() or 1)


def _default_threads() -> int:
    """The cores this process may use that nothing else keeps busy right now (at least 1).

    llama.cpp's threads wait for each other by spinning at every step, so a thread that
    shares its core with other busy work stalls all the others: beside two busy threads on
    two cores, two llama.cpp threads kept 28 % of their idle speed. Counting only free cores
    keeps sampling near a fair share on a busy machine; on an idle one it is every core.
    The choice is made once, when the model loads (pass ``n_threads`` to fix it)."""
    cores = _cores()
    busy = _busy_cores() if cores > 1 else None
    if busy is None:
        return cores
    free = max(1, min(cores, int(cores - busy + 0.5)))
    if free < cores:
        log.info("llama.cpp: %d of %d cores (%.1f busy with other work)", free, cores, busy)
    return free


class LlamaCppSampler:
    """Sample completions from a GGUF model with llama.cpp (CPU by default).

    Args:
        model: an embedded short name (``"gemma-3-270m"``, ``"smollm2-135m-instruct"``), a GGUF
            path, or a resolved :class:`~semcal.backends.models.ModelSpec`.
        n_ctx: KV cache size in cells (tokens summed over all live sequences and prompts).
            ``None`` (default) sizes it per call from the prompt lengths, ``n_parallel`` and
            ``max_tokens``, growing it when needed; an integer fixes it (samples then run with
            fewer parallel sequences when it is tight).
        n_threads: CPU threads (default: the cores available to this process that no other
            work keeps busy when the model loads, see ``_default_threads``).
        n_parallel: most sequences decoded together in one batch (1..255).
        chat: treat the model as a chat model (``None``: from the GGUF's chat template).
        verbose: let llama.cpp print its log.
        n_batch: most prompt tokens evaluated per ``llama_decode`` call.
        prefix_cache: re-use the KV cells of the previous prompt's common prefix, in whole
            blocks of ``PREFIX_BLOCK`` tokens (on by default; results are bit-identical either
            way for one-prompt calls, see the module notes, but on and off chunk the prompt
            differently, so compare runs with the same setting).
        n_gpu_layers: layers to offload when llama.cpp was built with a GPU backend.
        repack: let llama.cpp use its repacked CPU weight layouts (can be faster on big models,
            but then a sequence's logits depend slightly on the batch it is decoded in).

    Not thread-safe: use one sampler per thread.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | ModelSpec,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        n_parallel: int = 32,
        chat: bool | None = None,
        verbose: bool = False,
        n_batch: int = 512,
        prefix_cache: bool = True,
        n_gpu_layers: int = 0,
        repack: bool = False,
    ) -> None:
        self._llama = None  # set first so close() works whatever fails below
        self._model = None
        self._ctx = None
        self._batch = None
        lib = require("llama_cpp", "the llama.cpp backend (llama-cpp-python)", "llama")
        spec = model if isinstance(model, ModelSpec) else resolve_model(model, is_chat=chat)
        if chat is not None and isinstance(model, ModelSpec):
            spec = dataclasses.replace(spec, is_chat=bool(chat))
        if isinstance(n_parallel, bool) or not isinstance(n_parallel, int) or not 1 <= n_parallel <= 255:
            raise InputError(f"n_parallel must be an integer in 1..255, got {n_parallel!r}")
        if n_ctx is not None and (isinstance(n_ctx, bool) or not isinstance(n_ctx, int) or n_ctx < 16):
            raise InputError(f"n_ctx must be an integer >= 16 or None, got {n_ctx!r}")
        if isinstance(n_batch, bool) or not isinstance(n_batch, int) or n_batch < 1:
            raise InputError(f"n_batch must be an integer >= 1, got {n_batch!r}")
        if n_threads is not None and (isinstance(n_threads, bool) or not isinstance(n_threads, int) or n_threads < 1):
            raise InputError(f"n_threads must be an integer >= 1 or None, got {n_threads!r}")
        self._llama = lib
        self.spec = spec
        self.model_name: str = spec.name
        self.is_chat: bool = spec.is_chat
        self.n_parallel = n_parallel
        self.n_threads = n_threads or _default_threads()
        self.n_batch = max(n_batch, n_parallel)
        self.prefix_cache = bool(prefix_cache)
        self._fixed_ctx = n_ctx
        self._verbose = verbose
        self._set_logging(verbose)
        lib.llama_backend_init()
        mparams = lib.llama_model_default_params()
        mparams.n_gpu_layers = int(n_gpu_layers)
        # llama.cpp's CPU "repacked" weight layouts switch to a different matrix kernel once a
        # batch has >= 4 rows, which moves a sequence's log-probs by up to ~0.2 depending on how
        # many other sequences share its batch. The plain kernels give bit-identical logits for
        # a sequence whatever the batch (measured: 1..32 rows), so samples do not depend on
        # batching; at about the same speed on the embedded models.
        mparams.use_extra_bufts = bool(repack)
        self._model = lib.llama_model_load_from_file(str(spec.path).encode("utf-8"), mparams)
        if not self._model:
            raise BackendError(f"llama.cpp could not load the model file {spec.path}{self._log_tail()}")
        self._vocab = lib.llama_model_get_vocab(self._model)
        self.n_vocab: int = int(lib.llama_vocab_n_tokens(self._vocab))
        self.n_ctx_train: int = int(lib.llama_model_n_ctx_train(self._model))
        self._add_bos = bool(lib.llama_vocab_get_add_bos(self._vocab))
        self._bos = int(lib.llama_vocab_bos(self._vocab))
        self._pieces: dict[int, bytes] = {}
        self._eog: dict[int, bool] = {}
        self._formatter: Any = None
        self._n_ctx = 0
        self._cache_tokens: list[int] = []
        self._cache_canonical = False
        self._cells = _PromptCells()
        self._work: np.ndarray | None = None

    # -- resources ---------------------------------------------------------------------------

    _log_callback: Any = None
    #: the last error lines llama.cpp logged (quoted in our error messages when not verbose)
    _log_errors: deque[str] = deque(maxlen=4)

    def _set_logging(self, verbose: bool) -> None:
        import logging

        logging.getLogger("llama-cpp-python").setLevel(logging.DEBUG if verbose else logging.ERROR)
        if not verbose and LlamaCppSampler._log_callback is None:
            lib = self._llama
            errors = LlamaCppSampler._log_errors

            @lib.llama_log_callback
            def _quiet(level: int, text: bytes, _user: Any) -> None:  # pragma: no cover - C callback
                # llama.cpp logs harmless model quirks at error level too: keep, do not print
                if level == 3 and text:
                    errors.append(text.decode("utf-8", errors="replace").strip())

            LlamaCppSampler._log_callback = _quiet  # keep a reference: C holds a raw pointer
            lib.llama_log_set(_quiet, ctypes.c_void_p(0))

    def _log_tail(self) -> str:
        return ("; llama.cpp said: " + " | ".join(self._log_errors)) if self._log_errors else ""

    def _free_context(self) -> None:
        lib = self._llama
        if self._batch is not None:
            lib.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx:
            lib.llama_free(self._ctx)
        self._ctx = None
        self._n_ctx = 0
        self._cache_tokens = []
        self._cache_canonical = False
        self._cells = _PromptCells()

    def close(self) -> None:
        """Free the llama.cpp context and model (idempotent)."""
        if self._llama is None:
            return
        self._free_context()
        if self._model:
            self._llama.llama_model_free(self._model)
        self._model = None
        self._llama = None

    def __enter__(self) -> LlamaCppSampler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort at interpreter exit
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass

    def _check_open(self) -> None:
        if self._llama is None:
            raise BackendError("this LlamaCppSampler is closed")

    def _ensure_context(self, n_ctx: int) -> None:
        """Have a context of at least ``n_ctx`` cells (re-created when too small)."""
        if self._ctx and self._n_ctx >= n_ctx:
            return
        self._free_context()
        lib = self._llama
        cp = lib.llama_context_default_params()
        cp.n_ctx = int(n_ctx)
        cp.n_batch = self.n_batch
        cp.n_ubatch = self.n_batch
        cp.n_seq_max = self.n_parallel + 1  # + 1: the prompt-cache sequence
        cp.n_threads = self.n_threads
        cp.n_threads_batch = self.n_threads
        cp.kv_unified = True  # one cell pool: sequences share their prompt's cells
        cp.swa_full = True  # sliding-window layers keep every cell, so prefixes can be shared
        cp.no_perf = True
        ctx = lib.llama_init_from_model(self._model, cp)
        if not ctx:
            raise BackendError(f"llama.cpp could not create a context of {n_ctx} cells{self._log_tail()}")
        self._ctx = ctx
        self._n_ctx = int(lib.llama_n_ctx(ctx))
        self._mem = lib.llama_get_memory(ctx)
        self._batch = lib.llama_batch_init(self.n_batch, 0, 1)
        b = self._batch
        self._b_token = np.ctypeslib.as_array(b.token, shape=(self.n_batch,))
        self._b_pos = np.ctypeslib.as_array(b.pos, shape=(self.n_batch,))
        self._b_nseq = np.ctypeslib.as_array(b.n_seq_id, shape=(self.n_batch,))
        self._b_out = np.ctypeslib.as_array(b.logits, shape=(self.n_batch,))
        self._b_nseq[:] = 1

    # -- tokens and text ---------------------------------------------------------------------

    def tokenize(self, text: str, add_bos: bool = True, special: bool = False) -> list[int]:
        """Token ids of ``text`` (with the model's BOS when it wants one and ``add_bos``)."""
        self._check_open()
        lib = self._llama
        data = text.encode("utf-8")
        cap = len(data) + 8
        while True:
            buf = (lib.llama_token * cap)()
            n = lib.llama_tokenize(self._vocab, data, len(data), buf, cap, add_bos, special)
            if n >= 0:
                return list(buf[:n])
            cap = -n + 8

    def _piece(self, token: int, special: bool = False) -> bytes:
        key = token if not special else -1 - token
        piece = self._pieces.get(key)
        if piece is None:
            lib = self._llama
            buf = ctypes.create_string_buffer(64)
            n = lib.llama_token_to_piece(self._vocab, token, buf, 64, 0, special)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = lib.llama_token_to_piece(self._vocab, token, buf, -n, 0, special)
            piece = buf.raw[:n]
            self._pieces[key] = piece
        return piece

    def _is_eog(self, token: int) -> bool:
        v = self._eog.get(token)
        if v is None:
            v = bool(self._llama.llama_vocab_is_eog(self._vocab, token))
            self._eog[token] = v
        return v

    def render(self, prompt: Prompt) -> str:
        """The exact text a prompt becomes: raw text, or chat messages rendered with the model's
        chat template (with the generation prompt), followed by ``assistant_prefix``."""
        if not prompt.is_chat:
            return prompt.text + prompt.assistant_prefix
        if not self.is_chat or not self.spec.chat_template:
            raise InputError(
                f"model {self.model_name!r} has no chat template, so it cannot take chat messages; "
                "build a text (few-shot) prompt for it"
            )
        if self._formatter is None:
            # semcal's own bounded sandbox: a template cannot exhaust memory or time
            self._formatter = ChatTemplate(
                self.spec.chat_template,
                eos_token=self._piece(int(self._llama.llama_vocab_eos(self._vocab)), True).decode("utf-8", "replace"),
                bos_token=self._piece(self._bos, True).decode("utf-8", "replace"),
            )
        messages = [{"role": m.role, "content": m.content} for m in prompt.messages]
        try:
            text = self._formatter.render(messages)
        except InputError as exc:  # a bound of the sandbox (semcal.backends.chat_template)
            raise type(exc)(f"model {self.model_name!r}: {exc}") from None
        except Exception as exc:  # jinja2 errors and the template's raise_exception
            raise InputError(f"chat template of {self.model_name!r} rejected the messages: {exc}") from exc
        return text + prompt.assistant_prefix

    @property
    def context_length(self) -> int:
        """Most tokens (prompt plus answer) one sequence may hold: the model's training context."""
        return self.n_ctx_train

    def count_tokens(self, prompt: Prompt) -> int:
        """Tokens of ``prompt`` as the model is fed it."""
        return len(self.prompt_tokens(prompt))

    def prompt_tokens(self, prompt: Prompt) -> list[int]:
        """Token ids the model is fed for ``prompt`` (see :meth:`render`)."""
        self._check_open()
        text = self.render(prompt)
        tokens = self.tokenize(text, add_bos=True, special=prompt.is_chat)
        # a chat template that writes the BOS itself would otherwise give two
        if len(tokens) >= 2 and tokens[0] == tokens[1] == self._bos and self._add_bos:
            tokens = tokens[1:]
        if not tokens:
            raise InputError("prompt is empty after tokenization")
        return tokens

    # -- prefill -----------------------------------------------------------------------------

    def _decode(self, n_tokens: int) -> None:
        self._batch.n_tokens = n_tokens
        rc = self._llama.llama_decode(self._ctx, self._batch)
        if rc != 0:
            hint = " (KV cache full: pass a larger n_ctx or a smaller n_parallel)" if rc == 1 else ""
            raise BackendError(f"llama_decode failed with code {rc}{hint}")

    def _prefill(self, tokens: list[int], seq: int, common: int) -> np.ndarray:
        """Evaluate ``tokens[common:]`` into sequence ``seq`` (its first ``common`` cells are
        already there); return the logits of the last position, ``(V,)`` float32 (a copy)."""
        lib = self._llama
        b = self._batch
        pos = common
        end = len(tokens)
        while pos < end:
            n = min(self.n_batch, end - pos)
            if self.prefix_cache:
                # chunk at fixed absolute positions, whatever is cached: every prompt is then
                # evaluated in the same pieces, so a prefix re-used from the cache holds the
                # same bits as a fresh evaluation would have computed
                n = min(n, PREFIX_BLOCK - pos % PREFIX_BLOCK)
            self._b_token[:n] = tokens[pos : pos + n]
            self._b_pos[:n] = np.arange(pos, pos + n)
            self._b_out[:n] = 0
            for i in range(n):
                b.seq_id[i][0] = seq
            if pos + n == end:
                self._b_out[n - 1] = 1
            self._decode(n)
            pos += n
        ptr = lib.llama_get_logits_ith(self._ctx, -1)
        if not ptr:
            raise BackendError("llama.cpp returned no logits for the prompt")
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).copy()

    def _cache_seq(self) -> int:
        return self.n_parallel  # the extra sequence id that keeps the last prompt

    def _common_prefix(self, tokens: list[int]) -> int:
        if not self.prefix_cache:
            return 0
        c = 0
        for a, b in zip(self._cache_tokens, tokens):
            if a != b:
                break
            c += 1
        c = min(c, len(tokens) - 1)  # at least one token is evaluated, for its logits
        return c - c % PREFIX_BLOCK  # whole blocks only (see _prefill)

    def _admit(self, group: _Group, slot: int) -> None:
        """Evaluate ``group``'s prompt into ``slot``, re-using the cached common prefix."""
        lib = self._llama
        tokens = group.tokens
        common = self._common_prefix(tokens)
        if self.prefix_cache and self._cache_tokens:
            # the cache keeps only the shared blocks (maybe none), so the suffix goes into the
            # cells right after them: the cells a fresh evaluation of this prompt would use
            lib.llama_memory_seq_rm(self._mem, self._cache_seq(), common, -1)
        if common:
            lib.llama_memory_seq_cp(self._mem, self._cache_seq(), slot, 0, common)
        chain = self._cells.new_chain(self._cells.chains.get("cache", []), common, len(tokens) - common)
        group.first_logits = self._prefill(tokens, slot, common)
        self._cells.hold(group.index, chain)
        if self.prefix_cache:
            cache = self._cache_seq()
            lib.llama_memory_seq_rm(self._mem, cache, -1, -1)
            lib.llama_memory_seq_cp(self._mem, slot, cache, 0, len(tokens))
            self._cache_tokens = list(tokens)
            self._cells.hold("cache", list(chain))

    def _reset_kv(self) -> None:
        """Empty the KV cache (and the prompt cache), so that a call's results depend only on
        its own inputs, not on what earlier calls left in the cache or where they left it."""
        if self._ctx:
            self._llama.llama_memory_clear(self._mem, True)
        self._cache_tokens = []
        self._cache_canonical = False
        self._cells = _PromptCells()

    def _drop_cache(self) -> None:
        self._llama.llama_memory_seq_rm(self._mem, self._cache_seq(), -1, -1)
        self._cache_tokens = []
        self._cells.release("cache")

    # -- sampling ----------------------------------------------------------------------------

    def sample(self, prompts: Sequence[Prompt], n: int, params: SamplingParams) -> list[list[Completion]]:
        """Draw ``n`` completions for every prompt.

        Returns one list of ``n`` :class:`~semcal.types.Completion` per prompt, in order; the
        ``i``-th completion of a prompt is sample ``i`` (seeded with ``sample_seed(prompt_seed(seed, prompt), i)``).
        """
        results = self._generate(prompts, n, params)
        out: list[list[Completion]] = []
        for group in results:
            row = []
            for r in group:
                row.append(
                    Completion(
                        text=r.text,
                        finish_reason=r.finish_reason,
                        n_tokens=len(r.ids),
                        token_logprobs=tuple(r.logprobs) if params.logprobs else None,
                        tokens=tuple(r.pieces),
                    )
                )
            out.append(row)
        return out

    def _plan_ctx(self, groups: list[_Group], params: SamplingParams) -> int:
        longest = max(len(g.tokens) for g in groups)
        total_samples = sum(g.n_samples for g in groups)
        # every live sequence reserves max_tokens cells: with a large max_tokens fewer run at
        # once, so the cache stays near CELL_BUDGET instead of n_parallel * max_tokens
        # (max_tokens = 20000 and 8 sequences asked for 160k cells)
        width = min(self.n_parallel, total_samples, max(1, CELL_BUDGET // params.max_tokens))
        # prompts in flight at once: the cache, plus up to a few groups with their own suffixes
        want = 2 * longest + min(len(groups), 4) * 64 + width * params.max_tokens + 64
        return int(math.ceil(want / 256) * 256)

    def _generate(self, prompts: Sequence[Prompt], n: int, params: SamplingParams) -> list[list[_Result]]:
        # (the sampling loop admits only as many sequences as the context has room for, so a
        # context planned for fewer sequences than n_parallel just runs fewer at once)
        """Run the sampling loop; results keep token ids (used by tests)."""
        self._check_open()
        check_n(n)
        if not isinstance(params, SamplingParams):
            raise InputError(f"params must be SamplingParams, got {type(params).__name__}")
        prompts = list(prompts)
        for p in prompts:
            if not isinstance(p, Prompt):
                raise InputError(f"prompts must be Prompt objects, got {type(p).__name__}")
        if not prompts:
            return []
        # greedy decoding is deterministic: draw once per prompt and repeat it
        per_prompt = 1 if params.greedy else n
        groups = [
            _Group(
                index=i,
                tokens=self.prompt_tokens(p),
                n_samples=per_prompt,
                seed=prompt_seed(params.seed, p),
            )
            for i, p in enumerate(prompts)
        ]
        for g in groups:
            g.results = [None] * per_prompt
        check_context(self, [len(g.tokens) for g in groups], params.max_tokens)
        if self._fixed_ctx is not None:
            self._ensure_context(self._fixed_ctx)
        else:
            self._ensure_context(self._plan_ctx(groups, params))
        if not (self.prefix_cache and self._cache_canonical and self._cache_tokens):
            self._reset_kv()
        self._cache_canonical = False
        try:
            self._run(groups, params)
        except BaseException:
            # leave a clean KV cache behind whatever happened (interrupts included)
            self._reset_kv()
            raise
        # A one-prompt call leaves the cache as a fresh evaluation would have laid it out (the
        # prompt in the first cells, nothing else): the next call may start from it. After a
        # call of several prompts the cells are interleaved, so the next call starts empty.
        self._cache_canonical = len(groups) == 1
        out = []
        for g in groups:
            res = g.results if not params.greedy else [g.results[0]] * n
            out.append(list(res))
        return out

    def _run(self, groups: list[_Group], params: SamplingParams) -> None:
        lib = self._llama
        mem = self._mem
        max_tokens = params.max_tokens
        stops = params.stop
        longest_stop = max((len(s) for s in stops), default=0)
        pending: deque[_Group] = deque(groups)
        active: list[_Group] = []
        live: list[_Seq] = []
        free_slots = list(range(self.n_parallel - 1, -1, -1))  # pop() gives 0 first

        def capacity_left() -> int:
            return self._n_ctx - 8 - self._cells.cells() - len(live) * max_tokens

        def start(group: _Group, slots: list[int]) -> None:
            """Start the next samples of ``group`` on ``slots`` (prompt cells already there)."""
            seqs = []
            for slot in slots:
                idx = group.next_sample
                group.next_sample += 1
                group.live_slots.add(slot)
                seqs.append(_Seq(slot, group, idx, sample_seed(group.seed, idx), len(group.tokens)))
            uniforms = None if params.greedy else np.array([s.rng.random() for s in seqs])
            toks, lps = choose_tokens(
                group.first_logits[None, :],
                np.zeros(len(seqs), dtype=np.int64),
                uniforms,
                params.temperature,
                params.top_p,
                params.logprobs,
                self._scratch(1),
            )
            for j, s in enumerate(seqs):
                if not accept(s, int(toks[j]), None if lps is None else float(lps[j])):
                    live.append(s)

        def accept(s: _Seq, token: int, logprob: float | None) -> bool:
            """Add a drawn token to ``s``; True when the sample is finished (and recorded)."""
            if self._is_eog(token):
                finish(s, "stop", len(s.text))
                return True
            piece = self._piece(token)
            before = len(s.text)
            s.text += s.decoder.decode(piece)
            s.ids.append(token)
            s.logprobs.append(0.0 if logprob is None else logprob)
            s.ends.append(len(s.text))
            if stops and len(s.text) > before:
                lo = max(0, before - longest_stop + 1)
                cut = -1
                for st in stops:
                    k = s.text.find(st, lo)
                    if k != -1 and (cut == -1 or k < cut):
                        cut = k
                if cut != -1:
                    finish(s, "stop", cut)
                    return True
            if len(s.ids) >= max_tokens:
                finish(s, "length", len(s.text))
                return True
            return False

        def finish(s: _Seq, reason: str, cut: int) -> None:
            if cut < len(s.text):
                # cut by a stop string: keep the tokens that put characters into text[:cut]
                starts = [0, *s.ends[:-1]]
                keep = sum(1 for st in starts if st < cut)
            else:
                keep = len(s.ids)
            ids = s.ids[:keep]
            pieces = [self._piece(t).decode("utf-8", errors="replace") for t in ids]
            g = s.group
            g.results[s.index] = _Result(
                text=s.text[:cut],
                finish_reason=reason,
                ids=ids,
                logprobs=s.logprobs[:keep],
                pieces=pieces,
            )
            g.done += 1
            slot = s.slot
            g.live_slots.discard(slot)
            if g.next_sample < g.n_samples:
                # the slot stays with its prompt: drop only the generated cells
                lib.llama_memory_seq_rm(mem, slot, len(g.tokens), -1)
                g.idle_slots.append(slot)
            else:
                lib.llama_memory_seq_rm(mem, slot, -1, -1)
                free_slots.append(slot)
                for idle in g.idle_slots:
                    lib.llama_memory_seq_rm(mem, idle, -1, -1)
                    free_slots.append(idle)
                g.idle_slots.clear()
                if g.done == g.n_samples:
                    self._cells.release(g.index)
                    g.first_logits = None
                    active.remove(g)

        def owed() -> bool:
            return any(g.next_sample < g.n_samples for g in active)

        while pending or live or owed():
            progress = len(live), len(pending), sum(g.next_sample for g in active)
            # 1) samples still owed by admitted prompts: their own idle slots, then free ones
            for g in list(active):
                if g.idle_slots and g.next_sample < g.n_samples:
                    k = min(len(g.idle_slots), g.n_samples - g.next_sample, max(0, capacity_left() // max_tokens))
                    if k:
                        slots = [g.idle_slots.pop() for _ in range(k)]
                        start(g, slots)
                while free_slots and g.next_sample < g.n_samples and g.live_slots and capacity_left() >= max_tokens:
                    src = next(iter(g.live_slots))
                    slot = free_slots.pop()
                    lib.llama_memory_seq_cp(mem, src, slot, 0, len(g.tokens))
                    start(g, [slot])
            # 2) new prompts
            while pending and free_slots:
                g = pending[0]
                common = self._common_prefix(g.tokens)
                chain = self._cells.new_chain(self._cells.chains.get("cache", []), common, len(g.tokens) - common)
                room = self._n_ctx - 8 - self._cells.cells(chain) - len(live) * max_tokens
                k = min(len(free_slots), g.n_samples, max(0, room // max_tokens))
                if k < 1:
                    if live or active:
                        break  # wait for running samples to free cells
                    if self._cache_tokens:
                        self._drop_cache()
                        continue
                    if self._fixed_ctx is not None:
                        raise InputError(
                            f"n_ctx={self._fixed_ctx} cannot hold a prompt of {len(g.tokens)} tokens "
                            f"plus max_tokens={max_tokens}",
                            where="n_ctx",
                        )
                    need = len(g.tokens) + self.n_parallel * max_tokens + 64
                    self._ensure_context(int(math.ceil(need / 256) * 256))
                    continue
                pending.popleft()
                slots = [free_slots.pop() for _ in range(k)]
                self._admit(g, slots[0])
                for slot in slots[1:]:
                    lib.llama_memory_seq_cp(mem, slots[0], slot, 0, len(g.tokens))
                active.append(g)
                start(g, slots)
            if not live:
                if (len(live), len(pending), sum(g.next_sample for g in active)) == progress:
                    if self._cache_tokens:
                        self._drop_cache()
                        continue
                    raise BackendError(
                        f"the KV cache ({self._n_ctx} cells) cannot hold the next sample; "
                        "pass a larger n_ctx or a smaller max_tokens"
                    )
                continue
            # 3) one decode step for every live sequence
            m = len(live)
            b = self._batch
            for i, s in enumerate(live):
                self._b_token[i] = s.ids[-1]
                self._b_pos[i] = s.pos
                b.seq_id[i][0] = s.slot
                s.pos += 1
            self._b_out[:m] = 1
            self._decode(m)
            ptr = lib.llama_get_logits(self._ctx)
            logits = np.ctypeslib.as_array(ptr, shape=(m, self.n_vocab))
            uniforms = None if params.greedy else np.array([s.rng.random() for s in live])
            toks, lps = choose_tokens(
                logits,
                np.arange(m),
                uniforms,
                params.temperature,
                params.top_p,
                params.logprobs,
                self._scratch(m),
            )
            still = []
            for j, s in enumerate(live):
                if not accept(s, int(toks[j]), None if lps is None else float(lps[j])):
                    still.append(s)
            live[:] = still
        if any(r is None for g in groups for r in g.results):  # pragma: no cover - internal check
            raise BackendError("internal error: some samples were not produced")

    def _scratch(self, m: int) -> np.ndarray:
        if self._work is None or self._work.shape[0] < m:
            self._work = np.empty((max(m, self.n_parallel), self.n_vocab), dtype=np.float32)
        return self._work

    # -- first-token distribution -----------------------------------------------------------

    def next_token_logprobs(self, prompts: Sequence[Prompt], k: int = 20) -> list[dict[str, float]]:
        """Top-``k`` log-probabilities of the first generated token, one dict per prompt.

        Keys are the tokens' text (special tokens rendered, e.g. ``"<eos>"``); tokens that print
        the same text are merged (their probabilities added). Values are ``<= 0``.
        """
        self._check_open()
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InputError(f"k must be an integer >= 1, got {k!r}")
        prompts = list(prompts)
        if not prompts:
            return []
        toks = [self.prompt_tokens(p) for p in prompts]
        if self._fixed_ctx is not None:
            self._ensure_context(self._fixed_ctx)
        else:
            self._ensure_context(int(math.ceil((2 * max(map(len, toks)) + 64) / 256) * 256))
        self._reset_kv()
        out = []
        slot = 0
        for tokens in toks:
            g = _Group(index=-1, tokens=tokens, n_samples=0)
            if self._cells.cells() + len(tokens) + 8 > self._n_ctx:
                self._drop_cache()
            self._admit(g, slot)
            row = g.first_logits.astype(np.float64)
            top = row.max()
            lse = top + math.log(np.exp(row - top).sum())
            kk = min(k, row.shape[0])
            best = np.argpartition(-row, kk - 1)[:kk]
            best = best[np.argsort(-row[best], kind="stable")]
            d: dict[str, float] = {}
            for t in best:
                key = self._piece(int(t), special=True).decode("utf-8", errors="replace")
                lp = float(row[t] - lse)
                d[key] = float(np.logaddexp(d[key], lp)) if key in d else lp
            out.append({key: min(v, 0.0) for key, v in d.items()})
            self._llama.llama_memory_seq_rm(self._mem, slot, -1, -1)
            self._cells.release(-1)
        return out
