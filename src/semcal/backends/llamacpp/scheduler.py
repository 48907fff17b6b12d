"""The batch scheduler: which sequences run in each ``llama_decode`` step.

Up to ``n_parallel`` sequences (the samples of one prompt, or of several) decode together:
each step sends one token per live sequence in one batch. A prompt is admitted when a slot and
enough KV cells are free; its samples share its cells and start from its last logits; a
finished sample frees its slot for the next sample of its prompt, or for the next prompt.
:class:`_BatchRun` holds the state of one call and runs it in named steps.
"""

from __future__ import annotations

import codecs
import math
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from semcal.backends.base import sample_seed
from semcal.backends.llamacpp.token_choice import choose_tokens
from semcal.errors import BackendError, InputError
from semcal.types import SamplingParams

if TYPE_CHECKING:
    from semcal.backends.llamacpp.sampler import LlamaCppSampler

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
# one call's schedule
# ---------------------------------------------------------------------------------------------


class _BatchRun:
    """The sampling loop of one call: admits prompts, starts samples, decodes the live
    sequences one step at a time and records each sample as it finishes."""

    def __init__(self, sampler: LlamaCppSampler, groups: list[_Group], params: SamplingParams) -> None:
        self.sampler = sampler
        self.lib = sampler._llama
        self.groups = groups
        self.params = params
        self.max_tokens = params.max_tokens
        self.stops = params.stop
        self.longest_stop = max((len(s) for s in self.stops), default=0)
        self.pending: deque[_Group] = deque(groups)
        self.active: list[_Group] = []
        self.live: list[_Seq] = []
        self.free_slots = list(range(sampler.n_parallel - 1, -1, -1))  # pop() gives 0 first

    def run(self) -> None:
        while self.pending or self.live or self._owed():
            progress = self._progress()
            self._resume_admitted()
            self._admit_pending()
            if not self.live:
                if self._progress() == progress:
                    self._unstick()
                continue
            self._decode_step()
        if any(r is None for g in self.groups for r in g.results):  # pragma: no cover - internal check
            raise BackendError("internal error: some samples were not produced")

    # -- state --------------------------------------------------------------------------------

    def _capacity_left(self) -> int:
        s = self.sampler
        return s._n_ctx - 8 - s._cells.cells() - len(self.live) * self.max_tokens

    def _owed(self) -> bool:
        return any(g.next_sample < g.n_samples for g in self.active)

    def _progress(self) -> tuple[int, int, int]:
        return len(self.live), len(self.pending), sum(g.next_sample for g in self.active)

    # -- the steps of one round ---------------------------------------------------------------

    def _resume_admitted(self) -> None:
        """Step 1: samples still owed by admitted prompts, on their own idle slots, then on
        free ones (the prompt's cells are copied from one of its live slots)."""
        max_tokens = self.max_tokens
        for g in list(self.active):
            if g.idle_slots and g.next_sample < g.n_samples:
                k = min(len(g.idle_slots), g.n_samples - g.next_sample, max(0, self._capacity_left() // max_tokens))
                if k:
                    slots = [g.idle_slots.pop() for _ in range(k)]
                    self._start(g, slots)
            while self.free_slots and g.next_sample < g.n_samples and g.live_slots and self._capacity_left() >= max_tokens:
                src = next(iter(g.live_slots))
                slot = self.free_slots.pop()
                self.lib.llama_memory_seq_cp(self.sampler._mem, src, slot, 0, len(g.tokens))
                self._start(g, [slot])

    def _admit_pending(self) -> None:
        """Step 2: evaluate new prompts while slots and cells are free, and start their samples."""
        s = self.sampler
        lib = self.lib
        max_tokens = self.max_tokens
        pending = self.pending
        free_slots = self.free_slots
        while pending and free_slots:
            g = pending[0]
            common = s._common_prefix(g.tokens)
            chain = s._cells.new_chain(s._cells.chains.get("cache", []), common, len(g.tokens) - common)
            room = s._n_ctx - 8 - s._cells.cells(chain) - len(self.live) * max_tokens
            k = min(len(free_slots), g.n_samples, max(0, room // max_tokens))
            if k < 1:
                if self.live or self.active:
                    break  # wait for running samples to free cells
                if s._cache_tokens:
                    s._drop_cache()
                    continue
                self._grow_context(g)
                continue
            pending.popleft()
            slots = [free_slots.pop() for _ in range(k)]
            s._admit(g, slots[0])
            for slot in slots[1:]:
                lib.llama_memory_seq_cp(s._mem, slots[0], slot, 0, len(g.tokens))
            self.active.append(g)
            self._start(g, slots)

    def _grow_context(self, g: _Group) -> None:
        """Nothing runs and the prompt cache is empty, yet ``g`` does not fit: a larger context
        (refused when the caller fixed ``n_ctx``)."""
        s = self.sampler
        if s._fixed_ctx is not None:
            raise InputError(
                f"n_ctx={s._fixed_ctx} cannot hold a prompt of {len(g.tokens)} tokens "
                f"plus max_tokens={self.max_tokens}",
                where="n_ctx",
            )
        need = len(g.tokens) + s.n_parallel * self.max_tokens + 64
        s._ensure_context(int(math.ceil(need / 256) * 256))

    def _unstick(self) -> None:
        """A round that started nothing: free the prompt cache's cells, or give up."""
        s = self.sampler
        if s._cache_tokens:
            s._drop_cache()
            return
        raise BackendError(
            f"the KV cache ({s._n_ctx} cells) cannot hold the next sample; "
            "pass a larger n_ctx or a smaller max_tokens"
        )

    def _decode_step(self) -> None:
        """Step 3: one decode step for every live sequence, and one token drawn for each."""
        s = self.sampler
        params = self.params
        live = self.live
        m = len(live)
        b = s._batch
        for i, q in enumerate(live):
            s._b_token[i] = q.ids[-1]
            s._b_pos[i] = q.pos
            b.seq_id[i][0] = q.slot
            q.pos += 1
        s._b_out[:m] = 1
        s._decode(m)
        ptr = self.lib.llama_get_logits(s._ctx)
        logits = np.ctypeslib.as_array(ptr, shape=(m, s.n_vocab))
        uniforms = None if params.greedy else np.array([q.rng.random() for q in live])
        toks, lps = choose_tokens(
            logits,
            np.arange(m),
            uniforms,
            params.temperature,
            params.top_p,
            params.logprobs,
            s._scratch(m),
        )
        still = []
        for j, q in enumerate(live):
            if not self._accept(q, int(toks[j]), None if lps is None else float(lps[j])):
                still.append(q)
        live[:] = still

    # -- one sample ---------------------------------------------------------------------------

    def _start(self, group: _Group, slots: list[int]) -> None:
        """Start the next samples of ``group`` on ``slots`` (prompt cells already there)."""
        params = self.params
        seqs = []
        for slot in slots:
            idx = group.next_sample
            group.next_sample += 1
            group.live_slots.add(slot)
            seqs.append(_Seq(slot, group, idx, sample_seed(group.seed, idx), len(group.tokens)))
        uniforms = None if params.greedy else np.array([q.rng.random() for q in seqs])
        toks, lps = choose_tokens(
            group.first_logits[None, :],
            np.zeros(len(seqs), dtype=np.int64),
            uniforms,
            params.temperature,
            params.top_p,
            params.logprobs,
            self.sampler._scratch(1),
        )
        for j, q in enumerate(seqs):
            if not self._accept(q, int(toks[j]), None if lps is None else float(lps[j])):
                self.live.append(q)

    def _accept(self, q: _Seq, token: int, logprob: float | None) -> bool:
        """Add a drawn token to ``q``; True when the sample is finished (and recorded)."""
        s = self.sampler
        if s._is_eog(token):
            self._finish(q, "stop", len(q.text))
            return True
        piece = s._piece(token)
        before = len(q.text)
        q.text += q.decoder.decode(piece)
        q.ids.append(token)
        q.logprobs.append(0.0 if logprob is None else logprob)
        q.ends.append(len(q.text))
        stops = self.stops
        if stops and len(q.text) > before:
            lo = max(0, before - self.longest_stop + 1)
            cut = -1
            for st in stops:
                k = q.text.find(st, lo)
                if k != -1 and (cut == -1 or k < cut):
                    cut = k
            if cut != -1:
                self._finish(q, "stop", cut)
                return True
        if len(q.ids) >= self.max_tokens:
            self._finish(q, "length", len(q.text))
            return True
        return False

    def _finish(self, q: _Seq, reason: str, cut: int) -> None:
        """Record ``q`` as its group's result (cut at character ``cut``), then free its slot."""
        if cut < len(q.text):
            # cut by a stop string: keep the tokens that put characters into text[:cut]
            starts = [0, *q.ends[:-1]]
            keep = sum(1 for st in starts if st < cut)
        else:
            keep = len(q.ids)
        ids = q.ids[:keep]
        pieces = [self.sampler._piece(t).decode("utf-8", errors="replace") for t in ids]
        g = q.group
        g.results[q.index] = _Result(
            text=q.text[:cut],
            finish_reason=reason,
            ids=ids,
            logprobs=q.logprobs[:keep],
            pieces=pieces,
        )
        g.done += 1
        self._release_slot(g, q.slot)

    def _release_slot(self, g: _Group, slot: int) -> None:
        """The slot stays with its prompt while samples are owed; otherwise every slot of the
        prompt goes back to the free list, and a prompt with all samples done is retired."""
        s = self.sampler
        lib = self.lib
        mem = s._mem
        g.live_slots.discard(slot)
        if g.next_sample < g.n_samples:
            # the slot stays with its prompt: drop only the generated cells
            lib.llama_memory_seq_rm(mem, slot, len(g.tokens), -1)
            g.idle_slots.append(slot)
        else:
            lib.llama_memory_seq_rm(mem, slot, -1, -1)
            self.free_slots.append(slot)
            for idle in g.idle_slots:
                lib.llama_memory_seq_rm(mem, idle, -1, -1)
                self.free_slots.append(idle)
            g.idle_slots.clear()
            if g.done == g.n_samples:
                s._cells.release(g.index)
                g.first_logits = None
                self.active.remove(g)


class _Scheduling:
    """The batch-scheduling part of :class:`LlamaCppSampler` (a mixin)."""

    def _run(self, groups: list[_Group], params: SamplingParams) -> None:
        _BatchRun(self, groups, params).run()

    def _scratch(self, m: int) -> np.ndarray:
        if self._work is None or self._work.shape[0] < m:
            self._work = np.empty((max(m, self.n_parallel), self.n_vocab), dtype=np.float32)
        return self._work

