"""The sampler: :class:`LlamaCppSampler` assembles the rooms of the llama.cpp backend.

It owns the llama.cpp model, context and batch, tokenization and the chat template, and the
public calls (``sample``, ``next_token_logprobs``). Prompt evaluation and the prefix cache
come from ``cells._PrefixCache``, the batch schedule from ``scheduler._Scheduling``, token
choice from ``token_choice`` and the default thread count from ``threads``. The module notes
of :mod:`semcal.backends.llamacpp` say how one call runs.
"""

from __future__ import annotations

import ctypes
import dataclasses
import math
import os
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from semcal.backends.base import check_context, prompt_seed
from semcal.backends.chat_template import ChatTemplate
from semcal.backends.llamacpp.cells import _PrefixCache, _PromptCells
from semcal.backends.llamacpp.scheduler import _Group, _Result, _Scheduling
from semcal.backends.llamacpp.threads import ThreadGovernor, _default_threads
from semcal.backends.models import ModelSpec, resolve_model
from semcal.errors import BackendError, InputError, require
from semcal.types import Completion, Prompt, SamplingParams, check_n


class LlamaCppSampler(_PrefixCache, _Scheduling):
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
        # a thread count of our own choosing follows the free cores while sampling
        self._governor = (None if n_threads is not None
                          else ThreadGovernor(self.n_threads, _threads_pkg()._cores()))
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

    # -- decoding ----------------------------------------------------------------------------

    def _decode(self, n_tokens: int) -> None:
        if self._governor is not None:
            n = self._governor.check()
            if n is not None:  # other work started or stopped: follow the free cores
                self.n_threads = n
                self._llama.llama_set_n_threads(self._ctx, n, n)
        self._batch.n_tokens = n_tokens
        rc = self._llama.llama_decode(self._ctx, self._batch)
        if rc != 0:
            hint = " (KV cache full: pass a larger n_ctx or a smaller n_parallel)" if rc == 1 else ""
            raise BackendError(f"llama_decode failed with code {rc}{hint}")

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


def _threads_pkg() -> Any:
    """The package ``semcal.backends.llamacpp``, where tests replace ``_cores``."""
    from semcal.backends import llamacpp as pkg

    return pkg
