"""A fault-injecting OpenAI-compatible HTTP server for semcal's backend tests.

Run as a subprocess on loopback::

    python tests/servers/fault_server.py --port 0 [--upstream http://127.0.0.1:PORT/v1]
        [--faults 500,hang,ok,...] [--die-after K] [--hang-seconds 30] [--ignore-n]

It prints ``READY <port>`` on stdout once it listens. Every API request (any path not
starting with ``/_``) takes the next fault from the queue (``ok`` once the queue is empty)
and is answered accordingly:

``ok``         forward to ``--upstream`` (a real server) or, without one, answer with a
               synthetic OpenAI JSON body (deterministic text derived from prompt and seed)
``500``/``502``/``503``  a server error with an OpenAI-style error body
``429``        "rate limited" with ``Retry-After: 0``
``400``        a client error (must NOT be retried by the client)
``hang``       accept the request, then say nothing for ``--hang-seconds``
``garbage``    200 with a body that is not JSON
``truncated``  200 with the first half of a valid JSON answer
``badshape``   200 with valid JSON that lacks ``choices``
``reset``      close the connection without answering
``die``        exit the process at once (os._exit) while the request is open
``huge``       200 with a valid answer whose text is 20 MB (Content-Length says so)
``hugechunked`` the same, sent chunked (no Content-Length)
``trickle``    200 with a valid answer sent one byte every 0.5 s

``--die-after K`` makes the process exit when request K+1 arrives (a server that dies
mid-run). Control endpoints: ``GET /_health``, ``GET /_stats`` (requests served and faults
injected), ``POST /_faults`` with ``{"faults": [...]}`` to replace the queue.
Only the standard library is used.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULTS = ("ok", "500", "502", "503", "429", "400", "hang", "garbage", "truncated", "badshape", "reset", "die",
          "nulltext", "surrogate", "hugeusage", "huge", "hugechunked", "trickle")


class State:
    def __init__(self, faults: list[str], upstream: str | None, die_after: int | None,
                 hang_seconds: float, ignore_n: bool) -> None:
        self.lock = threading.Lock()
        self.queue: deque[str] = deque(faults)
        self.upstream = upstream.rstrip("/") if upstream else None
        self.die_after = die_after
        self.hang_seconds = hang_seconds
        self.ignore_n = ignore_n
        self.requests = 0
        self.injected: Counter[str] = Counter()

    def next_fault(self) -> str:
        with self.lock:
            self.requests += 1
            if self.die_after is not None and self.requests > self.die_after:
                return "die"
            fault = self.queue.popleft() if self.queue else "ok"
            self.injected[fault] += 1
            return fault


def _synthetic(path: str, body: dict) -> dict:
    """A deterministic OpenAI-style answer: the text depends on prompt, seed and choice index."""
    chat = path.endswith("/chat/completions")
    source = json.dumps(body.get("messages") if chat else body.get("prompt"), sort_keys=True)
    n = int(body.get("n") or 1)
    seed = body.get("seed", 0)
    choices = []
    for i in range(n):
        digest = hashlib.sha256(f"{source}|{seed}|{i}".encode()).hexdigest()
        words = [f"w{digest[k:k + 3]}" for k in range(0, 15, 3)]
        tokens = [" " + w for w in words][: int(body.get("max_tokens") or 16)]
        text = "".join(tokens)
        lps = [-(int(digest[k], 16) + 1) / 8 for k in range(len(tokens))]
        if chat:
            choice = {"index": i, "message": {"role": "assistant", "content": text},
                      "finish_reason": "length"}
            if body.get("logprobs"):
                choice["logprobs"] = {"content": [{"token": t, "logprob": lp, "top_logprobs": []}
                                                  for t, lp in zip(tokens, lps)]}
        else:
            choice = {"index": i, "text": text, "finish_reason": "length"}
            if body.get("logprobs"):
                choice["logprobs"] = {"tokens": tokens, "token_logprobs": lps,
                                      "top_logprobs": [{t: lp} for t, lp in zip(tokens, lps)],
                                      "text_offset": []}
        choices.append(choice)
    return {"id": "fault-server", "object": "chat.completion" if chat else "text_completion",
            "model": body.get("model", "synthetic"), "choices": choices,
            "usage": {"completion_tokens": 5 * n}}


def make_handler(state: State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt: str, *args: object) -> None:  # keep test output quiet
            pass

        def _send(self, status: int, payload: bytes, ctype: str = "application/json",
                  headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(payload)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()

        def _json(self, status: int, obj: object, headers: dict[str, str] | None = None) -> None:
            self._send(status, json.dumps(obj).encode(), headers=headers)

        def _read_body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _answer_ok(self, raw: bytes) -> None:
            if state.upstream:
                path = self.path
                if path.startswith("/v1/"):
                    path = path[3:]
                req = urllib.request.Request(state.upstream + path, data=raw or None,
                                             method=self.command,
                                             headers={"Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(req, timeout=300) as resp:
                        self._send(resp.status, resp.read())
                except urllib.error.HTTPError as err:
                    self._send(err.code, err.read())
                except OSError as err:  # upstream down: behave like a bad gateway
                    self._json(502, {"error": {"message": f"upstream unreachable: {err}"}})
                return
            if self.command == "GET" and self.path.rstrip("/").endswith("/models"):
                self._json(200, {"object": "list", "data": [{"id": "synthetic", "object": "model"}]})
                return
            body = json.loads(raw or b"{}")
            if state.ignore_n:
                body["n"] = 1
            self._json(200, _synthetic(self.path, body))

        def _api(self) -> None:
            raw = self._read_body()
            fault = state.next_fault()
            if fault == "ok":
                self._answer_ok(raw)
            elif fault in ("500", "502", "503"):
                self._json(int(fault), {"error": {"message": f"injected server error {fault}"}})
            elif fault == "429":
                self._json(429, {"error": {"message": "injected rate limit"}}, {"Retry-After": "0"})
            elif fault == "400":
                self._json(400, {"error": {"message": "injected bad request: unknown field 'foo'"}})
            elif fault == "hang":
                time.sleep(state.hang_seconds)
                self.close_connection = True
            elif fault == "garbage":
                self._send(200, b"<html>502 proxy error</html> not json {{{")
            elif fault == "truncated":
                full = json.dumps(_synthetic(self.path, json.loads(raw or b"{}"))).encode()
                self._send(200, full[: len(full) // 2])
            elif fault in ("nulltext", "surrogate", "hugeusage"):
                # a 200 answer with one bad field: no text (null), a lone surrogate in the text,
                # or a token count no engine produces
                data = _synthetic(self.path, json.loads(raw or b"{}"))
                for c in data["choices"]:
                    field = c["message"] if "message" in c else c
                    key = "content" if "message" in c else "text"
                    if fault == "nulltext":
                        field[key] = None
                    elif fault == "surrogate":
                        field[key] = "bad \ud800 text"
                        c.pop("logprobs", None)
                if fault == "hugeusage":
                    for c in data["choices"]:
                        c.pop("logprobs", None)
                    data["usage"] = {"completion_tokens": 10**30}
                self._json(200, data)
            elif fault in ("huge", "hugechunked", "trickle"):
                data = _synthetic(self.path, json.loads(raw or b"{}"))
                if fault != "trickle":
                    for c in data["choices"]:
                        field = c["message"] if "message" in c else c
                        field["content" if "message" in c else "text"] = "x" * 20_000_000
                        c.pop("logprobs", None)
                payload = json.dumps(data).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if fault == "hugechunked":
                    self.send_header("Transfer-Encoding", "chunked")
                else:
                    self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                try:
                    if fault == "hugechunked":
                        for k in range(0, len(payload), 1 << 20):
                            part = payload[k:k + (1 << 20)]
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                        self.wfile.write(b"0\r\n\r\n")
                    elif fault == "huge":
                        self.wfile.write(payload)
                    else:
                        for k in range(len(payload)):
                            self.wfile.write(payload[k:k + 1])
                            self.wfile.flush()
                            time.sleep(0.5)
                except OSError:  # the client hung up, as it should
                    self.close_connection = True
            elif fault == "badshape":
                self._json(200, {"object": "error", "message": "model is loading"})
            elif fault == "reset":
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            elif fault == "die":
                sys.stdout.flush()
                os._exit(3)
            else:  # pragma: no cover - validated at start-up
                self._json(500, {"error": {"message": f"unknown fault {fault}"}})

        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            if self.path == "/_health":
                self._json(200, {"ok": True})
            elif self.path == "/_stats":
                with state.lock:
                    self._json(200, {"requests": state.requests, "injected": dict(state.injected),
                                     "queued": list(state.queue)})
            else:
                self._api()

        def do_POST(self) -> None:  # noqa: N802
            if self.path == "/_faults":
                faults = json.loads(self._read_body() or b"{}").get("faults", [])
                bad = [f for f in faults if f not in FAULTS]
                if bad:
                    self._json(400, {"error": {"message": f"unknown faults {bad}"}})
                    return
                with state.lock:
                    state.queue = deque(faults)
                self._json(200, {"queued": len(faults)})
            else:
                self._api()

    return Handler


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--upstream", default=None, help="real OpenAI-compatible API root to forward 'ok' to")
    ap.add_argument("--faults", default="", help="comma-separated fault queue")
    ap.add_argument("--die-after", type=int, default=None)
    ap.add_argument("--hang-seconds", type=float, default=30.0)
    ap.add_argument("--ignore-n", action="store_true", help="synthetic answers hold one choice")
    args = ap.parse_args(argv)
    faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    bad = [f for f in faults if f not in FAULTS]
    if bad:
        ap.error(f"unknown faults {bad}; known: {', '.join(FAULTS)}")
    state = State(faults, args.upstream, args.die_after, args.hang_seconds, args.ignore_n)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(state))
    server.daemon_threads = True
    print(f"READY {server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
