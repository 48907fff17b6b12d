"""Writing output files so that a failure never destroys the previous one.

Every file semcal writes for the user (reports, comparison pages, CSV/Parquet exports,
figures, ``results.json``, ``summary.md``) goes through :func:`atomic_path`: the content is
written to a temporary file in the same directory, flushed to disk, and renamed over the target
only when it is complete. A full disk, a crash or an exception half-way leaves the old file as
it was (and no temporary file behind); a reader never sees half a file.

The directory must exist: a mistyped ``-o /nonexistent/deep/x.html`` is an error, not a tree
of new folders. Callers that own their output directory (``reproduce``'s ``figures/``) create
it themselves first.

No output may land on a file semcal keeps its data in (:func:`check_output`): a store (or
any SQLite database), its ``-wal``/``-shm``/``-journal`` companions, the run locks, a label
file. ``semcal report DIR -o DIR/semcal.sqlite`` once replaced every sample with HTML.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from semcal.errors import InputError

#: the file name of the store inside an experiment directory (re-exported by semcal.store)
STORE_NAME = "semcal.sqlite"
#: the folder of run locks inside an experiment directory (re-exported by semcal.store)
LOCK_DIR = ".semcal-locks"
#: the first 16 bytes of every SQLite database file
SQLITE_HEADER = b"SQLite format 3\x00"
#: the files SQLite keeps next to a database, by their suffix
_COMPANIONS = {"-wal": "write-ahead log", "-shm": "shared-memory index", "-journal": "journal"}


def check_output(path: str | os.PathLike[str], where: str | None = None) -> None:
    """Raise :class:`~semcal.errors.InputError` when writing ``path`` would overwrite data semcal
    keeps: a store or any SQLite database, its ``-wal``/``-shm``/``-journal``, anything inside
    a ``.semcal-locks`` folder, or a label file (``labels.jsonl``, ``*.labels.jsonl``, and
    ``labels*.jsonl`` next to a store). Symbolic links are resolved: ``x.html`` pointing at a
    store is refused too. Nothing is written or created."""
    given = Path(path)
    resolved = Path(os.path.realpath(given))
    linked = resolved != Path(os.path.abspath(given))
    for candidate in (resolved, given):
        why = _protected(candidate)
        if why:
            via = f" (a link to {resolved})" if linked else ""
            raise InputError(f"refusing to write {given}{via}: {why}; choose another output "
                             "path", where=where)


def _protected(p: Path) -> str | None:
    """Why ``p`` must not be written, or None."""
    if LOCK_DIR in p.parts:
        return f"it is inside semcal's lock folder {LOCK_DIR}"
    name = p.name
    if name == STORE_NAME:
        return "it is a semcal store"
    for suffix, what in _COMPANIONS.items():
        base = name[: -len(suffix)]
        if name.endswith(suffix) and (base == STORE_NAME or _is_sqlite(p.with_name(base))):
            return f"it is the {what} of a store"
    if _is_label_file(p):
        return "it is a label file"
    if _is_sqlite(p):
        return "it is an SQLite database (a store)"
    return None


def _is_label_file(p: Path) -> bool:
    name = p.name
    if name == "labels.jsonl" or name.endswith(".labels.jsonl"):
        return True
    return (name.startswith("labels") and name.endswith(".jsonl")
            and (p.parent / STORE_NAME).exists())


def _is_sqlite(p: Path) -> bool:
    """Whether ``p`` is a regular file that starts with the SQLite header (never blocks on a
    FIFO; False when it cannot be read)."""
    try:
        if not stat.S_ISREG(os.stat(p).st_mode):
            return False
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except (OSError, ValueError):
        return False
    try:
        return os.read(fd, len(SQLITE_HEADER)) == SQLITE_HEADER
    except OSError:
        return False
    finally:
        os.close(fd)


def _describe(exc: OSError) -> str:
    return exc.strerror or str(exc)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], where: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically.

    Whatever the body writes to the yielded path (with ``open``, ``savefig``, pyarrow ...)
    becomes ``path`` only when the body finishes without an exception. Raises
    :class:`~semcal.errors.InputError` naming ``path`` when the directory is missing or the file
    cannot be written (the old file is kept), and when ``path`` names data semcal keeps
    (:func:`check_output`).
    """
    target = Path(path)
    check_output(target, where)
    parent = target.parent
    if not parent.is_dir():
        raise InputError(f"cannot write {target}: folder {parent} does not exist", where=where)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
    except OSError as exc:
        raise InputError(f"cannot write {target}: {_describe(exc)}", where=where) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp makes 0600: keep the old file's permissions, else the usual 0644
        _seal(tmp, target.stat().st_mode & 0o777 if target.exists() else 0o644)
        os.replace(tmp, target)
    except OSError as exc:
        _unlink(tmp)
        raise InputError(f"cannot write {target}: {_describe(exc)} (the previous file, if any, "
                         "is unchanged)", where=where) from None
    except BaseException:
        _unlink(tmp)
        raise


def _seal(tmp: Path, mode: int) -> None:
    """Flush what the body wrote to ``tmp`` to the disk (before the rename) and set its mode,
    without following a link: mkstemp made ``tmp`` with O_EXCL and O_NOFOLLOW, and a link put in
    its place since is refused (ELOOP), never written through."""
    fd = os.open(tmp, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fsync(fd)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def write_text(path: str | os.PathLike[str], text: str, where: str | None = None) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path, where) as tmp:
        try:
            tmp.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot write {path}: {_describe(exc)} (the previous file, if any, "
                             "is unchanged)", where=where) from None
    return Path(path)


def save_figure(fig: Any, path: str | os.PathLike[str], where: str | None = None,
                **savefig_kwargs: Any) -> Path:
    """``fig.savefig`` to ``path`` atomically; the format follows ``path``'s extension unless
    ``format=`` is given."""
    p = Path(path)
    savefig_kwargs.setdefault("format", p.suffix.lstrip(".").lower() or "png")
    with atomic_path(p, where) as tmp:
        fig.savefig(tmp, **savefig_kwargs)
    return p


def _unlink(p: Path) -> None:
    with contextlib.suppress(OSError):
        p.unlink()
