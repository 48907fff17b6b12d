"""A model name or GGUF path resolved to a :class:`ModelSpec` (file, chat or not, template,
context length)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from semcal.backends.models.embedded import EMBEDDED
from semcal.backends.models.gguf import read_gguf_metadata
from semcal.errors import InputError


@dataclass(frozen=True)
class ModelSpec:
    """A resolved model: where its GGUF file is and how to prompt it.

    ``is_chat`` says whether prompts should be chat messages rendered with ``chat_template``
    (instruct models) or raw few-shot text (base models).
    """

    name: str
    path: Path
    is_chat: bool
    chat_template: str | None = None
    architecture: str | None = None
    context_length: int | None = None
    description: str = ""
    embedded: bool = False


def _embedded_list() -> str:
    return ", ".join(sorted(EMBEDDED))


def resolve_model(name: str | os.PathLike[str], is_chat: bool | None = None) -> ModelSpec:
    """Resolve an embedded short name or a GGUF file path to a :class:`ModelSpec`.

    ``is_chat`` overrides the detection (by default: the embedded model's kind, or whether the
    GGUF carries a ``tokenizer.chat_template``). Raises :class:`InputError` naming the model and
    listing the embedded names when it is neither; :class:`MissingExtraError` when an embedded
    model's package is not installed.
    """
    raw = os.fspath(name).strip() if name is not None else ""
    if not raw:
        raise InputError(f"no model given (embedded models: {_embedded_list()})", where="--model")
    key = raw.lower()
    if key in EMBEDDED:
        emb = EMBEDDED[key]
        path = emb.locate()
        meta = _safe_metadata(path)
        return ModelSpec(
            name=emb.name,
            path=path,
            is_chat=emb.is_chat if is_chat is None else bool(is_chat),
            chat_template=meta.get("tokenizer.chat_template"),
            architecture=meta.get("general.architecture"),
            context_length=_context_length(meta),
            description=emb.description,
            embedded=True,
        )
    path = Path(raw).expanduser()
    if path.exists() and not path.is_file():  # a FIFO, a device, a folder: never opened
        raise InputError(f"{raw!r} is not a regular file (give a GGUF file path or one of the "
                         f"embedded models: {_embedded_list()})", where="--model")
    if not path.is_file():
        kind = "no such file" if (os.sep in raw or raw.endswith(".gguf")) else "unknown model"
        raise InputError(
            f"{kind}: {raw!r} (give a GGUF file path or one of the embedded models: {_embedded_list()})",
            where="--model",
        )
    try:
        meta = read_gguf_metadata(path)
    except InputError as exc:
        raise InputError(
            f"{raw!r} is not a readable GGUF model ({exc}); embedded models: {_embedded_list()}",
            where="--model",
        ) from exc
    template = meta.get("tokenizer.chat_template")
    arch = meta.get("general.architecture")
    label = meta.get("general.name")
    return ModelSpec(
        name=path.name,
        path=path.resolve(),
        is_chat=bool(template) if is_chat is None else bool(is_chat),
        chat_template=template if isinstance(template, str) else None,
        architecture=arch if isinstance(arch, str) else None,
        context_length=_context_length(meta),
        description=f"{label} ({arch})" if label else str(path.name),
        embedded=False,
    )


def _safe_metadata(path: Path) -> dict[str, Any]:
    try:
        return read_gguf_metadata(path)
    except InputError:
        return {}


def _context_length(meta: dict[str, Any]) -> int | None:
    arch = meta.get("general.architecture")
    value = meta.get(f"{arch}.context_length") if isinstance(arch, str) else None
    return int(value) if isinstance(value, int) else None
