"""Small frozen types shared by every stage. Nothing here imports another semcal module."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from semcal.errors import InputError

#: The class label of a response from which no answer could be extracted.
NO_ANSWER = "<no answer>"
#: The class label of a response that declines to answer ("I don't know", "As an AI ...").
REFUSAL = "<refusal>"
#: Labels that are not answers: never correct, and they lose every plurality tie.
NON_ANSWERS = frozenset({NO_ANSWER, REFUSAL})


@dataclass(frozen=True)
class Question:
    """One question with its gold answer aliases.

    ``task`` names the family ("qa" for short factual answers, "math" for numeric answers);
    it picks the few-shot examples and the default collapsing function.
    """

    id: str
    question: str
    answers: tuple[str, ...]
    task: str = "qa"
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not str(self.id).strip():
            raise InputError("question id is empty")
        if not self.question or not self.question.strip():
            raise InputError("question text is empty", where=f"question {self.id!r}")
        answers = tuple(str(a) for a in self.answers if str(a).strip())
        if not answers:
            raise InputError("no gold answer", where=f"question {self.id!r}")
        object.__setattr__(self, "answers", answers)


@dataclass(frozen=True)
class Message:
    """One chat message."""

    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True)
class Prompt:
    """What a backend is asked to continue.

    Base models get ``text`` (a raw completion prompt, e.g. 5-shot). Instruct models get
    ``messages``; the backend renders them with the model's chat template and then appends
    ``assistant_prefix`` (used to continue a partial answer, e.g. for intermediate confidence).
    """

    text: str = ""
    messages: tuple[Message, ...] = ()
    assistant_prefix: str = ""

    @property
    def is_chat(self) -> bool:
        return bool(self.messages)

    def __post_init__(self) -> None:
        if not self.text and not self.messages:
            raise InputError("prompt has neither text nor messages")
        if self.text and self.messages:
            raise InputError("prompt has both text and messages")


@dataclass(frozen=True)
class SamplingParams:
    """Sampling parameters shared by every backend.

    temperature 0 means greedy decoding. ``seed`` makes sampling reproducible: the i-th
    sample of a prompt uses a seed derived from (seed, i), so it does not depend on batching.
    """

    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 64
    stop: tuple[str, ...] = ()
    seed: int = 0
    logprobs: bool = True

    def __post_init__(self) -> None:
        t = self.temperature
        if not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0:
            raise InputError(f"temperature must be a finite number >= 0, got {t!r}")
        p = self.top_p
        if not isinstance(p, (int, float)) or not (0 < p <= 1):
            raise InputError(f"top_p must be in (0, 1], got {p!r}")
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise InputError(f"max_tokens must be an integer >= 1, got {self.max_tokens!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InputError(f"seed must be an integer >= 0, got {self.seed!r}")
        stop = (self.stop,) if isinstance(self.stop, str) else self.stop
        if not isinstance(stop, (tuple, list)) or not all(isinstance(s, str) for s in stop):
            raise InputError(f"stop must be a string or a list of strings, got {self.stop!r}")
        object.__setattr__(self, "stop", tuple(s for s in stop if s))

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass(frozen=True)
class Completion:
    """One sampled continuation.

    ``token_logprobs[i]`` is the log-probability of the i-th generated token under the
    model's *unmodified* distribution (temperature 1, no top-p), so it is <= 0; ``tokens``
    are the matching token strings when the engine gives them. Both are None where the
    engine offers no log-probabilities.
    """

    text: str
    finish_reason: str  # "stop" (stop string / EOS) | "length" (max_tokens)
    n_tokens: int
    token_logprobs: tuple[float, ...] | None = None
    tokens: tuple[str, ...] | None = None

    @property
    def logprob(self) -> float | None:
        """Total log-probability of the generated tokens, or None."""
        if self.token_logprobs is None:
            return None
        return float(sum(self.token_logprobs))


def check_n(n: int) -> int:
    """Validate a number of samples per prompt."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"number of samples must be an integer >= 1, got {n!r}")
    return n


@dataclass(frozen=True)
class Collapsed:
    """The result of a collapsing function B on one question.

    ``labels[i]`` is the semantic class of sample i (``NO_ANSWER`` if none could be extracted);
    ``gold`` is the set of classes the gold aliases fall into (B_x of the gold answer).
    """

    labels: tuple[str, ...]
    gold: frozenset[str]
