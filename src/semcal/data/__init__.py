"""Question sets: loaders for JSONL / JSON / CSV / Parquet / Hugging Face datasets, named
adapters for the standard benchmarks, and small real sets shipped with the package.

>>> from semcal.data import load_questions, bundled
>>> qs = load_questions("gsm8k_test.jsonl")          # format guessed from the columns
>>> qs = load_questions("simple_qa_test_set.csv", format="simpleqa", limit=200)
>>> qs = load_questions("hf:openai/gsm8k", limit=100)  # needs `datasets` and network
>>> demo = bundled("demo")
"""

from __future__ import annotations

from semcal.data.adapters import (
    ADAPTERS,
    CUSTOM_FIELDS,
    TASKS,
    Adapter,
    detect_adapter,
    extract_boxed,
    get_adapter,
    gsm8k_final_answer,
    register_adapter,
)
from semcal.data.bundled import bundled, list_bundled
from semcal.data.loader import load_questions, stable_id
from semcal.data.readers import FILE_TYPES


def __getattr__(name: str) -> object:
    """``FORMATS``: the format names ``load_questions(format=...)`` accepts, read from
    :data:`ADAPTERS` when asked (kept for old imports; validation asks the registry itself)."""
    if name == "FORMATS":
        return ADAPTERS.names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ADAPTERS",
    "CUSTOM_FIELDS",
    "FILE_TYPES",
    "FORMATS",
    "TASKS",
    "Adapter",
    "bundled",
    "detect_adapter",
    "extract_boxed",
    "get_adapter",
    "gsm8k_final_answer",
    "list_bundled",
    "load_questions",
    "register_adapter",
    "stable_id",
]
