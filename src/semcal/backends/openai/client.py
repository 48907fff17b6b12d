"""One API call with retries: a session per thread, the exchange within its time and size
limits, exponential backoff with jitter (or the server's ``Retry-After``), the failure counters,
and the checks made before sampling (is a server there, which model does it serve)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests
import urllib3

from semcal.backends.openai.transport import (
    _CURRENT,
    RETRY_STATUS,
    RequestStats,
    _Alarm,
    _Deadline,
    _server_message,
    _short,
    _TimedAdapter,
    _TooLarge,
)
from semcal.backends.openai.wire import _Malformed
from semcal.errors import BackendError


class _HTTPClient:
    """The HTTP half of :class:`~semcal.backends.openai.OpenAISampler`: its settings are set
    by the sampler's constructor."""

    base_url: str
    timeout: float
    connect_timeout: float
    deadline: float
    max_response_bytes: int
    max_retries: int
    backoff: float
    max_backoff: float
    stats: RequestStats
    _headers: dict[str, str]
    _lock: threading.Lock
    _local: threading.local
    _sessions: list[requests.Session]
    _closed: bool
    _jitter: random.Random

    def _session(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = requests.Session()
            for prefix in ("http://", "https://"):
                s.mount(prefix, _TimedAdapter())
            s.headers.update(self._headers)
            self._local.session = s
            with self._lock:
                self._sessions.append(s)
        return s

    def _record(self, **kw: int) -> None:
        with self._lock:
            for k, v in kw.items():
                setattr(self.stats, k, getattr(self.stats, k) + v)

    def _delay(self, retry_index: int, retry_after: float | None) -> float:
        d = min(self.max_backoff, self.backoff * (2.0**retry_index))
        d *= 0.5 + 0.5 * self._jitter.random()
        if retry_after is not None:
            d = max(d, min(retry_after, self.max_backoff))
        return d

    def _request(
        self, method: str, path: str, body: Mapping[str, Any] | None, parse: Callable[[Any], Any]
    ) -> Any:
        """Send one API call, retrying transient failures; return ``parse(json)``.

        ``parse`` raises :class:`_Malformed` when the JSON lacks what the caller needs, which
        counts as a transient failure (a proxy or a dying server can truncate a body).
        """
        url = self.base_url + path
        last = "no attempt made"
        retry_after: float | None = None
        attempts = self.max_retries + 1
        for attempt in range(attempts):
            if self._closed:
                raise BackendError(f"{url}: the sampler was closed")
            if attempt:
                self._record(retries=1)
                time.sleep(self._delay(attempt - 1, retry_after))
                retry_after = None
            self._record(attempts=1)
            kind: str
            try:
                resp = self._fetch(method, url, body)
            except _Deadline as exc:
                kind, last = "timeout", str(exc)
            except _TooLarge as exc:
                kind, last = "malformed", str(exc)
            except requests.Timeout as exc:
                kind, last = "timeout", f"no answer within {self.timeout:g} s ({_short(exc, 120)})"
            except requests.ConnectionError as exc:
                kind, last = "connection", f"connection failed ({_short(exc)})"
            except requests.RequestException as exc:  # broken chunked body, bad encoding...
                kind, last = "connection", f"request failed ({_short(exc)})"
            except urllib3.exceptions.ReadTimeoutError as exc:  # while reading the body
                kind, last = "timeout", f"no answer within {self.timeout:g} s ({_short(exc, 120)})"
            except (urllib3.exceptions.HTTPError, OSError) as exc:  # a body cut or undecodable
                kind, last = "connection", f"request failed ({_short(exc)})"
            else:
                status = resp.status_code
                if 200 <= status < 300:
                    try:
                        data = resp.json()
                    except ValueError:
                        snippet = " ".join(resp.text[:80].split())
                        kind, last = "malformed", f"the answer is not valid JSON: {snippet!r}"
                    else:
                        try:
                            result = parse(data)
                        except _Malformed as exc:
                            kind, last = "malformed", f"unexpected JSON: {exc}"
                        else:
                            self._record(ok=1)
                            return result
                elif status in RETRY_STATUS:
                    kind, last = f"http {status}", f"HTTP {status}: {_server_message(resp)}"
                    ra = resp.headers.get("Retry-After")
                    try:
                        retry_after = float(ra) if ra is not None else None
                    except ValueError:
                        retry_after = None
                else:
                    raise BackendError(
                        f"{url} rejected the request: HTTP {status}: {_server_message(resp)}"
                    )
            with self._lock:
                self.stats.failures[kind] += 1
        self._record(gave_up=1)
        raise BackendError(
            f"{url}: giving up after {attempts} attempts ({self.max_retries} retries); "
            f"last failure: {last}"
        )

    def _fetch(self, method: str, url: str, body: Mapping[str, Any] | None) -> requests.Response:
        """One HTTP exchange within its time and size limits: the answer's headers within
        :attr:`timeout` seconds of sending the request, the whole exchange (connecting
        included) within :attr:`deadline`, the decoded body at most :attr:`max_response_bytes`.
        Both times are wall-clock totals, kept by an :class:`_Alarm` that shuts the socket, so
        a server trickling its headers or its body byte by byte is cut off; the body is read as
        it arrives, so a huge answer is never held whole."""
        start = time.monotonic()
        alarm = _Alarm(start, self.timeout, self.deadline)
        _CURRENT.alarm = alarm
        try:
            resp = self._exchange(method, url, body, start)
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            if alarm.fired:
                raise self._late(alarm.fired) from exc
            raise
        finally:
            alarm.clear()
            _CURRENT.alarm = None
        if alarm.fired:  # the body ended at the alarm (a cut that left no error behind)
            raise self._late(alarm.fired)
        return resp

    def _late(self, what: str) -> _Deadline:
        if what == "headers":
            return _Deadline(f"no answer within {min(self.timeout, self.deadline):g} s "
                             f"(the server sent no complete headers)")
        return _Deadline(f"the answer took longer than deadline = {self.deadline:g} s")

    def _exchange(
        self, method: str, url: str, body: Mapping[str, Any] | None, start: float
    ) -> requests.Response:
        resp = self._session().request(
            method, url, json=body, timeout=(self.connect_timeout, self.timeout), stream=True
        )
        try:
            declared = resp.headers.get("Content-Length")
            if declared is not None and declared.strip().isdigit() and (
                int(declared) > self.max_response_bytes
            ):
                raise _TooLarge(f"the answer is {int(declared)} bytes, more than "
                                f"max_response_bytes = {self.max_response_bytes}")
            chunks: list[bytes] = []
            size = 0
            while True:
                if time.monotonic() - start > self.deadline:
                    raise _Deadline(f"the answer took longer than deadline = {self.deadline:g} s")
                chunk = resp.raw.read1(65536, decode_content=True)
                if not chunk:
                    break
                size += len(chunk)
                if size > self.max_response_bytes:
                    raise _TooLarge(f"the answer is more than max_response_bytes = "
                                    f"{self.max_response_bytes} bytes")
                chunks.append(chunk)
            if time.monotonic() - start > self.deadline:
                raise _Deadline(f"the answer took longer than deadline = {self.deadline:g} s")
        except BaseException:
            resp.close()  # the connection is not reused: its remaining bytes are unread
            raise
        resp._content = b"".join(chunks)  # what requests' .json()/.text then read
        resp._content_consumed = True
        resp.close()
        return resp

    def check_server(self) -> None:
        """Raise :class:`BackendError` "the server at URL cannot be reached" unless something
        answers HTTP at :attr:`base_url` (``GET /models``; any status will do).

        A refused or timed-out connection is retried like a request (``max_retries``, with
        backoff), so a server still starting up is waited for. The runner calls this before it
        creates a new run, so a server that is not there leaves no empty run behind.
        """
        url = self.base_url + "/models"
        last = "no attempt made"
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self._delay(attempt - 1, None))
            try:
                self._fetch("GET", url, None)
            except requests.ConnectionError as exc:  # refused, unresolvable, connect timeout
                last = _short(exc)
            except (_Deadline, _TooLarge, requests.RequestException,
                    urllib3.exceptions.HTTPError, OSError):
                return  # it answered, if slowly or oddly: the requests will tell the rest
            else:
                return
        raise BackendError(
            f"the server at {self.base_url} cannot be reached "
            f"({self.max_retries + 1} attempts; {last})"
        )

    def _discover_model(self) -> str:
        def parse(data: Any) -> str:
            items = data.get("data") if isinstance(data, dict) else None
            if not isinstance(items, list) or not items or not isinstance(items[0], dict):
                raise _Malformed("GET /models listed no model")
            ident = items[0].get("id")
            if not isinstance(ident, str) or not ident:
                raise _Malformed("GET /models gave a model without an id")
            return ident

        return self._request("GET", "/models", None, parse)

