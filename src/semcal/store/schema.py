"""The store's schema: the tables (one constant), its version, and what each version added.

Every statement here is a constant; :func:`create_tables` runs the pieces of :data:`_SCHEMA`
on a new store and :func:`migrate_tables` brings an older store up to :data:`SCHEMA_VERSION`.
"""

from __future__ import annotations

import sqlite3

from semcal import __version__

#: bump when the schema changes; older stores are migrated in :func:`migrate_tables`
SCHEMA_VERSION = 5

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
    engine TEXT NOT NULL,
    updated TEXT,
    samples INTEGER NOT NULL DEFAULT 0,
    tokens INTEGER NOT NULL DEFAULT 0,
    questions INTEGER NOT NULL DEFAULT 0
);
"""

#: tables added by each schema version (created by :func:`migrate_tables`)
_MIGRATIONS: dict[int, tuple[str, ...]] = {2: ("model_estimates",), 4: ("run_sessions",)}
#: columns renamed or added by each schema version: (table, statement). Version 3 names a
#: run's M ``samples``, as the CLI (``--samples``) and the spec do; ``n_samples`` in the cache
#: tables is the number of samples a question has (< M when an adaptive run stopped early).
#: Version 5 times each sampling session: when it last stored a batch, and the samples,
#: tokens and finished questions it stored (a run's wall time and tokens/s across sessions).
#: A table a migration creates is created whole, so its later alterations are skipped.
_ALTERS: dict[int, tuple[tuple[str, str], ...]] = {
    3: (("runs", "ALTER TABLE runs RENAME COLUMN n_samples TO samples"),),
    5: (("run_sessions", "ALTER TABLE run_sessions ADD COLUMN updated TEXT"),
        ("run_sessions", "ALTER TABLE run_sessions ADD COLUMN samples INTEGER NOT NULL DEFAULT 0"),
        ("run_sessions", "ALTER TABLE run_sessions ADD COLUMN tokens INTEGER NOT NULL DEFAULT 0"),
        ("run_sessions",
         "ALTER TABLE run_sessions ADD COLUMN questions INTEGER NOT NULL DEFAULT 0")),
}


def create_tables(c: sqlite3.Connection) -> None:
    """Create every table of a new store and record its schema version (inside the caller's
    transaction)."""
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


def migrate_tables(c: sqlite3.Connection, version: int) -> None:
    """Add the tables and the columns, and rename the columns, that came after schema
    ``version``, and record the new version (inside the caller's transaction)."""
    wanted = {t for v, ts in _MIGRATIONS.items() if v > version for t in ts}
    stmts = [
        st for st in _SCHEMA.split(";")
        if st.strip() and any(f"TABLE IF NOT EXISTS {t} " in st for t in wanted)
    ]
    for st in stmts:
        c.execute(st)
    for v, alters in sorted(_ALTERS.items()):
        if v > version:
            for table, alter in alters:
                if table not in wanted:
                    c.execute(alter)
    c.execute(
        "UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),)
    )
