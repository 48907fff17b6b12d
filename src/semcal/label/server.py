"""``semcal label``: a local web page to label a sample of a run's responses by hand.

:func:`prepare` reads a seeded random sample of a run's finished questions with their stored
samples and B's classes (the analysis computes or reads them; B's grouping is shown only on
request, after a question is labelled) and the run's label file, if any (resuming). The
:class:`LabelServer` serves one self-contained page (``page.html``: inline script and style,
nothing fetched from elsewhere) and two endpoints: ``GET /api/data`` and ``POST /api/label``
(one question's labels, written to the label file at once, atomically).

The server listens on 127.0.0.1 only. Every request must name the server in its Host header
(``127.0.0.1:PORT`` or ``localhost:PORT``: a DNS-rebinding page cannot reach it), and a POST
must come from the page's own origin (403 otherwise: another site open in the browser cannot
write labels). A POST body is at most :data:`MAX_BODY` bytes (413), JSON (400) and checked
against the run (:func:`semcal.label.labels.check_entry`, 400 with the reason). The page
inserts every text with ``textContent`` and is served with a Content-Security-Policy that
allows only its own nonce'd script.
"""

from __future__ import annotations

import json
import random
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

from semcal.errors import InputError
from semcal.label.labels import HandLabels, check_entry, label_path, read_labels, write_labels

#: the largest POST body accepted (one question's labels are a few hundred bytes)
MAX_BODY = 1 << 20


@dataclass
class LabelSession:
    """What the page shows and where its labels go."""

    run: str
    path: Path
    questions: list[dict[str, Any]]
    samples: dict[str, list[int]]
    labels: dict[str, HandLabels]
    collapse: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def data(self) -> dict[str, Any]:
        with self.lock:
            saved = {qid: e.to_json() for qid, e in self.labels.items()}
        return {"run": self.run, "file": str(self.path), "collapse": self.collapse,
                "questions": self.questions, "labels": saved}

    def save(self, row: Any) -> HandLabels:
        """Check one question's labels and write the whole file with them (InputError: the
        entry is refused and nothing is written)."""
        entry = check_entry(row, self.run, self.samples, where="labels")
        with self.lock:
            updated = dict(self.labels)
            updated[entry.qid] = entry
            write_labels(self.path, updated.values())
            self.labels = updated
        return entry


def sample_ids(ids: list[str], n: int, seed: int) -> list[str]:
    """``n`` of ``ids`` (all when fewer), drawn with ``seed``: the same run, ``n`` and
    ``seed`` always give the same questions in the same order."""
    if n >= len(ids):
        order = list(ids)
        random.Random(seed).shuffle(order)
        return order
    return random.Random(seed).sample(ids, n)


def prepare(directory: str | Path, run: str | None, n: int = 30, seed: int = 0) -> LabelSession:
    """The label session of ``run`` in ``directory`` (the only run when None): its sampled
    questions with their samples and B's classes, and the labels already saved."""
    from semcal.analysis import analyze_run
    from semcal.store import STORE_NAME, Store, has_store

    d = Path(directory)
    if not d.is_dir():
        raise InputError(f"directory not found: {d}")
    if not has_store(d):
        raise InputError(f"no semcal store in {d} ({STORE_NAME} not found)")
    with Store(d, readonly=True) as store:
        runs = store.runs()
        if run is None:
            if len(runs) != 1:
                names = ", ".join(r.name for r in runs) or "none"
                raise InputError(f"{d} holds {len(runs)} runs: name one with --run (runs: {names})")
            info = runs[0]
        else:
            info = store.find_run(run)
            if info is None:
                names = ", ".join(r.name for r in runs) or "none"
                raise InputError(f"no run {run!r} in {d} (runs: {names})")
        done = store.done_ids(info.id)
        ids = [q.id for q in store.questions(info.id) if q.id in done]
        if not ids:
            raise InputError(f"run {info.name} has no finished question to label")
        path = label_path(d, info.name)
        chosen = sample_ids(ids, n, seed)
        indices = {qid: [s.index for s in store.samples(info.id, qid)] for qid in ids}
        saved = read_labels(path, info.name, indices)
        shown = list(dict.fromkeys([*chosen, *(q for q in saved if q not in chosen)]))
        a = analyze_run(store, info, estimators=[], n_boot=0, cache=False, only=shown)
    by_id = {q.qid: q for q in a.questions}
    questions = [{"id": q.qid, "question": q.question, "gold": list(q.gold),
                  "samples": indices[q.qid], "texts": list(q.texts), "b_labels": list(q.labels),
                  "b_prediction": q.prediction, "b_correct": bool(q.correct)}
                 for q in (by_id[i] for i in shown if i in by_id)]
    return LabelSession(info.name, path, questions, {q["id"]: q["samples"] for q in questions},
                        saved, a.collapse_label)


def page_html(nonce: str) -> bytes:
    text = resources.files("semcal.label").joinpath("page.html").read_text(encoding="utf-8")
    return text.replace("{{NONCE}}", nonce).encode("utf-8")


class LabelServer(ThreadingHTTPServer):
    """The HTTP server of one :class:`LabelSession` on 127.0.0.1 (``port`` 0: a free one)."""

    daemon_threads = True

    def __init__(self, session: LabelSession, port: int = 0) -> None:
        self.session = session
        super().__init__(("127.0.0.1", port), _Handler)
        self.port = int(self.server_address[1])
        self.hosts = {f"127.0.0.1:{self.port}", f"localhost:{self.port}"}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


class _Handler(BaseHTTPRequestHandler):
    server: LabelServer
    server_version = "semcal-label"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        return

    # -- checks

    def _host_ok(self) -> bool:
        host = self.headers.get("Host", "")
        if host not in self.server.hosts:
            self._reply(403, {"error": "wrong Host header: open the URL semcal printed"})
            return False
        return True

    def _origin_ok(self) -> bool:
        origin = self.headers.get("Origin")
        if origin != f"http://{self.headers.get('Host', '')}":
            self._reply(403, {"error": "a label may only be posted by the label page itself"})
            return False
        return True

    def _body(self) -> tuple[bool, Any]:
        """(True, the POST body as JSON), or (False, None) after replying 400/411/413."""
        raw_len = self.headers.get("Content-Length")
        if raw_len is None or not raw_len.isdigit():
            self._reply(411, {"error": "a POST needs a Content-Length"})
            return False, None
        length = int(raw_len)
        if length > MAX_BODY:
            self._reply(413, {"error": f"body of {length} bytes, more than {MAX_BODY}"})
            return False, None
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            self._reply(400, {"error": "the body must be application/json"})
            return False, None
        try:
            return True, json.loads(self.rfile.read(length).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            self._reply(400, {"error": "the body is not valid JSON"})
            return False, None

    # -- verbs

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if not self._host_ok():
            return
        if self.path in ("/", "/index.html"):
            nonce = secrets.token_urlsafe(16)
            self._send(200, page_html(nonce), "text/html; charset=utf-8", nonce)
        elif self.path == "/api/data":
            self._reply(200, self.server.session.data())
        else:
            self._reply(404, {"error": "not found"})

    def do_POST(self) -> None:  # noqa: N802
        if not self._host_ok() or not self._origin_ok():
            return
        if self.path != "/api/label":
            self._reply(404, {"error": "not found"})
            return
        ok, row = self._body()
        if not ok:
            return
        try:
            entry = self.server.session.save(row)
        except InputError as exc:
            self._reply(400, {"error": str(exc)})
            return
        self._reply(200, {"ok": True, "id": entry.qid, "complete": entry.complete})

    def _reply(self, status: int, obj: Any) -> None:
        if status >= 400:
            self.close_connection = True
        body = json.dumps(obj, ensure_ascii=False).encode("utf-8")
        self._send(status, body, "application/json; charset=utf-8")

    def _send(self, status: int, body: bytes, ctype: str, nonce: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        script = f"'nonce-{nonce}'" if nonce else "'none'"
        self.send_header("Content-Security-Policy",
                         f"default-src 'none'; script-src {script}; style-src 'unsafe-inline'; "
                         "connect-src 'self'; img-src 'none'; base-uri 'none'; "
                         "form-action 'none'; frame-ancestors 'none'")
        self.end_headers()
        self.wfile.write(body)


__all__ = ["MAX_BODY", "LabelServer", "LabelSession", "page_html", "prepare", "sample_ids"]
