"""The results store: one SQLite file (``semcal.sqlite``) per experiment directory.

The store is the single source of truth between sampling and analysis. It holds

- ``runs``: one row per run (model × question set × style × sampling parameters × M), with
  the full run spec as JSON and a ``key`` (hash of everything that changes the samples) used
  to find the run again on resume;
- ``questions``: the question set of each run (text, gold aliases, task, prompt), so analysis
  needs neither the data file nor the model;
- ``samples``: every sampled completion (round, index, text, token count, token log-probs as a
  little-endian float32 blob, tokens as JSON, finish reason, seed);
- ``greedy``: the greedy (temperature 0) completion of each question, for baselines;
- ``classes``: cached collapse results (collapse name -> one label per sample, gold labels);
- ``grades``: cached grades (collapse × grader -> prediction, count, correct);
- ``model_estimates``: model-based confidence of a question's plurality answer (P(True),
  verbalised confidence), keyed by (run, question, estimator, collapse), computed by the runner
  with one extra model call each (schema version 2; a version-1 store gains the table when it
  is opened for writing).

Writes are grouped so that one question's batch of samples is one transaction: a process
killed at any instant leaves either the whole batch or none of it. The database runs in WAL
mode, every statement is parameterised, and the schema carries a version number.
"""

from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import hashlib
import json
import logging
import os
import socket
import sqlite3
import stat
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from semcal import __version__
from semcal.errors import InputError, StoreError
from semcal.files import LOCK_DIR, STORE_NAME
from semcal.types import Completion, Question

log = logging.getLogger(__name__)

#: bump when the schema changes; older stores are migrated in :meth:`Store._migrate`
SCHEMA_VERSION = 4

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    key TEXT NOT NULL,
    model TEXT NOT NULL,
    backend TEXT NOT NULL,
    style TEXT NOT NULL,
    dataset TEXT NOT NULL,
    temperature REAL NOT NULL,
    top_p REAL NOT NULL,
    max_tokens INTEGER NOT NULL,
    samples INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    adaptive INTEGER NOT NULL DEFAULT 0,
    is_chat INTEGER,
    semcal_version TEXT NOT NULL,
    created TEXT NOT NULL,
    finished TEXT,
    spec TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_key ON runs(key);
CREATE TABLE IF NOT EXISTS questions (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    qid TEXT NOT NULL,
    position INTEGER NOT NULL,
    question TEXT NOT NULL,
    answers TEXT NOT NULL,
    task TEXT NOT NULL,
    meta TEXT NOT NULL,
    prompt TEXT,
    done INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, qid)
);
CREATE TABLE IF NOT EXISTS samples (
    run_id INTEGER NOT NULL,
    qid TEXT NOT NULL,
    round INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    text TEXT NOT NULL,
    n_tokens INTEGER NOT NULL,
    token_logprobs BLOB,
    tokens TEXT,
    finish_reason TEXT NOT NULL,
    seed INTEGER NOT NULL,
    PRIMARY KEY (run_id, qid, idx),
    FOREIGN KEY (run_id, qid) REFERENCES questions(run_id, qid)
);
CREATE TABLE IF NOT EXISTS greedy (
    run_id INTEGER NOT NULL,
    qid TEXT NOT NULL,
    text TEXT NOT NULL,
    n_tokens INTEGER NOT NULL,
    token_logprobs BLOB,
    tokens TEXT,
    finish_reason TEXT NOT NULL,
    PRIMARY KEY (run_id, qid),
    FOREIGN KEY (run_id, qid) REFERENCES questions(run_id, qid)
);
CREATE TABLE IF NOT EXISTS classes (
    run_id INTEGER NOT NULL,
    qid TEXT NOT NULL,
    collapse TEXT NOT NULL,
    n_samples INTEGER NOT NULL,
    labels TEXT NOT NULL,
    gold TEXT NOT NULL,
    greedy_label TEXT,
    PRIMARY KEY (run_id, qid, collapse)
);
CREATE TABLE IF NOT EXISTS grades (
    run_id INTEGER NOT NULL,
    qid TEXT NOT NULL,
    collapse TEXT NOT NULL,
    grader TEXT NOT NULL,
    n_samples INTEGER NOT NULL,
    prediction TEXT NOT NULL,
    count INTEGER NOT NULL,
    correct INTEGER NOT NULL,
    PRIMARY KEY (run_id, qid, collapse, grader)
);
CREATE TABLE IF NOT EXISTS model_estimates (
    run_id INTEGER NOT NULL,
    qid TEXT NOT NULL,
    estimator TEXT NOT NULL,
    collapse TEXT NOT NULL,
    n_samples INTEGER NOT NULL,
    label TEXT NOT NULL,
    answer TEXT NOT NULL,
    value REAL,
    PRIMARY KEY (run_id, qid, estimator, collapse)
);
CREATE TABLE IF NOT EXISTS run_sessions (
    run_id INTEGER NOT NULL,
    started TEXT NOT NULL,
    semcal_version TEXT NOT NULL,
    engine TEXT NOT NULL
);
"""

#: tables added by each schema version (created by :meth:`Store._migrate`)
_MIGRATIONS: dict[int, tuple[str, ...]] = {2: ("model_estimates",), 4: ("run_sessions",)}
#: columns renamed by each schema version (the statements). Version 3 names a
#: run's M ``samples``, as the CLI (``--samples``) and the spec do; ``n_samples`` in the cache
#: tables is the number of samples a question has (< M when an adaptive run stopped early).
_RENAMES: dict[int, tuple[str, ...]] = {3: ("ALTER TABLE runs RENAME COLUMN n_samples TO samples",)}


# ----------------------------------------------------------------------------- records


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


def _encode_logprobs(lp: Sequence[float] | None) -> bytes | None:
    if lp is None:
        return None
    return np.asarray(lp, dtype="<f4").tobytes()


# ----------------------------------------------------------------------------- reading cells
#
# The store is untrusted input (a copy cut short, a file edited by hand, a bad disk). Every
# cell read back goes through one of the decoders below: a cell of the wrong type, text that
# is not UTF-8, JSON that does not parse or has the wrong shape, a log-prob blob of the wrong
# length raise _BadCell, which the reading method turns into one StoreError naming the store,
# the table, the row and the column.


class _BadCell(Exception):
    """A damaged cell: its column and what is wrong with it."""

    def __init__(self, column: str, why: str):
        super().__init__(column, why)
        self.column = column
        self.why = why


def _lenient_text(raw: bytes) -> str | bytes:
    """The connection's text factory: UTF-8 text as ``str``; anything else stays ``bytes``,
    which the decoders report with its row (SQLite's default factory raised an error that
    named no row)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


def _kind(v: Any) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, bytes):
        try:
            v.decode("utf-8")
        except UnicodeDecodeError:
            return "bytes that are not valid UTF-8"
        return "a blob"
    if isinstance(v, str):
        return "text"
    return "a number"


def _text(v: Any, column: str) -> str:
    if type(v) is str:
        return v
    raise _BadCell(column, f"{_kind(v)} (expected text)")


def _opt_text(v: Any, column: str) -> str | None:
    return None if v is None else _text(v, column)


def _int(v: Any, column: str) -> int:
    if type(v) is int:
        return v
    raise _BadCell(column, f"{_kind(v)} (expected an integer)")


def _real(v: Any, column: str) -> float:
    if type(v) in (int, float):
        return float(v)
    raise _BadCell(column, f"{_kind(v)} (expected a number)")


def _json(v: Any, column: str, shape: type) -> Any:
    """A JSON cell holding a ``dict`` (``shape=dict``) or a list of strings (``shape=list``)."""
    want = "a JSON object" if shape is dict else "a JSON list of strings"
    try:
        obj = json.loads(_text(v, column))
    except (ValueError, RecursionError):
        raise _BadCell(column, f"text that is not JSON (expected {want})") from None
    if shape is dict and isinstance(obj, dict):
        return obj
    if shape is list and isinstance(obj, list) and set(map(type, obj)) <= {str}:
        return obj
    raise _BadCell(column, f"JSON of another shape (expected {want})")


def _logprobs(v: Any, column: str) -> tuple[float, ...] | None:
    if v is None:
        return None
    if type(v) is bytes and len(v) % 4 == 0:
        return tuple(np.frombuffer(v, dtype="<f4").tolist())  # Python floats, as float(x) gives
    size = f" of {len(v)} bytes" if isinstance(v, bytes) else ""
    raise _BadCell(column, f"{_kind(v)}{size} (expected little-endian float32 values)")


def _stored_completion(text: Any, finish: Any, n_tokens: Any, logprobs: Any,
                       tokens: Any) -> Completion:
    """A completion from its stored columns (checked)."""
    return Completion(text=_text(text, "text"), finish_reason=_text(finish, "finish_reason"),
                      n_tokens=_int(n_tokens, "n_tokens"),
                      token_logprobs=_logprobs(logprobs, "token_logprobs"),
                      tokens=None if tokens is None else tuple(_json(tokens, "tokens", list)))


#: the columns that name a row in a message, and how they are called there
_ROW_KEYS = (("id", "run"), ("run_id", "run"), ("qid", "question"), ("idx", "sample"),
             ("collapse", "B"), ("grader", "grader"), ("estimator", "estimator"))


def _row_name(row: Mapping[str, Any]) -> str:
    """'run 1, question 'q1', sample 2' from the key columns a row holds (``meta``: its key)."""
    parts = [f"{label} {row[col]!r}" if isinstance(row[col], (str, bytes)) else
             f"{label} {row[col]}" for col, label in _ROW_KEYS if col in row]
    if not parts and "key" in row:
        parts = [f"key {row['key']!r}"]
    return ", ".join(parts) or "a row"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _store_message(exc: sqlite3.Error, path: Path, action: str) -> str:
    text = str(exc)
    low = text.lower()
    if "readonly" in low or "read-only" in low:
        why = "the store is read-only (check the file and directory permissions)"
    elif "disk is full" in low or "disk i/o" in low:
        why = f"no space left to write the store ({text})"
    elif "locked" in low or "busy" in low:
        why = "the store is locked by another process (is another semcal run writing to it?)"
    elif "not a database" in low or "malformed" in low:
        why = "the file is not a semcal store or is damaged"
    elif "unable to open" in low:
        why = "cannot open the store file (does the directory exist and is it writable?)"
    else:
        why = text
    return f"{path}: cannot {action}: {why}"


# ----------------------------------------------------------------------------- store



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


class Store:
    """The SQLite results store of one experiment directory.

    ``Store(directory)`` opens (creating when needed) ``directory/semcal.sqlite``.
    ``readonly=True`` opens an existing store without ever writing to it (analysis of a
    directory you cannot write to). ``create=False`` opens an existing store for writing but
    never makes one: an empty ``semcal.sqlite`` (0 bytes, no tables) is then an error, as it
    is read-only, instead of being turned into a new store (analysis must not hide a damaged
    file). Use as a context manager or call :meth:`close`.
    """

    def __init__(self, directory: str | os.PathLike[str], readonly: bool = False,
                 create: bool = True):
        directory = Path(directory)
        self.directory = directory
        self.path = directory / STORE_NAME if directory.suffix != ".sqlite" else directory
        if self.path.name != STORE_NAME:
            self.directory = self.path.parent
        self.readonly = readonly
        self.create = create and not readonly
        self._conn: sqlite3.Connection | None = None
        self._open()

    # -- opening / closing

    def _open(self) -> None:
        if not self.create:
            self._check_present()
        if self.readonly:
            conn = None
            for flags in ("mode=ro", "mode=ro&immutable=1"):
                try:
                    conn = sqlite3.connect(f"file:{self.path}?{flags}", uri=True, timeout=30)
                    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                    break
                except sqlite3.Error as exc:
                    last = exc
                    conn = None
            if conn is None:
                raise StoreError(_store_message(last, self.path, "open the store"))
            self._conn = conn
        else:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"{self.directory}: cannot create the experiment directory: {exc.strerror or exc}"
                ) from None
            # switching a new file to WAL takes an exclusive lock, and SQLite does not always
            # wait for it (processes creating one store at once see "database is locked"):
            # retry for up to 30 s, as the busy timeout does for everything else
            deadline = time.monotonic() + 30
            while True:
                conn = None
                try:
                    conn = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.execute("PRAGMA synchronous=NORMAL")
                    conn.execute("PRAGMA foreign_keys=ON")
                    break
                except sqlite3.OperationalError as exc:
                    if conn is not None:
                        conn.close()
                    busy = "locked" in str(exc) or "busy" in str(exc)
                    if not busy or time.monotonic() > deadline:
                        raise StoreError(_store_message(exc, self.path, "open the store")) from None
                    time.sleep(0.05)
                except sqlite3.Error as exc:
                    if conn is not None:
                        conn.close()
                    raise StoreError(_store_message(exc, self.path, "open the store")) from None
            self._conn = conn
        self._conn.row_factory = sqlite3.Row
        self._conn.text_factory = _lenient_text
        self._check_schema()

    def _check_schema(self) -> None:
        conn = self.conn
        try:
            # one statement, one snapshot: two reads let another process commit the schema
            # in between (no meta yet, then tables) and a fresh store looked foreign
            names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            if "meta" not in names:
                if names:
                    raise StoreError(f"{self.path}: not a semcal store (no meta table)")
                if not self.create:
                    raise StoreError(self._empty_message())
                with self.transaction() as c:
                    # another process may have created the store since the check above: the
                    # IMMEDIATE transaction serialises creators, so look again inside it
                    if c.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
                                 ).fetchone():
                        return
                    for stmt in _SCHEMA.split(";"):
                        if stmt.strip():
                            c.execute(stmt)
                    c.execute(
                        "INSERT INTO meta(key, value) VALUES (?, ?)",
                        ("schema_version", str(SCHEMA_VERSION)),
                    )
                    c.execute(
                        "INSERT INTO meta(key, value) VALUES (?, ?)", ("created_by", __version__)
                    )
                return
            row = conn.execute("SELECT key, value FROM meta WHERE key=?",
                               ("schema_version",)).fetchone()
        except sqlite3.DatabaseError as exc:
            raise StoreError(_store_message(exc, self.path, "read the store")) from None
        version = 0 if row is None else self._decoded("meta", [row], _schema_version)[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: store schema version {version} is newer than this semcal "
                f"understands ({SCHEMA_VERSION}); upgrade semcal"
            )
        if version < SCHEMA_VERSION:
            self._migrate(version)

    def _check_present(self) -> None:
        """For a store that must exist already: refuse a missing file, and an empty one (0 bytes
        and no write-ahead log to recover from) before SQLite opens it, which would write a
        header into it."""
        if not self.path.is_file():
            raise StoreError(f"{self.directory}: no semcal store here ({STORE_NAME} not found)")
        wal = self.path.with_name(self.path.name + "-wal")
        try:
            empty = self.path.stat().st_size == 0 and (not wal.exists() or wal.stat().st_size == 0)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot open the store: {exc.strerror or exc}") from None
        if empty:
            raise StoreError(self._empty_message())

    def _empty_message(self) -> str:
        try:
            size = f"{self.path.stat().st_size} bytes, "
        except OSError:
            size = ""
        return (f"{self.path}: the store is empty ({size}no tables): it is damaged or was never "
                "written; semcal will not read or resume it (move it away to start afresh)")

    def _migrate(self, version: int) -> None:
        """Bring a store of an older schema ``version`` up to :data:`SCHEMA_VERSION`.

        Migrations add tables and rename columns; a read-only store of an older version is
        read as it is (missing tables read as empty, a renamed column under its old name) and
        is never written to.
        """
        if version < 1:
            raise StoreError(f"{self.path}: cannot migrate store schema version {version}")
        if self.readonly:
            return
        wanted = {t for v, ts in _MIGRATIONS.items() if v > version for t in ts}
        stmts = [
            st for st in _SCHEMA.split(";")
            if st.strip() and any(f"TABLE IF NOT EXISTS {t} " in st for t in wanted)
        ]
        with self.transaction() as c:
            for st in stmts:
                c.execute(st)
            for v, renames in sorted(_RENAMES.items()):
                if v > version:
                    for rename in renames:
                        c.execute(rename)
            c.execute(
                "UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),)
            )
        log.info("migrated %s from schema version %d to %d", self.path, version, SCHEMA_VERSION)

    def _has_table(self, name: str) -> bool:
        return bool(
            self._read("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,))
        )

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"{self.path}: the store is closed")
        return self._conn

    def close(self) -> None:
        """Checkpoint the write-ahead log into the main file and close."""
        if self._conn is None:
            return
        try:
            if not self.readonly:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:  # harmless: the log is checkpointed by the next writer
            log.debug("WAL checkpoint failed: %s", exc)
        finally:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write: everything inside is committed together or not at all."""
        if self.readonly:
            raise StoreError(f"{self.path}: the store was opened read-only")
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(_store_message(exc, self.path, "write to the store")) from None
        try:
            yield conn
        except sqlite3.Error as exc:
            self._rollback()
            raise StoreError(_store_message(exc, self.path, "write to the store")) from None
        except BaseException:
            self._rollback()
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise StoreError(_store_message(exc, self.path, "write to the store")) from None

    def _rollback(self) -> None:
        # SQLite rolls back by itself after some errors (SQLITE_FULL): only roll back if needed
        conn = self.conn
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error as exc:  # pragma: no cover - nothing more can be done
                log.warning("rollback failed: %s", exc)

    def _decoded(self, table: str, rows: Iterable[Any], decode: Any) -> list[Any]:
        """``decode(row)`` of every row; a damaged cell ends as one :class:`StoreError` naming
        the store, ``table``, the row and the column."""
        out = []
        for r in rows:
            try:
                out.append(decode(r))
            except _BadCell as exc:
                raise self._damaged(table, dict(zip(r.keys(), r)), exc) from None
        return out

    def _damaged(self, table: str, row: Mapping[str, Any], exc: _BadCell) -> StoreError:
        return StoreError(f"{self.path}: damaged store: table {table}, {_row_name(row)}, column "
                          f"{exc.column}: {exc.why}")

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        try:
            return self.conn.execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(_store_message(exc, self.path, "read the store")) from None

    def integrity_check(self) -> str:
        """``PRAGMA integrity_check``: "ok" for a sound database."""
        return str(self._read("PRAGMA integrity_check")[0][0])

    # -- runs

    def create_run(
        self,
        *,
        name: str,
        key: str,
        spec: Mapping[str, Any],
        model: str,
        backend: str,
        style: str,
        dataset: str,
        temperature: float,
        top_p: float,
        max_tokens: int,
        samples: int,
        seed: int,
        adaptive: bool = False,
        is_chat: bool | None = None,
    ) -> RunInfo:
        """Insert a new run. ``name`` must be unique within the store."""
        if self.find_run(name) is not None:
            raise StoreError(f"{self.path}: a run named {name!r} already exists")
        with self.transaction() as c:
            run_id = self._insert_run(
                c, name=name, key=key, spec=spec, model=model, backend=backend, style=style,
                dataset=dataset, temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                samples=samples, seed=seed, adaptive=adaptive, is_chat=is_chat)
        run = self.get_run(run_id)
        assert run is not None
        return run

    @staticmethod
    def _insert_run(c: sqlite3.Connection, *, name: str, key: str, spec: Mapping[str, Any],
                    model: str, backend: str, style: str, dataset: str, temperature: float,
                    top_p: float, max_tokens: int, samples: int, seed: int,
                    adaptive: bool = False, is_chat: bool | None = None) -> int:
        cur = c.execute(
            "INSERT INTO runs(name, key, model, backend, style, dataset, temperature, top_p,"
            " max_tokens, samples, seed, adaptive, is_chat, semcal_version, created, spec)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                name,
                key,
                model,
                backend,
                style,
                dataset,
                float(temperature),
                float(top_p),
                int(max_tokens),
                int(samples),
                int(seed),
                int(bool(adaptive)),
                None if is_chat is None else int(bool(is_chat)),
                __version__,
                _now(),
                json.dumps(dict(spec), sort_keys=True, default=str),
            ),
        )
        return int(cur.lastrowid)

    def lock_run(self, run: RunInfo) -> RunLock:
        """Take the exclusive writer lock of ``run`` (:class:`RunLock`); :class:`StoreError`
        naming the holder when another process has it."""
        return RunLock(self.directory / LOCK_DIR / f"run-{run.id}.lock", run.name)

    def open_or_create_run(self, *, key: str, name: str, exact_name: bool,
                           **fields: Any) -> tuple[RunInfo, bool]:
        """The run with ``key``, or a new one, decided in one transaction so that processes
        starting the same run at once agree. Returns (run, created). A new run is called
        ``name``; when that name is taken, ``exact_name`` is an error, else ``name-2``,
        ``name-3``... is used."""
        with self.transaction() as c:
            row = c.execute("SELECT id FROM runs WHERE key=? ORDER BY id LIMIT 1", (key,)).fetchone()
            if row is not None:
                created, run_id = False, int(row[0])
            else:
                taken = {r[0] for r in c.execute(
                    "SELECT name FROM runs WHERE name=? OR name LIKE ?", (name, f"{name}-%"))}
                if name in taken and exact_name:
                    raise StoreError(
                        f"{self.directory}: a run named {name!r} with different settings already "
                        "exists; pick another name or another --out directory")
                final, i = name, 2
                while final in taken:
                    final, i = f"{name}-{i}", i + 1
                run_id = self._insert_run(c, name=final, key=key, **fields)
                created = True
        run = self.get_run(run_id)
        assert run is not None
        return run, created

    def runs(self) -> list[RunInfo]:
        """Every run, oldest first."""
        return self._decoded("runs", self._read("SELECT * FROM runs ORDER BY id"), _run_from_row)

    def get_run(self, run_id: int) -> RunInfo | None:
        rows = self._decoded("runs", self._read("SELECT * FROM runs WHERE id=?", (int(run_id),)), _run_from_row)
        return rows[0] if rows else None

    def find_run(self, name: str) -> RunInfo | None:
        rows = self._decoded("runs", self._read("SELECT * FROM runs WHERE name=?", (name,)), _run_from_row)
        return rows[0] if rows else None

    def find_run_by_key(self, key: str) -> RunInfo | None:
        rows = self._decoded("runs", self._read("SELECT * FROM runs WHERE key=? ORDER BY id LIMIT 1", (key,)), _run_from_row)
        return rows[0] if rows else None

    def set_run_chat(self, run_id: int, is_chat: bool) -> None:
        with self.transaction() as c:
            c.execute("UPDATE runs SET is_chat=? WHERE id=?", (int(bool(is_chat)), int(run_id)))

    def add_session(self, run_id: int, engine: str) -> None:
        """Record that sampling of a run started or resumed now, with this semcal and this
        engine ("llama-cpp-python 0.3.36"): samples of one run drawn by different engine
        builds need not be comparable, and :meth:`sessions` lets analysis say so."""
        with self.transaction() as c:
            c.execute("INSERT INTO run_sessions VALUES (?, ?, ?, ?)",
                      (int(run_id), _now(), __version__, str(engine)))

    def sessions(self, run_id: int) -> list[dict[str, str]]:
        """The sampling sessions of a run, oldest first: ``started``, ``semcal_version``,
        ``engine``. Empty for runs sampled before semcal recorded them (schema < 4)."""
        if not self._has_table("run_sessions"):
            return []
        rows = self._read("SELECT * FROM run_sessions WHERE run_id=? ORDER BY rowid", (int(run_id),))
        return self._decoded("run_sessions", rows, lambda r: {
            k: _text(r[k], k) for k in ("started", "semcal_version", "engine")})

    def mark_run_finished(self, run_id: int) -> None:
        with self.transaction() as c:
            c.execute("UPDATE runs SET finished=? WHERE id=?", (_now(), int(run_id)))

    # -- questions

    def add_questions(
        self,
        run_id: int,
        questions: Sequence[Question],
        prompts: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> int:
        """Register questions of a run (idempotent). Returns how many were new.

        A question id already stored with a different text or gold answers is an error: the
        data file changed under a run that is being resumed.
        """
        existing = dict(self._decoded(
            "questions", self._read("SELECT * FROM questions WHERE run_id=?", (run_id,)),
            lambda r: (_text(r["qid"], "qid"),
                       (_text(r["question"], "question"), _text(r["answers"], "answers")))))
        start = len(existing)
        new = 0
        with self.transaction() as c:
            for i, q in enumerate(questions):
                answers = json.dumps(list(q.answers))
                old = existing.get(str(q.id))
                if old is not None:
                    if old != (q.question, answers):
                        raise StoreError(
                            f"{self.path}: question {q.id!r} differs from the one stored with this "
                            "run (did the data file change?); use a new --out directory"
                        )
                    continue
                prompt = None if prompts is None or prompts[i] is None else prompts[i]
                c.execute(
                    "INSERT INTO questions(run_id, qid, position, question, answers, task, meta,"
                    " prompt) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        run_id,
                        str(q.id),
                        start + new,
                        q.question,
                        answers,
                        q.task,
                        json.dumps(dict(q.meta), sort_keys=True, default=str),
                        None if prompt is None else json.dumps(prompt, sort_keys=True),
                    ),
                )
                new += 1
        return new

    def questions(self, run_id: int) -> list[Question]:
        """The run's questions in the order they were added."""
        rows = self._read("SELECT * FROM questions WHERE run_id=? ORDER BY position", (run_id,))
        return self._decoded("questions", rows, _question_from_row)

    def done_ids(self, run_id: int) -> set[str]:
        """Ids of questions whose sampling is finished."""
        rows = self._read("SELECT qid FROM questions WHERE run_id=? AND done=1", (run_id,))
        return set(self._decoded("questions", rows, _qid))

    def progress(self, run_id: int) -> tuple[int, int, int]:
        """(questions done, questions total, samples stored)."""
        done, total = self._read(
            "SELECT coalesce(sum(done), 0), count(*) FROM questions WHERE run_id=?", (run_id,)
        )[0]
        n = self._read("SELECT count(*) FROM samples WHERE run_id=?", (run_id,))[0][0]
        return int(done), int(total), int(n)

    # -- samples

    def add_batch(
        self,
        run_id: int,
        qid: str,
        round: int,
        start_index: int,
        completions: Sequence[Completion],
        seeds: Sequence[int],
        *,
        greedy: Completion | None = None,
        done: bool = True,
    ) -> None:
        """Commit one question's batch of samples (and optionally its greedy completion).

        Everything is one transaction: the batch is stored whole or not at all. ``done`` marks
        the question finished so a resumed run skips it.
        """
        if len(seeds) != len(completions):
            raise ValueError("one seed per completion")
        with self.transaction() as c:
            for j, (comp, seed) in enumerate(zip(completions, seeds)):
                c.execute(
                    "INSERT INTO samples(run_id, qid, round, idx, text, n_tokens, token_logprobs,"
                    " tokens, finish_reason, seed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        run_id,
                        qid,
                        int(round),
                        int(start_index + j),
                        comp.text,
                        int(comp.n_tokens),
                        _encode_logprobs(comp.token_logprobs),
                        None if comp.tokens is None else json.dumps(list(comp.tokens)),
                        comp.finish_reason,
                        int(seed),
                    ),
                )
            if greedy is not None:
                c.execute(
                    "INSERT OR REPLACE INTO greedy(run_id, qid, text, n_tokens, token_logprobs,"
                    " tokens, finish_reason) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        run_id,
                        qid,
                        greedy.text,
                        int(greedy.n_tokens),
                        _encode_logprobs(greedy.token_logprobs),
                        None if greedy.tokens is None else json.dumps(list(greedy.tokens)),
                        greedy.finish_reason,
                    ),
                )
            if done:
                c.execute("UPDATE questions SET done=1 WHERE run_id=? AND qid=?", (run_id, qid))

    def mark_done(self, run_id: int, qid: str) -> None:
        with self.transaction() as c:
            c.execute("UPDATE questions SET done=1 WHERE run_id=? AND qid=?", (run_id, qid))

    def samples(self, run_id: int, qid: str) -> list[StoredSample]:
        """One question's samples in index order."""
        rows = self._read(
            "SELECT * FROM samples WHERE run_id=? AND qid=? ORDER BY idx", (run_id, qid)
        )
        return self._decoded("samples", rows, lambda r: _sample(
            r["qid"], r["round"], r["idx"], r["seed"], r["text"], r["finish_reason"],
            r["n_tokens"], r["token_logprobs"], r["tokens"]))

    def all_samples(self, run_id: int, *, tokens: bool = True) -> dict[str, list[StoredSample]]:
        """Every sample of a run, grouped by question id (index order). ``tokens=False``
        leaves each completion's token strings out (None): the analysis does not read them,
        and decoding them was a good part of reading a large run."""
        return dict(self.iter_samples(run_id, tokens=tokens))

    def iter_samples(
        self, run_id: int, *, tokens: bool = True
    ) -> Iterator[tuple[str, list[StoredSample]]]:
        """(question id, its samples in index order) for every question of a run with
        samples, streamed from the store in question-id order (see :meth:`all_samples`)."""
        sql = ("SELECT qid, round, idx, seed, text, n_tokens, token_logprobs, finish_reason,"
               " tokens FROM samples WHERE run_id=? ORDER BY qid, idx" if tokens else
               "SELECT qid, round, idx, seed, text, n_tokens, token_logprobs, finish_reason,"
               " NULL FROM samples WHERE run_id=? ORDER BY qid, idx")
        try:
            cur = self.conn.execute(sql, (run_id,))
            current: str | None = None
            group: list[StoredSample] = []
            while True:
                rows = cur.fetchmany(4096)
                if not rows:
                    break
                for qid, rnd, idx, seed, text, n_tok, lps, finish, toks in rows:
                    if qid != current:
                        if group:
                            yield current, group  # type: ignore[misc]
                        current, group = qid, []
                    try:
                        group.append(_sample(qid, rnd, idx, seed, text, finish, n_tok, lps, toks))
                    except _BadCell as exc:
                        raise self._damaged("samples", {"run_id": run_id, "qid": qid, "idx": idx},
                                            exc) from None
            if group:
                yield current, group  # type: ignore[misc]
        except sqlite3.Error as exc:
            raise StoreError(_store_message(exc, self.path, "read the store")) from None

    def greedy(self, run_id: int) -> dict[str, Completion]:
        """The stored greedy completion of each question that has one."""
        rows = self._read("SELECT * FROM greedy WHERE run_id=?", (run_id,))
        return dict(self._decoded("greedy", rows, lambda r: (_qid(r), _stored_completion(
            r["text"], r["finish_reason"], r["n_tokens"], r["token_logprobs"], r["tokens"]))))

    def greedy_ids(self, run_id: int) -> set[str]:
        """Ids of the questions with a stored greedy completion (nothing else is read)."""
        rows = self._read("SELECT qid FROM greedy WHERE run_id=?", (run_id,))
        return set(self._decoded("greedy", rows, _qid))

    # -- cached analysis

    def save_classes(
        self,
        run_id: int,
        collapse: str,
        rows: Iterable[tuple[str, int, Sequence[str], Iterable[str], str | None]],
    ) -> None:
        """Cache collapse results: rows of (qid, n_samples, labels, gold labels, greedy label)."""
        with self.transaction() as c:
            for qid, n, labels, gold, greedy_label in rows:
                c.execute(
                    "INSERT OR REPLACE INTO classes(run_id, qid, collapse, n_samples, labels, gold,"
                    " greedy_label) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        run_id,
                        qid,
                        collapse,
                        int(n),
                        json.dumps(list(labels)),
                        json.dumps(sorted(gold)),
                        greedy_label,
                    ),
                )

    def classes(
        self, run_id: int, collapse: str
    ) -> dict[str, tuple[int, tuple[str, ...], frozenset[str], str | None]]:
        """Cached collapse results: qid -> (n_samples, labels, gold labels, greedy label)."""
        rows = self._read("SELECT * FROM classes WHERE run_id=? AND collapse=?", (run_id, collapse))
        return dict(self._decoded("classes", rows, lambda r: (_qid(r), (
            _int(r["n_samples"], "n_samples"),
            tuple(_json(r["labels"], "labels", list)),
            frozenset(_json(r["gold"], "gold", list)),
            _opt_text(r["greedy_label"], "greedy_label"),
        ))))

    def save_grades(
        self,
        run_id: int,
        collapse: str,
        grader: str,
        rows: Iterable[tuple[str, int, str, int, bool]],
    ) -> None:
        """Cache grades: rows of (qid, n_samples, prediction, count, correct)."""
        with self.transaction() as c:
            for qid, n, prediction, count, correct in rows:
                c.execute(
                    "INSERT OR REPLACE INTO grades(run_id, qid, collapse, grader, n_samples,"
                    " prediction, count, correct) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (run_id, qid, collapse, grader, int(n), prediction, int(count), int(bool(correct))),
                )

    def grades(
        self, run_id: int, collapse: str, grader: str
    ) -> dict[str, tuple[int, str, int, bool]]:
        """Cached grades: qid -> (n_samples, prediction, count, correct)."""
        rows = self._read("SELECT * FROM grades WHERE run_id=? AND collapse=? AND grader=?",
                          (run_id, collapse, grader))
        return dict(self._decoded("grades", rows, lambda r: (_qid(r), (
            _int(r["n_samples"], "n_samples"), _text(r["prediction"], "prediction"),
            _int(r["count"], "count"), bool(_int(r["correct"], "correct"))))))


    # -- model-based confidence estimates

    def save_model_estimates(
        self,
        run_id: int,
        collapse: str,
        rows: Iterable[tuple[str, str, int, str, str, float | None]],
    ) -> None:
        """Store model-based estimates: rows of (qid, estimator, n_samples, predicted label,
        answer text rated, value in [0, 1] or None when the model gave no usable value).
        One transaction; an existing (run, qid, estimator, collapse) row is replaced."""
        with self.transaction() as c:
            for qid, est, n, label, answer, value in rows:
                c.execute(
                    "INSERT OR REPLACE INTO model_estimates(run_id, qid, estimator, collapse,"
                    " n_samples, label, answer, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        run_id, qid, est, collapse, int(n), label, answer,
                        None if value is None else float(value),
                    ),
                )

    def model_estimates(
        self, run_id: int, collapse: str
    ) -> dict[str, dict[str, tuple[float | None, str, int]]]:
        """Stored model-based estimates: qid -> estimator -> (value, predicted label, n_samples).

        Empty for a read-only store of an older schema without the table."""
        if not self._has_table("model_estimates"):
            return {}
        rows = self._read("SELECT * FROM model_estimates WHERE run_id=? AND collapse=?",
                          (run_id, collapse))
        out: dict[str, dict[str, tuple[float | None, str, int]]] = {}
        for qid, est, value in self._decoded("model_estimates", rows, lambda r: (
                _qid(r), _text(r["estimator"], "estimator"),
                (None if r["value"] is None else _real(r["value"], "value"),
                 _text(r["label"], "label"), _int(r["n_samples"], "n_samples")))):
            out.setdefault(qid, {})[est] = value
        return out


# ----------------------------------------------------------------------------- row decoders


def _qid(r: sqlite3.Row) -> str:
    return _text(r["qid"], "qid")


def _schema_version(r: sqlite3.Row) -> int:
    try:
        return int(_text(r["value"], "value"))
    except ValueError:
        raise _BadCell("value", f"{r['value']!r} (expected a schema version number)") from None


def _run_from_row(r: sqlite3.Row) -> RunInfo:
    samples = "samples" if "samples" in r.keys() else "n_samples"  # schema < 3: n_samples
    is_chat = r["is_chat"]
    return RunInfo(
        id=_int(r["id"], "id"),
        name=_text(r["name"], "name"),
        key=_text(r["key"], "key"),
        model=_text(r["model"], "model"),
        backend=_text(r["backend"], "backend"),
        style=_text(r["style"], "style"),
        dataset=_text(r["dataset"], "dataset"),
        temperature=_real(r["temperature"], "temperature"),
        top_p=_real(r["top_p"], "top_p"),
        max_tokens=_int(r["max_tokens"], "max_tokens"),
        samples=_int(r[samples], samples),
        seed=_int(r["seed"], "seed"),
        adaptive=bool(_int(r["adaptive"], "adaptive")),
        is_chat=None if is_chat is None else bool(_int(is_chat, "is_chat")),
        semcal_version=_text(r["semcal_version"], "semcal_version"),
        created=_text(r["created"], "created"),
        finished=_opt_text(r["finished"], "finished"),
        spec=_json(r["spec"], "spec", dict),
    )


def _question_from_row(r: sqlite3.Row) -> Question:
    qid, text = _qid(r), _text(r["question"], "question")
    answers, task = _json(r["answers"], "answers", list), _text(r["task"], "task")
    meta = _json(r["meta"], "meta", dict)
    try:
        return Question(id=qid, question=text, answers=tuple(answers), task=task, meta=meta)
    except InputError as exc:  # an empty question or no gold answer
        raise _BadCell("question" if "text" in str(exc) else "answers", str(exc)) from None


def _sample(qid: Any, rnd: Any, idx: Any, seed: Any, text: Any, finish: Any, n_tokens: Any,
            logprobs: Any, tokens: Any) -> StoredSample:
    return StoredSample(_text(qid, "qid"), _int(rnd, "round"), _int(idx, "idx"),
                        _int(seed, "seed"),
                        _stored_completion(text, finish, n_tokens, logprobs, tokens))


def open_store(directory: str | os.PathLike[str], readonly: bool = False) -> Store:
    """Open the store of an experiment directory (see :class:`Store`)."""
    return Store(directory, readonly=readonly)


def has_store(directory: str | os.PathLike[str]) -> bool:
    """Whether ``directory`` holds a semcal store."""
    return (Path(directory) / STORE_NAME).is_file()
