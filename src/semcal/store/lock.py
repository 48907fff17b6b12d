"""The writer lock of a run (:class:`RunLock`), and the check that a store could be created
in a directory at all (:func:`check_writable`)."""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import stat
from pathlib import Path

from semcal.errors import StoreError
from semcal.store.cells import _now


class RunLock:
    """An exclusive lock on one run of a store: an ``flock`` on
    ``<store dir>/.semcal-locks/run-<id>.lock``, which holds the holder's pid and host. The
    operating system drops it when the process ends in any way (kill -9 included), so a lock
    never outlives its holder on a local file system.

    Neither the lock folder nor the lock file is followed when it is a symbolic link (or the
    file a hard link or not a plain file): a link planted there would have had its target
    truncated. Such a lock is refused with a :class:`StoreError` naming it."""

    def __init__(self, path: Path, run_name: str):
        self.path = path
        self._fd: int | None = None
        fd = _open_lock_file(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                holder = os.read(fd, 512).decode("utf-8", "replace").strip() or "unknown"
            finally:
                os.close(fd)
            raise StoreError(
                f"{path.parent.parent}: run {run_name!r} is being sampled by another process "
                f"({holder}); wait for it to finish, or stop it and run again") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {_now()}".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None


def _open_lock_file(path: Path) -> int:
    """Open (creating when needed) the lock file ``path`` for reading and writing, following
    no symbolic link in its last two components; returns the descriptor."""
    folder = _open_lock_folder(path.parent)
    try:
        fd = os.open(path.name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
                     | os.O_CLOEXEC, 0o644, dir_fd=folder)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StoreError(f"{path}: the run lock is a symbolic link; semcal does not follow "
                             "links in its lock folder (remove it and run again)") from None
        raise StoreError(f"{path}: cannot create the run lock: {exc.strerror or exc}") from None
    finally:
        os.close(folder)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        what = "a hard link to another file" if stat.S_ISREG(st.st_mode) else "not a plain file"
        raise StoreError(f"{path}: the run lock is {what}; semcal will not write to it (remove it "
                         "and run again)")
    return fd


def _open_lock_folder(folder: Path) -> int:
    """The descriptor of the lock folder, created when missing; refused when it is a link."""
    try:
        os.mkdir(folder, 0o755)
    except FileExistsError:
        pass
    except OSError as exc:
        raise StoreError(f"{folder}: cannot create the lock folder: {exc.strerror or exc}") from None
    try:
        return os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if os.path.islink(folder):
            why = ("is a symbolic link; semcal does not follow links for its locks (remove it "
                   "and run again)")
        elif exc.errno == errno.ENOTDIR:
            why = "is not a folder (remove it and run again)"
        else:
            why = f"cannot be opened: {exc.strerror or exc}"
        raise StoreError(f"{folder}: the lock folder {why}") from None


def check_writable(directory: str | os.PathLike[str]) -> None:
    """Raise :class:`StoreError` when a store could not be created in ``directory``, without
    creating anything (the runner asks before it spends minutes loading a model)."""
    directory = Path(directory)
    target = directory if directory.suffix != ".sqlite" else directory.parent
    probe = target
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise StoreError(f"{directory}: cannot create the experiment directory: "
                         f"{probe} is not a directory")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        why = "read-only file system" if _read_only_fs(probe) else "permission denied"
        raise StoreError(f"{directory}: cannot create the store there: {why} ({probe})")


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:  # pragma: no cover - statvfs of an existing path
        return False
