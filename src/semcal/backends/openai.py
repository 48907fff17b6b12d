"""Sampling from any OpenAI-compatible HTTP server (vLLM, llama.cpp, TGI, Ollama, hosted APIs).

Text prompts go to ``POST {base_url}/completions``, chat prompts to
``POST {base_url}/chat/completions``. Requests run on a small thread pool; each one is
retried with exponential backoff and jitter when the server is unreachable, times out,
answers 408/409/425/429/5xx or sends a body that is not the expected JSON. A 4xx answer
(a bad request, a wrong model name, a missing key) fails at once with the server's message.

Only ``requests`` is needed (a core dependency of semcal).
"""

from __future__ import annotations

import os
import random
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from semcal.backends._chat import finish_completion, guess_is_chat, messages_as_dicts
from semcal.backends.base import prompt_seed, sample_seed
from semcal.errors import BackendError, InputError
from semcal.types import Completion, Prompt, SamplingParams, check_n

#: HTTP statuses worth retrying: timeouts, conflicts, rate limits and server errors.
RETRY_STATUS = frozenset({408, 409, 425, 429}) | frozenset(range(500, 600))


class _Malformed(Exception):
    """The server answered 200 but the body is not the JSON we asked for."""


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
    :meth:`OpenAISampler._fetch` for the thread that sends the request and armed by
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


#: a usage count above this is not believed (it would not fit the store's integers anyway)
MAX_USAGE_TOKENS = 2**31 - 1
_SURROGATE = re.compile("[\ud800-\udfff]")


def _clean_text(text: str) -> str:
    """A server's text made storable: lone surrogates (invalid in UTF-8) become U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)


def _as_float_list(values: Any) -> list[float] | None:
    if not isinstance(values, list):
        return None
    out: list[float] = []
    for v in values:
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            return None
        out.append(float(v))
    return out


class OpenAISampler:
    """A :class:`~semcal.backends.base.Sampler` talking to an OpenAI-compatible server.

    Parameters
    ----------
    model:
        The model name the server knows (``"model"`` field of each request). ``"auto"`` asks
        the server's ``GET /models`` and uses the first model listed.
    base_url:
        The API root, e.g. ``http://127.0.0.1:8000/v1`` (vLLM), ``http://127.0.0.1:8080/v1``
        (llama.cpp), ``http://127.0.0.1:11434/v1`` (Ollama). A URL without a path gets ``/v1``.
    api_key:
        Sent as ``Authorization: Bearer <key>``; defaults to ``$OPENAI_API_KEY`` (none if unset).
    chat:
        Whether the model expects chat messages (sets :attr:`is_chat`, which tells the runner
        which kind of prompt to build). ``None`` guesses from the model name. Whatever its
        value, text prompts go to ``/completions`` and chat prompts to ``/chat/completions``.
    concurrency:
        Requests in flight at once (size of the thread pool).
    timeout:
        Seconds to wait for the server's answer: its headers must all arrive within
        ``timeout`` seconds of sending the request (a wall-clock total, so a server that
        trickles its headers byte by byte is cut off too), and each later read of the body
        within ``timeout``. ``connect_timeout`` (default ``min(timeout, 10)``) bounds opening
        the connection.
    deadline:
        Most seconds one request may take from sending it to the last byte of the answer
        (default ``max(60, 5 * timeout)``): a server that trickles its answer byte by byte
        passes every per-read ``timeout`` but not this. Counted as a timeout (retried).
    max_response_bytes:
        Largest answer body accepted (default 16 MiB, after decompression); a larger one is
        a malformed answer (retried, then :class:`BackendError`), never stored.
    max_retries:
        Transient failures tolerated per request before :class:`BackendError` is raised.
    backoff, max_backoff:
        The k-th retry waits ``min(max_backoff, backoff * 2**k)`` seconds times a random
        factor in [0.5, 1] (or the server's ``Retry-After``, capped at ``max_backoff``).
    n_mode:
        ``"auto"`` asks for ``n`` choices in one request and, if the server returns fewer
        (llama.cpp and Ollama ignore ``n``), draws the missing ones one request each from then
        on; ``"native"`` always asks for ``n``; ``"separate"`` always sends one request per
        sample. Sample ``i`` of a one-per-request draw uses seed ``sample_seed(prompt_seed(seed, prompt), i)``; a
        request for samples ``[s, s+k)`` uses the seed of sample ``s``.
    max_n:
        Most choices asked for in one request (larger ``n`` is split into chunks).
    headers, extra_body:
        Extra HTTP headers, and extra JSON fields merged into every request body (e.g.
        ``{"top_k": 0}`` or vLLM's ``{"min_tokens": 1}``).

    Notes
    -----
    Token log-probabilities are whatever the server reports for the sampled tokens. vLLM
    reports the model's raw distribution by default; hosted APIs may report the processed one.
    """

    def __init__(
        self,
        model: str,
        base_url: str = "http://127.0.0.1:8000/v1",
        api_key: str | None = None,
        chat: bool | None = None,
        concurrency: int = 8,
        timeout: float = 60.0,
        max_retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 20.0,
        connect_timeout: float | None = None,
        deadline: float | None = None,
        max_response_bytes: int = 16 * 2**20,
        n_mode: str = "auto",
        max_n: int = 64,
        headers: Mapping[str, str] | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(concurrency, int) or concurrency < 1:
            raise InputError(f"concurrency must be an integer >= 1, got {concurrency!r}")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise InputError(f"max_retries must be an integer >= 0, got {max_retries!r}")
        if not (isinstance(timeout, (int, float)) and timeout > 0):
            raise InputError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if deadline is not None and not (
            isinstance(deadline, (int, float)) and not isinstance(deadline, bool) and deadline > 0
        ):
            raise InputError(f"deadline must be a positive number of seconds, got {deadline!r}")
        if isinstance(max_response_bytes, bool) or not isinstance(max_response_bytes, int) or not (
            1024 <= max_response_bytes <= 2**31
        ):
            raise InputError(
                f"max_response_bytes must be an integer in [1024, 2^31], got {max_response_bytes!r}"
            )
        if n_mode not in ("auto", "native", "separate"):
            raise InputError(f"n_mode must be 'auto', 'native' or 'separate', got {n_mode!r}")
        if not isinstance(max_n, int) or max_n < 1:
            raise InputError(f"max_n must be an integer >= 1, got {max_n!r}")
        if backoff < 0 or max_backoff < 0:
            raise InputError("backoff and max_backoff must be >= 0")
        self.base_url = _normalize_base_url(base_url)
        self.concurrency = concurrency
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout) if connect_timeout else min(self.timeout, 10.0)
        self.deadline = float(deadline) if deadline is not None else max(60.0, 5 * self.timeout)
        self.max_response_bytes = max_response_bytes
        self.max_retries = max_retries
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.n_mode = n_mode
        self.max_n = max_n
        self.extra_body = dict(extra_body or {})
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self._headers = {"Content-Type": "application/json", **dict(headers or {})}
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        self.stats = RequestStats()
        self._lock = threading.Lock()
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._pool: ThreadPoolExecutor | None = None
        self._closed = False
        #: None = not known yet; False once the server returned fewer choices than asked
        self._native_n: bool | None = None if n_mode == "auto" else n_mode == "native"
        self._jitter = random.Random()
        if not model or model == "auto":
            model = self._discover_model()
        self.model = str(model)
        self.model_name = self.model
        self.is_chat = guess_is_chat(self.model) if chat is None else bool(chat)

    # ------------------------------------------------------------------ HTTP with retries

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

    # ------------------------------------------------------------------ request bodies

    def _body(self, prompt: Prompt, params: SamplingParams, count: int, seed: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": params.max_tokens,
            "temperature": float(params.temperature),
            "top_p": float(params.top_p),
            "n": count,
            "seed": seed,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if prompt.is_chat:
            messages = messages_as_dicts(prompt)
            if prompt.assistant_prefix:
                # continue a partial answer (vLLM's extension; other servers may ignore it)
                messages.append({"role": "assistant", "content": prompt.assistant_prefix})
                body["continue_final_message"] = True
                body["add_generation_prompt"] = False
            body["messages"] = messages
            if params.logprobs:
                body["logprobs"] = True
                body["top_logprobs"] = 1  # llama.cpp's server returns no log-probs with 0
        else:
            body["prompt"] = prompt.text
            if params.logprobs:
                body["logprobs"] = 1  # the sampled token's log-prob (+ the top-1 alternative)
        body.update(self.extra_body)
        return body

    # ------------------------------------------------------------------ response parsing

    @staticmethod
    def _parse_choices(
        data: Any, chat: bool, stop: Sequence[str], want_logprobs: bool
    ) -> list[Completion]:
        if not isinstance(data, dict):
            raise _Malformed("the answer is not a JSON object")
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices:
            raise _Malformed("no 'choices' in the answer")
        if not all(isinstance(c, dict) for c in choices):
            raise _Malformed("a choice is not an object")
        choices = sorted(choices, key=lambda c: c.get("index", 0) if isinstance(c.get("index"), int) else 0)
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        total_tokens = usage.get("completion_tokens")
        if not (isinstance(total_tokens, int) and 0 <= total_tokens <= MAX_USAGE_TOKENS):
            total_tokens = None  # absent, or a count no engine produces: not trusted
        out: list[Completion] = []
        for c in choices:
            if chat:
                msg = c.get("message")
                if not isinstance(msg, dict):
                    raise _Malformed("a chat choice has no 'message'")
                text = msg.get("content")
            else:
                text = c.get("text")
            if not isinstance(text, str):  # missing or null: not an (empty) answer
                raise _Malformed("a choice has no text" if not chat else "a chat choice has no content")
            text = _clean_text(text)
            tokens: list[str] | None = None
            lps: list[float] | None = None
            lp = c.get("logprobs")
            if want_logprobs and isinstance(lp, dict):
                if chat:
                    content = lp.get("content")
                    if isinstance(content, list) and all(isinstance(t, dict) for t in content):
                        tokens = [_clean_text(str(t.get("token", ""))) for t in content]
                        lps = _as_float_list([t.get("logprob") for t in content])
                else:
                    raw_tokens = lp.get("tokens")
                    if isinstance(raw_tokens, list):
                        tokens = [_clean_text(str(t)) for t in raw_tokens]
                        lps = _as_float_list(lp.get("token_logprobs"))
                if lps is None or tokens is None or len(lps) != len(tokens):
                    tokens = lps = None
            n_tokens: int | None = None
            if tokens is None:
                if total_tokens is not None:
                    # exact for one choice; an even share when the server pooled the usage
                    n_tokens = round(total_tokens / len(choices))
                else:
                    n_tokens = 0
            try:
                out.append(finish_completion(text, c.get("finish_reason"), stop, tokens, lps, n_tokens))
            except ValueError as exc:  # NaN log-prob
                raise _Malformed(str(exc)) from exc
        return out

    # ------------------------------------------------------------------ sampling

    def _draw(
        self, prompt: Prompt, params: SamplingParams, start: int, count: int
    ) -> list[Completion]:
        """Samples ``[start, start+count)`` of one prompt, as many as the server gives (>= 1)."""
        if count > 1 and self._native_n is False:
            count = 1
        seed = sample_seed(prompt_seed(params.seed, prompt), start)
        body = self._body(prompt, params, count, seed)
        path = "/chat/completions" if prompt.is_chat else "/completions"
        got = self._request(
            "POST",
            path,
            body,
            lambda data: self._parse_choices(data, prompt.is_chat, params.stop, params.logprobs),
        )
        if count > 1:
            if len(got) < count:
                self._record(n_fallbacks=1)
                if self.n_mode == "auto":
                    self._native_n = False
            elif self.n_mode == "auto" and self._native_n is None:
                self._native_n = True
        return got[:count]

    def _executor(self) -> ThreadPoolExecutor:
        if self._closed:
            raise BackendError("the sampler was closed")
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=self.concurrency, thread_name_prefix="semcal-openai"
            )
        return self._pool

    def sample(
        self, prompts: Sequence[Prompt], n: int, params: SamplingParams
    ) -> list[list[Completion]]:
        """Draw ``n`` completions for each prompt; returns ``len(prompts)`` lists of ``n``.

        With ``params.temperature == 0`` one greedy completion is requested per prompt and
        repeated ``n`` times.
        """
        check_n(n)
        prompts = list(prompts)
        for p in prompts:
            if not isinstance(p, Prompt):
                raise InputError(f"expected a Prompt, got {type(p).__name__}")
        n_draw = 1 if params.greedy else n
        results: list[list[Completion | None]] = [[None] * n_draw for _ in prompts]
        pool = self._executor()
        pending: dict[Future, tuple[int, int, int]] = {}

        def submit(j: int, start: int, count: int) -> None:
            fut = pool.submit(self._draw, prompts[j], params, start, count)
            pending[fut] = (j, start, count)

        step = 1 if self._native_n is False else self.max_n
        for j in range(len(prompts)):
            for start in range(0, n_draw, step):
                submit(j, start, min(step, n_draw - start))
        try:
            while pending:
                done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for fut in done:
                    j, start, count = pending.pop(fut)
                    got = fut.result()  # BackendError propagates
                    for k, comp in enumerate(got):
                        results[j][start + k] = comp
                    # the server gave fewer choices than asked: draw the rest one by one
                    for i in range(start + len(got), start + count):
                        submit(j, i, 1)
        except BaseException:
            for fut in pending:
                fut.cancel()
            raise
        out: list[list[Completion]] = []
        for row in results:
            done_row = [c for c in row if c is not None]
            if len(done_row) != n_draw:  # pragma: no cover - guarded by the loop above
                raise BackendError(f"{self.base_url}: missing samples")
            out.append(done_row * n if params.greedy else done_row)
        return out

    def next_token_logprobs(self, prompts: Sequence[Prompt], k: int = 5) -> list[dict[str, float]]:
        """Top-``k`` log-probabilities of the first generated token of each prompt.

        Returns one ``{token string: log-prob}`` dict per prompt (at most ``k`` entries;
        servers cap ``k``, OpenAI at 20).
        """
        if not isinstance(k, int) or k < 1:
            raise InputError(f"k must be an integer >= 1, got {k!r}")
        params = SamplingParams(temperature=0.0, max_tokens=1, logprobs=True)

        def one(prompt: Prompt) -> dict[str, float]:
            body = self._body(prompt, params, 1, 0)
            if prompt.is_chat:
                body["top_logprobs"] = k
            else:
                body["logprobs"] = k

            def parse(data: Any) -> dict[str, float]:
                choices = data.get("choices") if isinstance(data, dict) else None
                if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
                    raise _Malformed("no 'choices' in the answer")
                lp = choices[0].get("logprobs")
                if not isinstance(lp, dict):
                    raise BackendError(f"{self.base_url}: the server returned no log-probabilities")
                top: dict[str, float] = {}
                if prompt.is_chat:
                    content = lp.get("content")
                    if isinstance(content, list) and content and isinstance(content[0], dict):
                        for t in content[0].get("top_logprobs") or []:
                            if isinstance(t, dict) and isinstance(t.get("logprob"), (int, float)):
                                top[str(t.get("token", ""))] = min(float(t["logprob"]), 0.0)
                else:
                    tl = lp.get("top_logprobs")
                    if isinstance(tl, list) and tl and isinstance(tl[0], dict):
                        for tok, v in tl[0].items():
                            if isinstance(v, (int, float)):
                                top[str(tok)] = min(float(v), 0.0)
                if not top:
                    raise BackendError(f"{self.base_url}: the server returned no top log-probabilities")
                best = sorted(top.items(), key=lambda kv: -kv[1])[:k]
                return dict(best)

            path = "/chat/completions" if prompt.is_chat else "/completions"
            return self._request("POST", path, body, parse)

        pool = self._executor()
        return list(pool.map(one, list(prompts)))

    #: a server does not say its context; it answers for itself (HTTP 400 for a prompt too long)
    context_length: int | None = None

    def count_tokens(self, prompt: Prompt) -> int | None:
        """Unknown over the API (no tokenizer here): None."""
        return None

    def close(self) -> None:
        """Stop the thread pool and close the HTTP connections (idempotent)."""
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for s in sessions:
            s.close()

    def __enter__(self) -> OpenAISampler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"OpenAISampler(model={self.model!r}, base_url={self.base_url!r})"
