"""Estimators that ask the model again, one call per question: its verbalised confidence
(parsed from its reply) and P(True)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from semcal.errors import InputError
from semcal.prompts import p_true_prompt, verbalized_confidence_prompt
from semcal.types import Question, SamplingParams

_NUM = r"(?<![\w.])(-?\d+(?:[.,]\d+)?|-?\.\d+)"
_RANGE_RE = re.compile(
    r"\d+(?:\.\d+)?\s*%?\s*(?:-|–|to|and)\s*\d+(?:\.\d+)?\s*%?", re.IGNORECASE
)
_PERCENT_RE = re.compile(_NUM + r"\s*(?:%|percent\b|per cent\b|pct\b)", re.IGNORECASE)
_FRACTION_RE = re.compile(_NUM + r"\s*(?:/|out of)\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
_PLAIN_RE = re.compile(_NUM)


def _to_float(s: str) -> float | None:
    try:
        v = float(s.replace(",", "."))
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def parse_verbalized(text: str | None) -> float | None:
    """Parse a verbalised confidence ("85%", "I'm 90 percent sure", "0.7", "8/10") into [0, 1].

    Rules, first match wins:

    1. a number followed by ``%``/``percent`` -> number / 100;
    2. a fraction ``x/y`` or ``x out of y`` with 0 <= x <= y -> x / y;
    3. the first other number, after removing scale mentions such as "0-100" or "0 to 100":
       a number with a decimal point in [0, 1] is a probability ("0.7"); otherwise a number in
       [0, 100] is a percentage ("confidence: 100" -> 1.0, "85" -> 0.85);
    4. anything else (no number, a negative number, a number above 100, NaN) -> None.
    """
    if text is None:
        return None
    s = str(text)
    m = _PERCENT_RE.search(s)
    if m:
        v = _to_float(m.group(1))
        return v / 100 if v is not None and 0 <= v <= 100 else None
    m = _FRACTION_RE.search(s)
    if m:
        x, y = _to_float(m.group(1)), _to_float(m.group(2))
        if x is not None and y is not None and y > 0 and 0 <= x <= y:
            return x / y
        return None
    s = _RANGE_RE.sub(" ", s)  # "on a scale of 0-100" is not an answer
    m = _PLAIN_RE.search(s)
    if not m:
        return None
    raw = m.group(1)
    v = _to_float(raw)
    if v is None or v < 0:
        return None
    if ("." in raw or "," in raw) and v <= 1:
        return v
    return v / 100 if v <= 100 else None


def _check_pairs(questions: Sequence[Question], answers: Sequence[str]) -> None:
    if len(questions) != len(answers):
        raise InputError(f"{len(questions)} questions but {len(answers)} answers")


def verbalized_confidence(
    sampler: Any,
    questions: Sequence[Question],
    answers: Sequence[str],
    *,
    max_tokens: int = 16,
    seed: int = 0,
) -> list[float | None]:
    """Ask the model how confident it is (0-100%) in each proposed answer; parse the reply.

    One greedy generation per question (Tian et al. 2023; Lin et al. 2022). ``answers[i]`` is
    the text of the answer to rate (usually a sample of the predicted class). Returns one value
    in [0, 1] per question, None where the reply contains no usable number.
    The prompt is :func:`semcal.prompts.verbalized_confidence_prompt` (few-shot for base
    models, a user message for chat models).
    """
    _check_pairs(questions, answers)
    if not questions:
        return []
    chat = bool(sampler.is_chat)
    prompts = [verbalized_confidence_prompt(q, a, chat=chat) for q, a in zip(questions, answers)]
    params = SamplingParams(
        temperature=0.0, max_tokens=max_tokens, stop=("\n",), seed=seed, logprobs=False
    )
    outs = sampler.sample(prompts, 1, params)
    return [parse_verbalized(o[0].text) if o else None for o in outs]


_TRUE_WORDS = frozenset({"true", "yes"})
_FALSE_WORDS = frozenset({"false", "no"})


def p_true_from_logprobs(top: Mapping[str, float] | None) -> float | None:
    """P(True) from the top-k log-probabilities of the first answer token.

    Sums the probability of every token that reads "true" after stripping spaces, punctuation
    and case (" True", "True", "TRUE", " true.") and likewise for "false" ("yes"/"no" are
    accepted as synonyms), then normalises over the two: P(True) = p_T / (p_T + p_F).
    A side absent from the top-k counts as 0. None when neither appears.
    """
    if not top:
        return None
    p_t = p_f = 0.0
    for tok, lp in top.items():
        try:
            lpf = float(lp)
        except (TypeError, ValueError):
            continue
        if math.isnan(lpf):
            continue
        word = re.sub(r"[\W_]+", "", str(tok)).lower()
        if word in _TRUE_WORDS:
            p_t += math.exp(min(lpf, 0.0))
        elif word in _FALSE_WORDS:
            p_f += math.exp(min(lpf, 0.0))
    if p_t + p_f <= 0:
        return None
    return p_t / (p_t + p_f)


def p_true(
    sampler: Any,
    questions: Sequence[Question],
    answers: Sequence[str],
    *,
    k: int = 20,
) -> list[float | None]:
    """P(True) of Kadavath et al. (2022): the probability the model gives to "True" (vs "False")
    when asked whether the proposed answer is correct. One forward pass per question.

    Uses ``sampler.next_token_logprobs(prompts, k)`` (top-k log-probs of the first generated
    token; every backend gives them). The prompt is
    :func:`semcal.prompts.p_true_prompt` (few-shot for base models, a user message for chat
    models), which ends where the next token is "True" or "False".
    """
    _check_pairs(questions, answers)
    if not questions:
        return []
    chat = bool(sampler.is_chat)
    prompts = [p_true_prompt(q, a, chat=chat) for q, a in zip(questions, answers)]
    tops = sampler.next_token_logprobs(prompts, k)
    return [p_true_from_logprobs(t) for t in tops]
