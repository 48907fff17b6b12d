"""The one protocol every sampling engine implements."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from semcal.errors import InputError
from semcal.types import Completion, Prompt, SamplingParams


@runtime_checkable
class Sampler(Protocol):
    """A sampling engine bound to one model.

    ``sample(prompts, n, params)`` returns, for every prompt, a list of ``n`` completions.
    The engine is responsible for batching and prefix sharing; the i-th completion of a
    prompt must depend only on (model, prompt, params, i) (seed it with
    ``sample_seed(prompt_seed(params.seed, prompt), i)``) so that results are reproducible
    and resumable whatever the batch composition (exact bit-equality is promised only by
    engines that are deterministic, e.g. llama.cpp on CPU).
    """

    #: a short, stable description of the model, stored with every run
    model_name: str
    #: True when the model expects chat messages (instruct models)
    is_chat: bool
    #: most tokens (prompt plus answer) one sequence may hold; None when the engine does not
    #: say (a server), in which case prompts are not checked against it
    context_length: int | None

    def sample(
        self, prompts: Sequence[Prompt], n: int, params: SamplingParams
    ) -> list[list[Completion]]: ...

    def next_token_logprobs(self, prompts: Sequence[Prompt], k: int) -> list[dict[str, float]]:
        """The ``k`` most likely next tokens after each prompt with their log-probabilities
        (P(True), self-prediction)."""
        ...

    def count_tokens(self, prompt: Prompt) -> int | None:
        """Tokens of ``prompt`` as the model is fed it; None when the engine cannot tell."""
        ...

    def close(self) -> None: ...


def prompt_seed(seed: int, prompt: Prompt) -> int:
    """The base seed of one prompt: a mix of the run's ``seed`` and the prompt's content.

    Backends seed sample ``i`` of ``prompt`` with ``sample_seed(prompt_seed(seed, prompt), i)``,
    so two prompts sampled with the same ``seed`` (in one call or not) get independent random
    draws, while the draws of one prompt still depend only on (seed, prompt, i).
    """
    h = hashlib.blake2b(digest_size=8)
    h.update(str(int(seed)).encode())
    for part in (prompt.text, prompt.assistant_prefix):
        h.update(b"\x00" + part.encode("utf-8", "surrogatepass"))
    for m in prompt.messages:
        h.update(b"\x01" + m.role.encode() + b"\x02" + m.content.encode("utf-8", "surrogatepass"))
    return int.from_bytes(h.digest(), "little") & 0x7FFFFFFF


def sample_seed(seed: int, index: int) -> int:
    """The seed of sample ``index`` drawn with base ``seed`` (a 31-bit integer)."""
    # splitmix-style mixing keeps neighbouring seeds far apart
    z = (seed * 0x9E3779B97F4A7C15 + index * 0xBF58476D1CE4E5B9 + 0x94D049BB133111EB) & (2**64 - 1)
    z ^= z >> 31
    z = (z * 0xD6E8FEB86659FD93) & (2**64 - 1)
    z ^= z >> 32
    return int(z & 0x7FFFFFFF)


def check_context(
    sampler: object, prompt_lengths: Sequence[int], max_tokens: int,
    names: Sequence[str] | None = None,
) -> None:
    """Raise :class:`InputError` when a prompt plus ``max_tokens`` does not fit the model's
    context (``sampler.context_length``; engines that do not know it, None, are not checked).

    ``prompt_lengths`` are token counts; ``names`` (question ids) name the offenders."""
    limit = sampler.context_length  # type: ignore[attr-defined]
    if not isinstance(limit, int) or limit <= 0:
        return
    if max_tokens >= limit:
        raise InputError(
            f"max_tokens = {max_tokens} does not fit the model's context of {limit} tokens "
            "(prompt and answer share it); lower --max-tokens"
        )
    over = [i for i, n in enumerate(prompt_lengths) if n + max_tokens > limit]
    if over:
        i = max(over, key=lambda j: prompt_lengths[j])
        who = f"question {names[i]!r}" if names is not None else f"prompt {i + 1}"
        more = f" ({len(over)} prompts in all)" if len(over) > 1 else ""
        raise InputError(
            f"{who}: its prompt of {prompt_lengths[i]} tokens plus max_tokens = {max_tokens} "
            f"exceeds the model's context of {limit} tokens{more}; shorten the question, lower "
            "--max-tokens or --k-shot, or leave the question out"
        )


def truncate_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` at the first occurrence of any stop string. Returns (text, stopped)."""
    cut = len(text)
    for s in stop:
        i = text.find(s)
        if i != -1 and i < cut:
            cut = i
    return text[:cut], cut != len(text)
