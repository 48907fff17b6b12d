"""Sampling backends. Each engine lives in its own module and is imported only when asked for.

``get_sampler("llamacpp", "gemma-3-270m")`` returns a :class:`~semcal.backends.base.Sampler`.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from semcal.backends.base import Sampler, prompt_seed, sample_seed, truncate_at_stop
from semcal.errors import InputError

#: backend name -> (module, class name, extra that provides the engine)
BACKENDS: dict[str, tuple[str, str, str]] = {
    "llamacpp": ("semcal.backends.llamacpp", "LlamaCppSampler", "llama"),
    "hf": ("semcal.backends.hf", "HFSampler", "hf"),
    "openai": ("semcal.backends.openai", "OpenAISampler", "server"),
    "vllm": ("semcal.backends.vllm", "VLLMSampler", "vllm"),
    # no model: exercises semcal's own machinery (tests, overhead benchmarks)
    "mock": ("semcal.backends.mock", "MockSampler", ""),
}


def get_sampler(backend: str, model: str, **options: Any) -> Sampler:
    """Open ``model`` on ``backend`` (one of :data:`BACKENDS`)."""
    try:
        module_name, class_name, _extra = BACKENDS[backend]
    except KeyError:
        known = ", ".join(sorted(BACKENDS))
        raise InputError(f"unknown backend {backend!r} (known: {known})") from None
    module = importlib.import_module(module_name)
    cls = getattr(module, class_name)
    try:
        inspect.signature(cls).bind(model, **options)
    except TypeError as exc:
        raise InputError(f"backend {backend!r}: {exc}") from None
    return cls(model, **options)


__all__ = ["BACKENDS", "Sampler", "get_sampler", "prompt_seed", "sample_seed", "truncate_at_stop"]
