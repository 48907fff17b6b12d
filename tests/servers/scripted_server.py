"""A tiny OpenAI-compatible HTTP server, run in a thread of the test process, that answers
what the test chooses.

    with ScriptedServer(answer=completion_json("")) as srv:
        OpenAISampler("m", base_url=srv.base_url, ...)

Every ``POST`` (``/v1/completions`` or ``/v1/chat/completions``) gets ``answer(path, body)``
(a callable) or the JSON object ``answer`` as is, with status 200; ``GET /v1/models`` lists
one model. ``trickle_headers=True`` makes every request's answer a status line and headers
sent one byte every ``trickle_s`` seconds, never finished: the server that per-read socket
timeouts cannot stop. ``requests`` counts the requests seen. Only the standard library is
used; the server listens on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def completion_json(texts: list[str] | str, *, chat: bool = False, finish_reason: str = "length",
                    completion_tokens: int | None = 0) -> dict[str, Any]:
    """An OpenAI answer whose choices hold ``texts`` (a chat answer with ``chat=True``)."""
    texts = [texts] if isinstance(texts, str) else texts
    choices = []
    for i, t in enumerate(texts):
        c: dict[str, Any] = {"index": i, "finish_reason": finish_reason}
        if chat:
            c["message"] = {"role": "assistant", "content": t}
        else:
            c["text"] = t
        choices.append(c)
    out: dict[str, Any] = {"object": "chat.completion" if chat else "text_completion",
                           "model": "scripted", "choices": choices}
    if completion_tokens is not None:
        out["usage"] = {"completion_tokens": completion_tokens}
    return out


class ScriptedServer:
    """The server; a context manager that starts it on a free port and stops it."""

    def __init__(self, answer: dict[str, Any] | Callable[[str, dict], dict] | None = None, *,
                 trickle_headers: bool = False, trickle_s: float = 0.5) -> None:
        self.answer = answer if answer is not None else completion_json("Paris", finish_reason="stop")
        self.trickle_headers = trickle_headers
        self.trickle_s = trickle_s
        self.requests = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _send_json(self, data: Any) -> None:
                raw = json.dumps(data).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _trickle(self) -> None:
                head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Slow: " + b"a" * 100_000
                for i in range(len(head)):
                    if server._stop.is_set():
                        return
                    try:
                        self.wfile.write(head[i:i + 1])
                        self.wfile.flush()
                    except OSError:  # the client hung up: done
                        return
                    time.sleep(server.trickle_s)

            def do_GET(self) -> None:
                self._send_json({"object": "list", "data": [{"id": "scripted", "object": "model"}]})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with server._lock:
                    server.requests += 1
                if server.trickle_headers:
                    self._trickle()
                    self.close_connection = True
                    return
                ans = server.answer
                self._send_json(ans(self.path, body) if callable(ans) else ans)

        return Handler
