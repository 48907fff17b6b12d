"""KV-cell accounting: the prompt cells shared by sequences, and the prefix cache.

``_PromptCells`` counts the cells that prompts sharing prefixes hold. ``_PrefixCache`` is the
part of :class:`~semcal.backends.llamacpp.LlamaCppSampler` that evaluates prompts into the KV
cache (in ``PREFIX_BLOCK`` chunks), re-uses the previous prompt's common prefix, and plans
how many cells a call needs.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from semcal.errors import BackendError
from semcal.types import SamplingParams

if TYPE_CHECKING:
    from semcal.backends.llamacpp.scheduler import _Group

#: prompts are evaluated in chunks that end at multiples of this many tokens when the prefix
#: cache is on, and only whole chunks are re-used from it (see ``LlamaCppSampler._prefill``)
PREFIX_BLOCK = 64
#: KV cells the planned context aims at when max_tokens is large (see ``_plan_ctx``)
CELL_BUDGET = 16384


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


class _PrefixCache:
    """Prompt evaluation and the prefix cache of :class:`LlamaCppSampler` (a mixin: it uses
    the sampler's llama.cpp handles, batch buffers, ``_cells`` and ``_cache_tokens``)."""

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
