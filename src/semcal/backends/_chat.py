"""Helpers shared by the engine backends: chat rendering, stop-string trimming, finish reasons.

Nothing here imports an optional dependency; the functions take the engine's objects
(a tokenizer's chat template, lists of token strings) as plain arguments.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

from semcal.backends.base import truncate_at_stop
from semcal.backends.chat_template import ChatTemplate
from semcal.errors import BackendError, InputError
from semcal.types import Completion, Prompt

#: Words in a model name that suggest an instruction-tuned (chat) model.
_CHAT_NAME = re.compile(
    r"(instruct|chat|-it\b|_it\b|\bit\b|zephyr|dpo|sft|rlhf|assistant|gpt-[345o]|claude)",
    re.IGNORECASE,
)

#: End-of-turn tokens of common chat templates. Generation of a chat answer ends at any of
#: them even when the model's config names only the document EOS token.
END_OF_TURN_TOKENS = ("<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|end|>", "</s>", "<|endoftext|>")


def guess_is_chat(model: str) -> bool:
    """Guess from a model name whether it is an instruct/chat model (``chat=None`` default).

    The guess only decides which kind of prompt the runner builds; pass ``chat=True/False``
    to a sampler to override it.
    """
    return bool(_CHAT_NAME.search(str(model)))


def messages_as_dicts(prompt: Prompt) -> list[dict[str, str]]:
    """The prompt's chat messages as ``[{"role": ..., "content": ...}, ...]``."""
    return [{"role": m.role, "content": m.content} for m in prompt.messages]


def sandboxed_template(tokenizer: Any) -> ChatTemplate:
    """The tokenizer's chat template in semcal's bounded sandbox (never the tokenizer's own
    ``apply_chat_template``, whose sandbox lets a template build gigabytes), with the variables
    transformers passes: the special tokens, ``tools`` and ``documents``."""
    template = getattr(tokenizer, "chat_template", None)
    if not isinstance(template, str) or not template:
        raise InputError(
            "this model's tokenizer has no chat template, so chat prompts cannot be rendered; "
            "use a base-model (text) prompt or pass chat=False")
    tokens = dict(getattr(tokenizer, "special_tokens_map", None) or {})
    bos, eos = tokens.get("bos_token"), tokens.get("eos_token")
    return ChatTemplate(template, bos_token=bos if isinstance(bos, str) else "",
                        eos_token=eos if isinstance(eos, str) else "",
                        variables={**tokens, "tools": None, "documents": None})


def render_chat(template: ChatTemplate | None, prompt: Prompt, model_name: str = "") -> str:
    """Render a chat prompt with a sandboxed chat template (:func:`sandboxed_template`) and
    the generation prompt, then append the assistant prefix. Text prompts are returned as they
    are. A template that rejects a system turn (Gemma) gets it folded into the first user turn.
    A bound of the sandbox is one :class:`InputError`; any other failure a :class:`BackendError`.
    """
    if not prompt.is_chat:
        return prompt.text
    if template is None:
        raise InputError("a chat prompt needs the model's chat template")
    messages = messages_as_dicts(prompt)
    try:
        try:
            return template.render(messages) + prompt.assistant_prefix
        except InputError:
            raise
        except Exception:
            if not messages or messages[0]["role"] != "system":
                raise
            system, rest = messages[0]["content"], messages[1:]
            if rest and rest[0]["role"] == "user":
                rest = [{"role": "user", "content": f"{system}\n\n{rest[0]['content']}"}, *rest[1:]]
            return template.render(rest) + prompt.assistant_prefix
    except InputError as exc:  # a bound of the sandbox (semcal.backends.chat_template)
        raise type(exc)(f"model {model_name!r}: {exc}" if model_name else str(exc)) from None
    except Exception as exc:  # jinja2 errors and the template's raise_exception
        raise BackendError(f"the chat template failed: {exc}") from exc


def normalize_finish_reason(reason: Any) -> str:
    """Map an engine's finish reason to ``"stop"`` or ``"length"``."""
    r = str(reason or "").lower()
    if r in ("length", "max_tokens", "max_length", "model_length"):
        return "length"
    return "stop"


def clean_logprob(x: Any) -> float:
    """A finite-or-minus-infinity log-probability <= 0 (tiny positive rounding is clamped)."""
    v = float(x)
    if math.isnan(v):
        raise ValueError("log-probability is NaN")
    return min(v, 0.0)


def trim_tokens(
    tokens: Sequence[str], logprobs: Sequence[float], n_chars: int
) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """Keep the shortest prefix of ``tokens`` whose concatenated text covers ``n_chars`` characters.

    Used after a stop string was cut off client-side: the tokens that only spell the stop
    string (or lie after it) are dropped together with their log-probabilities.
    """
    total = 0
    keep = 0
    for piece in tokens:
        if total >= n_chars:
            break
        total += len(piece)
        keep += 1
    return tuple(tokens[:keep]), tuple(logprobs[:keep])


def trim_ids_by_decode(ids: Sequence[int], decode: Callable[[Sequence[int]], str], n_chars: int) -> int:
    """Smallest k such that ``decode(ids[:k])`` has at least ``n_chars`` characters.

    Exact for tokenizers whose pieces merge into the text (byte-level BPE, SentencePiece),
    where per-token strings do not add up to the decoded text.
    """
    if n_chars <= 0:
        return 0
    lo, hi = 1, len(ids)
    if len(decode(ids)) < n_chars:
        return len(ids)
    while lo < hi:  # decoded length grows with k, so bisect
        mid = (lo + hi) // 2
        if len(decode(ids[:mid])) >= n_chars:
            hi = mid
        else:
            lo = mid + 1
    return lo


def finish_completion(
    text: str,
    finish_reason: Any,
    stop: Sequence[str],
    tokens: Sequence[str] | None,
    logprobs: Sequence[float] | None,
    n_tokens: int | None = None,
) -> Completion:
    """Build a :class:`Completion`, cutting ``text`` at the first stop string if the engine did not.

    ``tokens``/``logprobs`` are the generated token strings and their log-probabilities
    (both or neither). When the tokens spell more than the (cut) text they are trimmed to
    the shortest prefix that covers it, so a token straddling a stop string is kept.
    ``n_tokens`` defaults to the number of tokens.
    """
    cut, stopped = truncate_at_stop(text, stop)
    reason = "stop" if stopped else normalize_finish_reason(finish_reason)
    toks: tuple[str, ...] | None = None
    lps: tuple[float, ...] | None = None
    trimmed = False
    if tokens is not None and logprobs is not None:
        toks, lps = tuple(tokens), tuple(clean_logprob(x) for x in logprobs)
        joined = "".join(toks)
        if len(joined) > len(cut) and joined.startswith(cut):
            # the tokens spell more than the text (a stop string cut here or by the server,
            # or a visible EOS token): keep the shortest prefix that covers the text
            toks, lps = trim_tokens(toks, lps, len(cut))
            trimmed = True
    if n_tokens is None or trimmed:
        n_tokens = len(toks) if toks is not None else (n_tokens or 0)
    return Completion(
        text=cut, finish_reason=reason, n_tokens=int(n_tokens), token_logprobs=lps, tokens=toks
    )
