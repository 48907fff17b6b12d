"""The one protocol every sampling engine implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from semcal.types import Completion, Prompt, SamplingParams


@runtime_checkable
class Sampler(Protocol):
    """A sampling engine bound to one model.

    ``sample(prompts, n, params)`` returns, for every prompt, a list of ``n`` completions.
    The engine is responsible for batching and prefix sharing; the i-th completion of a
    prompt must depend only on (model, prompt, params, i) so that results are reproducible
    and resumable whatever the batch composition (exact bit-equality is promised only by
    engines that are deterministic, e.g. llama.cpp on CPU).
    """

    #: a short, stable description of the model, stored with every run
    model_name: str
    #: True when the model expects chat messages (instruct models)
    is_chat: bool

    def sample(
        self, prompts: Sequence[Prompt], n: int, params: SamplingParams
    ) -> list[list[Completion]]: ...

    def close(self) -> None: ...


def sample_seed(seed: int, index: int) -> int:
    """The seed of sample ``index`` of a prompt drawn with base ``seed`` (a 31-bit integer)."""
    # splitmix-style mixing keeps neighbouring seeds far apart
    z = (seed * 0x9E3779B97F4A7C15 + index * 0xBF58476D1CE4E5B9 + 0x94D049BB133111EB) & (2**64 - 1)
    z ^= z >> 31
    z = (z * 0xD6E8FEB86659FD93) & (2**64 - 1)
    z ^= z >> 32
    return int(z & 0x7FFFFFFF)


def truncate_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` at the first occurrence of any stop string. Returns (text, stopped)."""
    cut = len(text)
    for s in stop:
        i = text.find(s)
        if i != -1 and i < cut:
            cut = i
    return text[:cut], cut != len(text)
