"""The records the store hands back (:class:`RunInfo`, :class:`StoredSample`) and the key
that finds a run again (:func:`spec_key`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from semcal.types import Completion


@dataclass(frozen=True)
class RunInfo:
    """One row of the ``runs`` table. ``spec`` is the decoded run spec (a plain dict)."""

    id: int
    name: str
    key: str
    model: str
    backend: str
    style: str
    dataset: str
    temperature: float
    top_p: float
    max_tokens: int
    samples: int
    seed: int
    adaptive: bool
    is_chat: bool | None
    semcal_version: str
    created: str
    finished: str | None
    spec: dict[str, Any]


@dataclass(frozen=True)
class StoredSample:
    """One stored sample: the completion plus where it came from."""

    qid: str
    round: int
    index: int
    seed: int
    completion: Completion


def spec_key(fields: Mapping[str, Any]) -> str:
    """A short stable hash of the spec fields that change the samples (canonical JSON, sha256)."""
    blob = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]
