"""The prompts of a run: built for the opened model, stored with the questions, and checked
against the model's context before any sampling."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from semcal.backends.base import check_context
from semcal.executors import Executor
from semcal.prompts import build_prompt
from semcal.spec import RunSpec
from semcal.types import Prompt, Question


def prompt_to_json(p: Prompt) -> dict[str, Any]:
    """A JSON-able form of a prompt (stored with each question for reference)."""
    return {
        "text": p.text,
        "messages": [asdict(m) for m in p.messages],
        "assistant_prefix": p.assistant_prefix,
    }


def _build_prompts(questions: Sequence[Question], spec: RunSpec, is_chat: bool) -> dict[str, Prompt]:
    return {q.id: build_prompt(q, spec.style, chat=is_chat, k_shot=spec.k_shot) for q in questions}


def _check_fit(
    executor: Executor, questions: Sequence[Question], spec: RunSpec,
    prompts: dict[str, Prompt] | None = None,
) -> None:
    """Every prompt plus max_tokens fits the model's context, checked before any sampling
    (and, for a new run, before a store exists): a question too long for the model failed
    only when its turn came, after minutes of work, or ran for minutes at gigabytes."""
    sampler = executor.sampler
    if sampler.context_length is None:
        return  # the engine does not know its context (a server): it answers for itself
    if prompts is None:
        prompts = _build_prompts(questions, spec, sampler.is_chat)
    # one call of the executor (on Ray actors, one remote call)
    lengths = executor.count_tokens_many([prompts[q.id] for q in questions])
    if lengths is not None and all(n is not None for n in lengths):
        check_context(sampler, lengths, spec.resolved_max_tokens(),
                      names=[q.id for q in questions])
