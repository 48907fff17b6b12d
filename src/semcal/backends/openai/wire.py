"""The JSON of the API: the body of a completion request, and the completions (or the top
log-probabilities) read from an answer. An answer without what was asked for raises
:class:`_Malformed`, which the client counts as a transient failure."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from semcal.backends._chat import finish_completion, messages_as_dicts
from semcal.errors import BackendError
from semcal.types import Completion, Prompt, SamplingParams


class _Malformed(Exception):
    """The server answered 200 but the body is not the JSON we asked for."""


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




def request_body(
    model: str,
    extra_body: Mapping[str, Any],
    prompt: Prompt,
    params: SamplingParams,
    count: int,
    seed: int,
) -> dict[str, Any]:
    """The JSON body asking ``model`` for ``count`` completions of ``prompt`` (``/completions``
    for a text prompt, ``/chat/completions`` for a chat prompt), ``extra_body`` merged last."""
    body: dict[str, Any] = {
        "model": model,
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
    body.update(extra_body)
    return body


def parse_choices(
    data: Any, chat: bool, stop: Sequence[str], want_logprobs: bool
) -> list[Completion]:
    """The completions of an answer, in the order of their ``index``."""
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
    return [_one_choice(c, chat, stop, want_logprobs, total_tokens, len(choices)) for c in choices]


def _one_choice(
    c: dict[str, Any],
    chat: bool,
    stop: Sequence[str],
    want_logprobs: bool,
    total_tokens: int | None,
    n_choices: int,
) -> Completion:
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
            n_tokens = round(total_tokens / n_choices)
        else:
            n_tokens = 0
    try:
        return finish_completion(text, c.get("finish_reason"), stop, tokens, lps, n_tokens)
    except ValueError as exc:  # NaN log-prob
        raise _Malformed(str(exc)) from exc


def parse_top_logprobs(data: Any, chat: bool, k: int, base_url: str) -> dict[str, float]:
    """The ``k`` most likely first tokens of an answer's first choice, ``{token: log-prob}``."""
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise _Malformed("no 'choices' in the answer")
    lp = choices[0].get("logprobs")
    if not isinstance(lp, dict):
        raise BackendError(f"{base_url}: the server returned no log-probabilities")
    top: dict[str, float] = {}
    if chat:
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
        raise BackendError(f"{base_url}: the server returned no top log-probabilities")
    best = sorted(top.items(), key=lambda kv: -kv[1])[:k]
    return dict(best)
