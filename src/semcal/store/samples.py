"""What sampling writes into the store and analysis reads back: a run's questions, its
samples (one transaction per question's batch) and its greedy completions."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from semcal.errors import StoreError
from semcal.store.cells import _BadCell, _encode_logprobs, _now, _text
from semcal.store.connection import StoreConnection, _store_message
from semcal.store.records import StoredSample
from semcal.store.rows import _qid, _question_from_row, _sample, _stored_completion
from semcal.types import Completion, Question


class SamplesMixin(StoreConnection):
    """The methods of :class:`semcal.store.Store` that read and write the ``questions``,
    ``samples`` and ``greedy`` tables."""

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
            made = [*completions, *([greedy] if greedy is not None else [])]
            self._count_in_session(c, run_id, len(completions),
                                   sum(int(x.n_tokens) for x in made), int(done))

    def mark_done(self, run_id: int, qid: str) -> None:
        with self.transaction() as c:
            c.execute("UPDATE questions SET done=1 WHERE run_id=? AND qid=?", (run_id, qid))
            self._count_in_session(c, run_id, 0, 0, 1)

    def _count_in_session(self, c: sqlite3.Connection, run_id: int, samples: int, tokens: int,
                          questions: int) -> None:
        """Add one committed batch to this process's session of the run (inside the batch's
        transaction, so the counts and the samples are stored together or not at all):
        its samples, the tokens of its samples and greedy completion, and the question if it
        is now done. A run sampled without :meth:`add_session` (a store written directly) has
        no session. The row is found by its rowid, which only a VACUUM could renumber (semcal
        never runs one)."""
        row = self._session_rows.get(int(run_id))
        if row is not None:
            c.execute("UPDATE run_sessions SET updated=?, samples=samples+?, tokens=tokens+?,"
                      " questions=questions+? WHERE rowid=?",
                      (_now(), int(samples), int(tokens), int(questions), row))

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
        return self._greedy_rows(self._read("SELECT * FROM greedy WHERE run_id=?", (run_id,)))

    def greedy_of(self, run_id: int, qid: str) -> Completion | None:
        """One question's stored greedy completion, None without one."""
        rows = self._read("SELECT * FROM greedy WHERE run_id=? AND qid=?", (run_id, qid))
        return self._greedy_rows(rows).get(qid)

    def _greedy_rows(self, rows: Any) -> dict[str, Completion]:
        return dict(self._decoded("greedy", rows, lambda r: (_qid(r), _stored_completion(
            r["text"], r["finish_reason"], r["n_tokens"], r["token_logprobs"], r["tokens"]))))

    def greedy_ids(self, run_id: int) -> set[str]:
        """Ids of the questions with a stored greedy completion (nothing else is read)."""
        rows = self._read("SELECT qid FROM greedy WHERE run_id=?", (run_id,))
        return set(self._decoded("greedy", rows, _qid))
