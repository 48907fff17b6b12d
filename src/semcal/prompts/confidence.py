"""Prompts for the baseline confidence estimators: verbalised confidence and P(True).

* :func:`verbalized_confidence_prompt` asks "how confident are you that this answer is
  correct (0-100%)?"; the reply is parsed by :func:`semcal.confidence.parse_verbalized`.
* :func:`p_true_prompt` (Kadavath et al. style) ends so that the model's next token is
  ``" True"`` / ``" False"`` (base prompts) or ``"True"`` / ``"False"`` (chat); the next-token
  log-probabilities become a probability in :func:`semcal.confidence.p_true_from_logprobs`.

Base models get a few-shot prompt with worked judgements (some proposals right, some wrong);
chat models get a system and a user message.
"""

from __future__ import annotations

from semcal.errors import InputError
from semcal.prompts.examples import judged_for
from semcal.prompts.styles import DEFAULT_SYSTEM, _question_parts, normalize_question
from semcal.types import Message, Prompt, Question

#: tokens that count as "True" / "False" after a P(True) prompt (compared after strip + casefold)
P_TRUE_WORDS = ("true", "false")

VERBALIZED_QUESTION = "How confident are you that this answer is correct (0-100%)?"
_VERBAL_LINE = "Confidence that the proposed answer is correct (0-100%):"


def _judged(question: str, task: str, k: int) -> list[tuple[str, str, bool, int]]:
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise InputError(f"k_shot must be an integer >= 0, got {k!r}")
    target = normalize_question(question)
    pool = [j for j in judged_for(task) if normalize_question(j[0]) != target]
    if k > len(pool):
        raise InputError(f"k_shot={k} but only {len(pool)} judged examples are available")
    return pool[:k]


def _clean_answer(answer: str) -> str:
    if not isinstance(answer, str):
        raise InputError(f"the proposed answer must be a string, got {type(answer).__name__}")
    return " ".join(answer.split()) or "(no answer)"


def verbalized_confidence_prompt(
    question: Question | str,
    answer: str,
    chat: bool,
    k_shot: int = 4,
    *,
    task: str | None = None,
    system: str | None = DEFAULT_SYSTEM,
) -> Prompt:
    """Ask the model how likely ``answer`` is to be correct, on a 0-100% scale.

    Base prompts end with ``"...(0-100%):"`` so the model continues with e.g. ``" 80%"``;
    stop at a newline (:data:`VERBALIZED_STOP`). Chat prompts ask for just a number.
    """
    text, task = _question_parts(question, task)
    text, answer = " ".join(text.split()), _clean_answer(answer)
    if chat:
        msgs = [Message("system", system)] if system else []
        msgs.append(Message(
            "user",
            f"Question: {text}\nProposed answer: {answer}\n\n{VERBALIZED_QUESTION} "
            "Reply with just a number between 0 and 100.",
        ))
        return Prompt(messages=tuple(msgs))
    parts = ["For each question, a proposed answer is given. Rate how confident you are that "
             "the proposed answer is correct, from 0% (surely wrong) to 100% (surely right)."]
    for q, a, _right, conf in _judged(text, task, k_shot):
        parts.append(f"Question: {q}\nProposed answer: {a}\n{_VERBAL_LINE} {conf}%")
    parts.append(f"Question: {text}\nProposed answer: {answer}\n{_VERBAL_LINE}")
    return Prompt(text="\n\n".join(parts))


#: stop strings and token budget for sampling a verbalised confidence
VERBALIZED_STOP: tuple[str, ...] = ("\n",)
VERBALIZED_MAX_TOKENS = 8

def p_true_prompt(
    question: Question | str,
    answer: str,
    chat: bool,
    k_shot: int = 4,
    *,
    task: str | None = None,
    system: str | None = DEFAULT_SYSTEM,
) -> Prompt:
    """Ask whether ``answer`` is correct so that the next token is True or False.

    Base prompts end with ``"...true or false?\\nAnswer:"`` (next token ``" True"`` /
    ``" False"``); chat prompts ask for one word, so the assistant's first token is
    ``"True"`` / ``"False"``.
    """
    text, task = _question_parts(question, task)
    text, answer = " ".join(text.split()), _clean_answer(answer)
    if chat:
        msgs = [Message("system", system)] if system else []
        msgs.append(Message(
            "user",
            f"Question: {text}\nProposed answer: {answer}\n\nIs the proposed answer correct? "
            "Reply with exactly one word: True or False.",
        ))
        return Prompt(messages=tuple(msgs))
    parts = ["For each question, decide whether the proposed answer is true or false."]
    for q, a, right, _conf in _judged(text, task, k_shot):
        parts.append(f"Question: {q}\nProposed answer: {a}\nIs the proposed answer true or "
                     f"false?\nAnswer: {'True' if right else 'False'}")
    parts.append(f"Question: {text}\nProposed answer: {answer}\nIs the proposed answer true or "
                 "false?\nAnswer:")
    return Prompt(text="\n\n".join(parts))


__all__ = [
    "P_TRUE_WORDS",
    "VERBALIZED_MAX_TOKENS",
    "VERBALIZED_QUESTION",
    "VERBALIZED_STOP",
    "p_true_prompt",
    "verbalized_confidence_prompt",
]
