"""HTTP within time and size limits: the wall-clock alarm that shuts a request's socket, the
requests adapter whose connections it guards, the retryable statuses, the traffic counters and
the short forms of errors and server messages that failures are reported with."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from semcal.errors import InputError

#: HTTP statuses worth retrying: timeouts, conflicts, rate limits and server errors.
RETRY_STATUS = frozenset({408, 409, 425, 429}) | frozenset(range(500, 600))


@dataclass
class RequestStats:
    """Counters of one sampler's HTTP traffic (thread-safe through the sampler's lock).

    ``attempts``: HTTP requests sent; ``ok``: requests that gave a usable answer;
    ``retries``: attempts that were repeated after a transient failure; ``failures``:
    transient failures by kind ("timeout", "connection", "http 500", "malformed", ...);
    ``gave_up``: calls that ran out of retries; ``n_fallbacks``: requests with ``n > 1``
    answered with fewer choices, so the rest were drawn one by one.
    """

    attempts: int = 0
    ok: int = 0
    retries: int = 0
    gave_up: int = 0
    n_fallbacks: int = 0
    failures: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "attempts": self.attempts,
            "ok": self.ok,
            "retries": self.retries,
            "gave_up": self.gave_up,
            "n_fallbacks": self.n_fallbacks,
            "failures": dict(self.failures),
        }


def _normalize_base_url(base_url: str) -> str:
    url = str(base_url).strip().rstrip("/")
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise InputError(f"base_url must look like http://host:port/v1, got {base_url!r}")
    if parsed.path in ("", "/"):
        url += "/v1"  # the usual mount point of the OpenAI API
    return url


def _server_message(resp: requests.Response, limit: int = 300) -> str:
    """The error message in a server's answer (OpenAI ``{"error": {"message": ...}}`` or text)."""
    try:
        data = resp.json()
    except ValueError:
        data = None
    msg: Any = None
    if isinstance(data, dict):
        err = data.get("error", data.get("detail", data.get("message")))
        if isinstance(err, dict):
            msg = err.get("message") or err
        else:
            msg = err
    if msg is None:
        msg = (resp.text or "").strip() or resp.reason or "(empty body)"
    text = " ".join(str(msg).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Deadline(Exception):
    """The whole request took longer than the sampler's ``deadline``."""


class _TooLarge(Exception):
    """The answer body is larger than ``max_response_bytes``."""


class _Alarm:
    """The wall-clock guard of one request: when its time is up, the request's socket is shut
    down, which ends a read blocked on it at once.

    ``requests``' ``timeout`` bounds each socket read, so a server that sends one header byte
    every half second passes it forever; this bounds the whole wait instead. The answer's
    headers must all arrive within ``header_s`` seconds of the request being sent (and within
    the request's ``deadline``); the body is then guarded up to the ``deadline``. Set by
    :meth:`~semcal.backends.openai.client._HTTPClient._fetch` for the thread that sends the request and armed by
    :class:`_TimedHTTPConnection` once the request is on the wire.
    """

    def __init__(self, start: float, header_s: float, deadline_s: float) -> None:
        self.start = start
        self.header_s = header_s
        self.deadline_s = deadline_s
        self.fired: str | None = None  # what ran out, once the alarm rang
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._sock: Any = None
        self._generation = 0

    def watch(self, sock: Any, seconds: float, what: str) -> None:
        """Shut ``sock`` down in ``seconds`` unless :meth:`watch` or :meth:`clear` comes first."""
        with self._lock:
            self._cancel()
            self._sock = sock
            gen = self._generation
            self._timer = threading.Timer(max(seconds, 0.0), self._ring, (gen, what))
            self._timer.daemon = True
            self._timer.start()

    def headers_left(self) -> float:
        return min(self.header_s, self.deadline_left())

    def deadline_left(self) -> float:
        return self.deadline_s - (time.monotonic() - self.start)

    def clear(self) -> None:
        with self._lock:
            self._cancel()

    def _cancel(self) -> None:
        self._generation += 1  # a ring already under way for the old socket does nothing
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._sock = None

    def _ring(self, generation: int, what: str) -> None:
        with self._lock:
            if generation != self._generation or self._sock is None:
                return
            self.fired = what
            try:  # the plain socket's shutdown, also for TLS: the reader sees end-of-file
                socket.socket.shutdown(self._sock, socket.SHUT_RDWR)
            except OSError:
                pass


#: the alarm of the request the current thread is sending (None: no guard)
_CURRENT = threading.local()


class _TimedConnectionMixin:
    """Arms the current thread's :class:`_Alarm` while the answer's headers are read, then for
    the body until the request's deadline."""

    sock: Any

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        alarm: _Alarm | None = getattr(_CURRENT, "alarm", None)
        if alarm is None or self.sock is None:
            return super().getresponse(*args, **kwargs)  # type: ignore[misc]
        alarm.watch(self.sock, alarm.headers_left(), "headers")
        resp = super().getresponse(*args, **kwargs)  # type: ignore[misc]
        if alarm.fired:  # the headers were cut short by the alarm: not an answer
            raise ConnectionAbortedError("the answer's headers were cut off by the time limit")
        alarm.watch(self.sock, alarm.deadline_left(), "deadline")
        return resp


class _TimedHTTPConnection(_TimedConnectionMixin, HTTPConnection):
    pass


class _TimedHTTPSConnection(_TimedConnectionMixin, HTTPSConnection):
    pass


class _TimedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _TimedHTTPConnection


class _TimedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _TimedHTTPSConnection


class _TimedAdapter(HTTPAdapter):
    """A requests adapter whose connections (direct or through an HTTP proxy) are guarded by
    the current thread's :class:`_Alarm`."""

    _POOLS = {"http": _TimedHTTPPool, "https": _TimedHTTPSPool}

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(self._POOLS)

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kwargs)
        if hasattr(manager, "pool_classes_by_scheme") and not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = dict(self._POOLS)
        return manager


def _short(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
