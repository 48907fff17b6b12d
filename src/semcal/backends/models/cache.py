"""semcal's cache directory, and the SHA-256 digests and stamps that stand for a checked
model file there."""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path
from typing import Any

from semcal.errors import InputError


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
