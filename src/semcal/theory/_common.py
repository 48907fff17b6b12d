"""Helpers shared by the theory diagnostics (prompt prefixes, sampling parameters, grading).

Their intervals come from :func:`semcal.metrics.cluster_bootstrap`, their AUROC and smECE from
:mod:`semcal.metrics`, their correctness from a registered grader (:mod:`semcal.grade`)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from semcal.errors import InputError
from semcal.grade import Grader, get_grader
from semcal.prompts import build_prompt, default_max_tokens, stop_strings
from semcal.types import Collapsed, Completion, Prompt, Question, SamplingParams


def with_prefix(prompt: Prompt, prefix: str) -> Prompt:
    """The prompt that makes the model continue an answer that already begins with ``prefix``.

    Base models get ``prompt.text + prefix``; chat models get the prefix appended to
    ``assistant_prefix`` (the backend renders the chat template, then appends it).
    """
    if not prefix:
        return prompt
    if prompt.is_chat:
        return replace(prompt, assistant_prefix=prompt.assistant_prefix + prefix)
    return replace(prompt, text=prompt.text + prefix)


def token_prefix(completion: Completion, n_tokens: int) -> str:
    """The text of the first ``n_tokens`` generated tokens of ``completion``.

    Uses the engine's token strings; if they do not line up with the returned text (an engine
    that cleans up text after a stop string), the prefix is clipped to the text.
    """
    if n_tokens <= 0:
        return ""
    if completion.tokens is None:
        raise InputError(
            "this backend returns no token strings; intermediate trajectories need them "
            "(use a backend that reports tokens, e.g. llamacpp)"
        )
    prefix = "".join(completion.tokens[:n_tokens])
    text = completion.text
    if not text.startswith(prefix):
        # keep the longest common start of both strings
        k = 0
        while k < min(len(prefix), len(text)) and prefix[k] == text[k]:
            k += 1
        prefix = text[:k]
    return prefix


def derived_seed(seed: int, *parts: object) -> int:
    """A 31-bit seed that depends on ``seed`` and ``parts`` (question id, position...).

    Backends derive sample i's seed from (params.seed, i) only, so prompts sampled in one call
    with one seed share their random draws: sample 2 of every question would use the same
    uniform numbers, making the questions' confidences correlated. Each prompt therefore gets
    its own seed.
    """
    blob = "\x1f".join([str(int(seed)), *map(str, parts)]).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "little") & 0x7FFFFFFF


def sample_each(
    sampler: Any, prompts: Sequence[Prompt], n: int, params: SamplingParams, seeds: Sequence[int]
) -> list[list[Completion]]:
    """Sample ``n`` completions of every prompt, prompt j with seed ``seeds[j]`` (one call each)."""
    out: list[list[Completion]] = []
    for p, sd in zip(prompts, seeds):
        out.extend(sampler.sample([p], n, replace(params, seed=int(sd))))
    return out


def answer_params(
    style: str, chat: bool, temperature: float, seed: int, max_tokens: int | None
) -> SamplingParams:
    """Sampling parameters for ``style`` (stop strings and default length from semcal.prompts)."""

    return SamplingParams(
        temperature=temperature,
        max_tokens=int(max_tokens) if max_tokens else int(default_max_tokens(style)),
        stop=tuple(stop_strings(style, chat)),
        seed=seed,
        logprobs=True,
    )


def sample_answers(
    sampler: Any, questions: Sequence[Any], style: str, n: int, *, temperature: float, seed: int,
    max_tokens: int | None, k_shot: int | None, tag: str,
) -> tuple[list[Prompt], SamplingParams, list[list[Completion]]]:
    """Build every question's ``style`` prompt for ``sampler`` (chat or base) and draw ``n``
    answers to each, question ``q`` seeded with ``derived_seed(seed, tag, q.id)``.

    Returns (prompts, the sampling parameters used, the samples per question)."""
    if not questions:
        raise InputError("no questions given")

    chat = bool(sampler.is_chat)
    params = answer_params(style, chat, temperature, seed, max_tokens)
    prompts = [build_prompt(q, style, chat=chat, k_shot=k_shot) for q in questions]
    samples = sample_each(sampler, prompts, n, params, [derived_seed(seed, tag, q.id) for q in questions])
    return prompts, params, samples


def grader_or_auto(grader: Grader | None) -> Grader:
    """The grader a diagnostic grades with: the run's, or the ``auto`` grader the reproduction's
    runs are analysed with."""
    return get_grader("auto") if grader is None else grader


def grade_classes(grader: Grader, question: Question, collapsed: Collapsed,
                  texts: Sequence[str]) -> dict[str, bool]:
    """Whether each class among ``collapsed.labels`` is correct, by ``grader``: each class is
    graded once, on its first text (as a grader grades a plurality by one response of it)."""
    out: dict[str, bool] = {}
    for label, text in zip(collapsed.labels, texts):
        if label not in out:
            one = Collapsed((label,), collapsed.gold)
            out[label] = bool(grader(question, one, [text]).correct)
    return out
