"""Prompts: response styles (concise / sentence / cot), k-shot prompts for base models,
chat messages for instruct models, and the prompts of the verbalised-confidence and
P(True) estimators.

>>> from semcal.prompts import build_prompt, stop_strings, default_max_tokens
>>> p = build_prompt(question, "concise", chat=False)      # 5-shot completion prompt
>>> stop_strings("concise", chat=False)
('\\n', '\\nQ:')
"""

from __future__ import annotations

from semcal.prompts.confidence import (
    P_TRUE_WORDS,
    VERBALIZED_MAX_TOKENS,
    VERBALIZED_QUESTION,
    VERBALIZED_STOP,
    p_true_prompt,
    verbalized_confidence_prompt,
)
from semcal.prompts.examples import MATH_EXAMPLES, QA_EXAMPLES, Example, examples_for
from semcal.prompts.styles import (
    DEFAULT_SYSTEM,
    STYLES,
    build_prompt,
    check_style,
    default_max_tokens,
    example_response,
    normalize_question,
    select_examples,
    stop_strings,
)

__all__ = [
    "DEFAULT_SYSTEM",
    "MATH_EXAMPLES",
    "P_TRUE_WORDS",
    "QA_EXAMPLES",
    "STYLES",
    "VERBALIZED_MAX_TOKENS",
    "VERBALIZED_QUESTION",
    "VERBALIZED_STOP",
    "Example",
    "build_prompt",
    "check_style",
    "default_max_tokens",
    "example_response",
    "examples_for",
    "normalize_question",
    "p_true_prompt",
    "select_examples",
    "stop_strings",
    "verbalized_confidence_prompt",
]
