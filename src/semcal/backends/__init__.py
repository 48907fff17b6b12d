"""Sampling backends. Each engine lives in its own module and is imported only when asked for.

``get_sampler("llamacpp", "gemma-3-270m")`` returns a :class:`~semcal.backends.base.Sampler`.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from semcal.backends.base import Sampler, prompt_seed, sample_seed, truncate_at_stop
from semcal.errors import InputError
from semcal.registry import Registry


class _Engine:
    """A backend's factory that imports its engine only when a model is opened (torch, vllm
    and llama.cpp are optional and slow to import)."""

    def __init__(self, name: str, module: str, cls: str, extra: str) -> None:
        self.name, self.module, self.cls, self.extra = name, module, cls, extra

    def __call__(self, model: str, **options: Any) -> Sampler:
        cls = getattr(importlib.import_module(self.module), self.cls)
        try:
            inspect.signature(cls).bind(model, **options)
        except TypeError as exc:
            raise InputError(f"backend {self.name!r}: {exc}") from None
        return cls(model, **options)


#: backend name -> factory ``(model, **options) -> Sampler``; ``.extra`` names the semcal
#: extra that installs the engine
BACKENDS: Registry[_Engine] = Registry("backend")
BACKENDS.register("llamacpp", _Engine("llamacpp", "semcal.backends.llamacpp", "LlamaCppSampler", "llama"))
BACKENDS.register("hf", _Engine("hf", "semcal.backends.hf", "HFSampler", "hf"))
BACKENDS.register("openai", _Engine("openai", "semcal.backends.openai", "OpenAISampler", "server"))
BACKENDS.register("vllm", _Engine("vllm", "semcal.backends.vllm", "VLLMSampler", "vllm"))
# no model: exercises semcal's own machinery (tests, overhead benchmarks)
BACKENDS.register("mock", _Engine("mock", "semcal.backends.mock", "MockSampler", ""))


def get_sampler(backend: str, model: str, **options: Any) -> Sampler:
    """Open ``model`` on ``backend`` (one of :data:`BACKENDS`)."""
    return BACKENDS.lookup(backend)(model, **options)


__all__ = ["BACKENDS", "Sampler", "get_sampler", "prompt_seed", "sample_seed", "truncate_at_stop"]
