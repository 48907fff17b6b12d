"""The sampler: :class:`OpenAISampler` checks its settings, asks for the completions of each
prompt on a thread pool (``n`` at once, or one at a time from a server that ignores ``n``) and
the top log-probabilities of a first token."""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

import requests

from semcal.backends._chat import guess_is_chat
from semcal.backends.base import prompt_seed, sample_seed
from semcal.backends.openai.client import _HTTPClient
from semcal.backends.openai.transport import RequestStats, _normalize_base_url
from semcal.backends.openai.wire import parse_choices, parse_top_logprobs, request_body
from semcal.errors import BackendError, InputError
from semcal.types import Completion, Prompt, SamplingParams, check_n


class OpenAISampler(_HTTPClient):
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

    # ------------------------------------------------------------------ request bodies

    def _body(self, prompt: Prompt, params: SamplingParams, count: int, seed: int) -> dict[str, Any]:
        return request_body(self.model, self.extra_body, prompt, params, count, seed)

    _parse_choices = staticmethod(parse_choices)

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
                return parse_top_logprobs(data, prompt.is_chat, k, self.base_url)

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
