"""Response styles and the prompts that ask for them.

Three styles, as in the paper:

* ``"concise"``: just the answer (a few words or a number);
* ``"sentence"``: a one-sentence answer;
* ``"cot"``: reasoning step by step, then ``"The answer is ..."``.

Base (pretrained) models get a k-shot completion prompt::

    <one-line instruction>

    Q: <example question>
    A: <example answer in the style>

    ... (k examples)

    Q: <the question>
    A:

so a sampled answer ends where the model starts the next ``"\\n\\nQ:"``, and the stop strings
of :func:`stop_strings` cut it there. Instruct (chat) models get a system and a user message
with the same instruction; the backend applies the model's chat template.
"""

from __future__ import annotations

import re
import unicodedata

from semcal.errors import InputError
from semcal.prompts.examples import Example, examples_for
from semcal.types import Message, Prompt, Question

STYLES: tuple[str, ...] = ("concise", "sentence", "cot")

#: the system message of chat prompts (None in ``build_prompt`` leaves it out)
DEFAULT_SYSTEM = "You are a helpful assistant."

_MAX_TOKENS = {"concise": 24, "sentence": 48, "cot": 256}

# one-line instruction at the top of base-model prompts: (style, task) -> text
_BASE_HEADER = {
    ("concise", "qa"): "Answer each question with just the answer, in as few words as possible.",
    ("concise", "math"): "Solve each problem and give just the final number.",
    ("sentence", "qa"): "Answer each question in one complete sentence.",
    ("sentence", "math"): "Solve each problem and give the result in one complete sentence.",
    ("cot", "qa"): 'Answer each question by reasoning step by step, then end with '
                   '"The answer is" followed by the answer.',
    ("cot", "math"): 'Solve each problem by reasoning step by step, then end with '
                     '"The answer is" followed by the final number.',
}

# the user-message instruction of chat prompts
_CHAT_INSTRUCTION = {
    ("concise", "qa"): "Answer the following question with just the answer (a few words at "
                       "most). Do not explain.",
    ("concise", "math"): "Solve the following problem. Reply with just the final number. "
                         "Do not explain.",
    ("sentence", "qa"): "Answer the following question in one complete sentence.",
    ("sentence", "math"): "Solve the following problem and give the result in one complete "
                          "sentence.",
    ("cot", "qa"): 'Answer the following question. Think step by step, then finish with '
                   '"The answer is X." where X is your final answer.',
    ("cot", "math"): 'Solve the following problem. Think step by step, then finish with '
                     '"The answer is X." where X is the final number.',
}


def check_style(style: str) -> str:
    if style not in STYLES:
        raise InputError(f"unknown response style {style!r} (known: {', '.join(STYLES)})")
    return style


def _family(task: str) -> str:
    return "math" if task == "math" else "qa"


def normalize_question(text: str) -> str:
    """Comparison form of a question: case-folded, accents kept, punctuation and spacing dropped."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return re.sub(r"[\W_]+", " ", text).strip()


def select_examples(question: str, task: str, k: int) -> list[Example]:
    """The first ``k`` examples of the task family, skipping any equal to ``question``."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise InputError(f"k_shot must be an integer >= 0, got {k!r}")
    target = normalize_question(question)
    pool = [ex for ex in examples_for(_family(task)) if normalize_question(ex.question) != target]
    if k > len(pool):
        raise InputError(
            f"k_shot={k} but only {len(pool)} few-shot examples are available for task "
            f"{_family(task)!r}"
        )
    return pool[:k]


def example_response(example: Example, style: str) -> str:
    """An example's answer written in ``style``."""
    check_style(style)
    if style == "concise":
        return example.answer
    if style == "sentence":
        return example.sentence
    return example.cot


def _question_parts(question: Question | str, task: str | None) -> tuple[str, str]:
    if isinstance(question, Question):
        return question.question, task or question.task
    if not isinstance(question, str) or not question.strip():
        raise InputError("the question must be a non-empty string or a Question")
    return question, task or "qa"


def build_prompt(
    question: Question | str,
    style: str,
    chat: bool,
    k_shot: int = 5,
    *,
    task: str | None = None,
    system: str | None = DEFAULT_SYSTEM,
    chat_k_shot: int = 0,
) -> Prompt:
    """The prompt that asks a model to answer ``question`` in ``style``.

    Args:
        question: a :class:`~semcal.types.Question` (its ``task`` picks the examples) or text.
        style: one of :data:`STYLES`.
        chat: True for instruct models (messages), False for base models (k-shot text).
        k_shot: number of worked examples in a base-model prompt (0 to 8; an example equal
            to the question is skipped and the next one used).
        task: override the task family ("qa" or "math"); default: the question's, or "qa".
        system: the system message of chat prompts (None: no system message).
        chat_k_shot: worked examples given to chat models as earlier user/assistant turns
            (default 0: zero-shot, the usual way to query instruct models).

    Returns:
        A :class:`~semcal.types.Prompt` with ``text`` (base) or ``messages`` (chat).
    """
    check_style(style)
    text, task = _question_parts(question, task)
    family = _family(task)
    text = text.strip()
    if chat:
        instruction = _CHAT_INSTRUCTION[(style, family)]
        messages: list[Message] = []
        if system:
            messages.append(Message("system", system))
        for ex in select_examples(text, family, chat_k_shot):
            messages.append(Message("user", f"{instruction}\n\nQuestion: {ex.question}"))
            messages.append(Message("assistant", example_response(ex, style)))
        messages.append(Message("user", f"{instruction}\n\nQuestion: {text}"))
        return Prompt(messages=tuple(messages))
    parts = [_BASE_HEADER[(style, family)]]
    for ex in select_examples(text, family, k_shot):
        parts.append(f"Q: {ex.question}\nA: {example_response(ex, style)}")
    parts.append(f"Q: {_one_line(text)}\nA:")
    return Prompt(text="\n\n".join(parts))


def _one_line(text: str) -> str:
    """Collapse internal blank lines so a question cannot look like the end of an example."""
    return re.sub(r"\n\s*\n+", "\n", text)


def stop_strings(style: str, chat: bool) -> tuple[str, ...]:
    """Stop strings that end one sampled answer.

    Base models: concise and sentence answers are one line, so a newline ends them; a cot
    answer may span lines, so it ends at the next question (``"\\nQ:"``) or at a run of
    blank lines. Chat models end on their own end-of-turn token: no stop strings.
    """
    check_style(style)
    if chat:
        return ()
    if style == "cot":
        return ("\n\nQ:", "\nQ:", "\n\n\n")
    return ("\n", "\nQ:")


def default_max_tokens(style: str) -> int:
    """A generous token budget for one answer in ``style`` (concise 24, sentence 48, cot 256)."""
    return _MAX_TOKENS[check_style(style)]


__all__ = [
    "DEFAULT_SYSTEM",
    "STYLES",
    "build_prompt",
    "check_style",
    "default_max_tokens",
    "example_response",
    "normalize_question",
    "select_examples",
    "stop_strings",
]
