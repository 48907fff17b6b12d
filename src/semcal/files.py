"""Writing output files so that a failure never destroys the previous one.

Every file semcal writes for the user (reports, comparison pages, CSV/Parquet exports,
figures, ``results.json``, ``summary.md``) goes through :func:`atomic_path`: the content is
written to a temporary file in the same directory, flushed to disk, and renamed over the target
only when it is complete. A full disk, a crash or an exception half-way leaves the old file as
it was (and no temporary file behind); a reader never sees half a file.

The directory must exist: a mistyped ``-o /nonexistent/deep/x.html`` is an error, not a tree
of new folders. Callers that own their output directory (``reproduce``'s ``figures/``) create
it themselves first.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from semcal.errors import InputError


def _describe(exc: OSError) -> str:
    return exc.strerror or str(exc)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], where: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically.

    Whatever the body writes to the yielded path (with ``open``, ``savefig``, pyarrow ...)
    becomes ``path`` only when the body finishes without an exception. Raises
    :class:`~semcal.errors.InputError` naming ``path`` when the directory is missing or the file
    cannot be written (the old file is kept).
    """
    target = Path(path)
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
        with open(tmp, "rb+") as f:  # what the body wrote reaches the disk before the rename
            os.fsync(f.fileno())
        # mkstemp makes 0600: keep the old file's permissions, else the usual 0644
        os.chmod(tmp, target.stat().st_mode & 0o777 if target.exists() else 0o644)
        os.replace(tmp, target)
    except OSError as exc:
        _unlink(tmp)
        raise InputError(f"cannot write {target}: {_describe(exc)} (the previous file, if any, "
                         "is unchanged)", where=where) from None
    except BaseException:
        _unlink(tmp)
        raise


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
