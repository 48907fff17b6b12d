"""Sampling backends. Each engine lives in its own module and is imported only when asked for.

``get_sampler("llamacpp", "gemma-3-270m")`` returns a :class:`~semcal.backends.base.Sampler`.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
from typing import Any

from semcal.backends.base import Sampler, prompt_seed, sample_seed, truncate_at_stop
from semcal.errors import InputError
from semcal.registry import Registry


class _Engine:
    """A backend's factory that imports its engine only when a model is opened (torch, vllm
    and llama.cpp are optional and slow to import)."""

    def __init__(self, name: str, module: str, cls: str, extra: str, package: str | None = None) -> None:
        self.name, self.module, self.cls, self.extra = name, module, cls, extra
        #: the installed distribution that does the sampling (its version is recorded with
        #: every sampling session of a run); None when it runs elsewhere (a server) or is semcal
        self.package = package

    def __call__(self, model: str, **options: Any) -> Sampler:
        cls = getattr(importlib.import_module(self.module), self.cls)
        try:
            inspect.signature(cls).bind(model, **options)
        except TypeError as exc:
            raise InputError(f"backend {self.name!r}: {exc}") from None
        return cls(model, **options)


#: backend name -> factory ``(model, **options) -> Sampler``; ``.extra`` names the semcal
#: extra that installs the engine. Metadata, read wherever semcal needs to know about a
#: backend (never its name): ``local_models=True``: a model name is resolved here, to an
#: embedded model or a local file, before anything loads (and its chat kind is known then);
#: ``threads_option``: the option that sets its CPU threads (a Ray actor gets one per CPU it
#: holds); ``server=True``: the model is a server's name for it (an http base URL, the name
#: recorded as given); ``ray_by_default=True``: ``reproduce`` runs it in a Ray actor (one
#: model's GPU memory is freed, with its process, before the next model starts).
BACKENDS: Registry[_Engine] = Registry("backend")
BACKENDS.register("llamacpp", _Engine("llamacpp", "semcal.backends.llamacpp", "LlamaCppSampler", "llama",
                                      "llama-cpp-python"),
                  local_models=True, threads_option="n_threads")
BACKENDS.register("hf", _Engine("hf", "semcal.backends.hf", "HFSampler", "hf", "transformers"))
BACKENDS.register("openai", _Engine("openai", "semcal.backends.openai", "OpenAISampler", "server"),
                  server=True)
BACKENDS.register("vllm", _Engine("vllm", "semcal.backends.vllm", "VLLMSampler", "vllm", "vllm"),
                  ray_by_default=True)
# no model: exercises semcal's own machinery (tests, overhead benchmarks)
BACKENDS.register("mock", _Engine("mock", "semcal.backends.mock", "MockSampler", ""))


def engine_version(backend: str) -> str:
    """What draws a backend's samples, as installed here: "llama-cpp-python 0.3.36",
    "transformers 4.57.1"; for a backend without a local engine package (a server, the mock,
    one registered by the user) its name ("openai", "mybackend")."""
    factory = BACKENDS.get(backend)
    package = factory.package if isinstance(factory, _Engine) else None
    if package is None:
        return backend
    try:
        return f"{package} {importlib.metadata.version(package)}"
    except importlib.metadata.PackageNotFoundError:
        return f"{package} (not installed)"


def get_sampler(backend: str, model: str, **options: Any) -> Sampler:
    """Open ``model`` on ``backend`` (one of :data:`BACKENDS`)."""
    return BACKENDS.lookup(backend)(model, **options)


__all__ = ["BACKENDS", "Sampler", "engine_version", "get_sampler", "prompt_seed", "sample_seed", "truncate_at_stop"]
