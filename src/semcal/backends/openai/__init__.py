"""Sampling from any OpenAI-compatible HTTP server (vLLM, llama.cpp, TGI, Ollama, hosted APIs).

Text prompts go to ``POST {base_url}/completions``, chat prompts to
``POST {base_url}/chat/completions``. Requests run on a small thread pool; each one is
retried with exponential backoff and jitter when the server is unreachable, times out,
answers 408/409/425/429/5xx or sends a body that is not the expected JSON. A 4xx answer
(a bad request, a wrong model name, a missing key) fails at once with the server's message.

Only ``requests`` is needed (a core dependency of semcal).

The package is in three rooms and the sampler that joins them:

* ``transport``: HTTP within time and size limits (the wall-clock ``_Alarm`` and the adapter
  whose connections it guards), ``RETRY_STATUS``, ``RequestStats``;
* ``wire``: the JSON of a request (``request_body``) and of an answer (``parse_choices``,
  ``parse_top_logprobs``; ``_Malformed`` when it lacks what was asked for);
* ``client``: one API call with retries and backoff (``_HTTPClient``), ``check_server``;
* ``sampler``: ``OpenAISampler``, the settings and the thread pool that draws the samples.
"""

from __future__ import annotations

# every name of the former single module stays importable from here
from semcal.backends.openai.client import _HTTPClient  # noqa: F401
from semcal.backends.openai.sampler import OpenAISampler
from semcal.backends.openai.transport import (  # noqa: F401
    _CURRENT,
    RETRY_STATUS,
    RequestStats,
    _Alarm,
    _Deadline,
    _normalize_base_url,
    _server_message,
    _short,
    _TimedAdapter,
    _TooLarge,
)
from semcal.backends.openai.wire import (  # noqa: F401
    MAX_USAGE_TOKENS,
    _as_float_list,
    _clean_text,
    _Malformed,
    parse_choices,
    parse_top_logprobs,
    request_body,
)

__all__ = [
    "MAX_USAGE_TOKENS",
    "RETRY_STATUS",
    "OpenAISampler",
    "RequestStats",
    "parse_choices",
    "parse_top_logprobs",
    "request_body",
]

