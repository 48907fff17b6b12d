"""Sampling with vLLM's offline engine (GPU, multi-GPU, multi-node), extra ``semcal[vllm]``.

All prompts of a call go to the engine at once; each asks for ``n`` samples through
``vllm.SamplingParams(n=...)``, so vLLM shares the prompt's prefill among them, and prefix
caching (on by default) shares the few-shot preamble across questions.

Parallelism: ``tensor_parallel_size`` splits each layer over GPUs of one node;
``pipeline_parallel_size`` splits the layers over stages (usually nodes). For more than one
node, start a Ray cluster first (``ray start --head`` on one node, ``ray start
--address=HEAD:6379`` on the others) and pass ``distributed_executor_backend="ray"``; see
docs/backends.md.

Log-probabilities: ``logprobs=1`` makes vLLM return, at each step, the log-probability of
the sampled token. The V1 engine computes them from the model's raw logits by default
(``logprobs_mode="raw_logprobs"``, before temperature/top-p), the unmodified distribution
that :class:`~semcal.types.Completion` promises; old V0 releases apply temperature and
penalties first (identical at temperature 1, top-p 1).

vLLM on GPU is not bit-deterministic: a seed fixes the random draws, but batch composition
and kernels can change logits in the last bits, so a rerun may differ in rare tokens.

The pure conversion helpers (:func:`vllm_sampling_kwargs`, :func:`completion_from_vllm`,
:func:`top_logprobs_from_vllm`) need no vLLM and are unit-tested with small fakes.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Mapping, Sequence
from typing import Any

from semcal.backends._chat import (
    finish_completion,
    guess_is_chat,
    render_chat,
    sandboxed_template,
    trim_tokens,
)
from semcal.backends.base import prompt_seed, sample_seed
from semcal.backends.chat_template import ChatTemplate
from semcal.errors import BackendError, InputError, require
from semcal.types import Completion, Prompt, SamplingParams, check_n


def _import_vllm() -> Any:
    return require("vllm", "the vLLM backend", "vllm")


# ---------------------------------------------------------------------------------------------
# pure conversions (no vLLM needed)
# ---------------------------------------------------------------------------------------------


def vllm_sampling_kwargs(params: SamplingParams, n: int, seed: int) -> dict[str, Any]:
    """Keyword arguments of ``vllm.SamplingParams`` for ``n`` samples of one prompt.

    Temperature 0 is greedy (vLLM requires ``n == 1`` then; the caller repeats the result).
    ``logprobs=1`` asks for the sampled token's log-probability at every step.
    """
    check_n(n)
    if params.greedy and n != 1:
        raise InputError("greedy decoding (temperature 0) draws one sample; ask for n=1")
    kw: dict[str, Any] = {
        "n": n,
        "temperature": float(params.temperature),
        "top_p": float(params.top_p),
        "max_tokens": int(params.max_tokens),
        "seed": int(seed),
        "stop": list(params.stop),
        "logprobs": 1 if params.logprobs else None,
        "skip_special_tokens": True,
    }
    return kw


def _logprob_value(entry: Any) -> float | None:
    """The float inside a vLLM ``Logprob`` (``.logprob``) or a bare number."""
    if entry is None:
        return None
    value = getattr(entry, "logprob", entry)
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def _position_entry(position: Any, token_id: int) -> Any:
    """The entry for ``token_id`` in one step's logprobs (a dict, or a dict-like object)."""
    if position is None:
        return None
    getter = getattr(position, "get", None)
    if getter is not None:
        return getter(token_id)
    try:
        return position[token_id]
    except (KeyError, IndexError, TypeError):
        return None


def _token_text(entry: Any, token_id: int, tokenizer: Any | None) -> str:
    text = getattr(entry, "decoded_token", None)
    if isinstance(text, str):
        return text
    if tokenizer is not None:
        return str(tokenizer.decode([token_id]))
    return ""


def completion_from_vllm(
    output: Any, stop: Sequence[str] = (), tokenizer: Any | None = None
) -> Completion:
    """Convert one ``vllm.CompletionOutput`` (``.text``, ``.token_ids``, ``.logprobs``,
    ``.finish_reason``) to a :class:`Completion`.

    ``output.logprobs`` is a list (one entry per generated token) of mappings from token id
    to ``Logprob(logprob, rank, decoded_token)``; it is None when log-probs were not asked
    for. Stop strings were already applied by vLLM; ``stop`` is applied again as a guard.
    """
    text = getattr(output, "text", None)
    if not isinstance(text, str):
        raise BackendError("vLLM returned an output without text")
    token_ids = [int(t) for t in (getattr(output, "token_ids", None) or ())]
    raw = getattr(output, "logprobs", None)
    tokens: list[str] | None = None
    lps: list[float] | None = None
    if raw is not None and token_ids:
        tokens, lps = [], []
        for step, tid in enumerate(token_ids):
            position = raw[step] if step < len(raw) else None
            entry = _position_entry(position, tid)
            value = _logprob_value(entry)
            if value is None:
                tokens = lps = None
                break
            tokens.append(_token_text(entry, tid, tokenizer))
            lps.append(value)
        if tokens is not None and lps is not None and getattr(output, "finish_reason", None) == "stop":
            # token_ids keep the EOS token or the token(s) spelling a stop string, which the
            # text leaves out: keep only the tokens that spell the text
            tokens, lps = (list(x) for x in trim_tokens(tokens, lps, len(text)))
    n_tokens = len(tokens) if tokens is not None else len(token_ids)
    return finish_completion(text, getattr(output, "finish_reason", None), stop, tokens, lps, n_tokens)


def top_logprobs_from_vllm(position: Any, k: int, tokenizer: Any | None = None) -> dict[str, float]:
    """The ``k`` most likely tokens of one step's logprobs mapping, as ``{token: logprob}``."""
    items: list[tuple[str, float]] = []
    keys = list(position.keys()) if hasattr(position, "keys") else []
    for tid in keys:
        entry = _position_entry(position, tid)
        value = _logprob_value(entry)
        if value is not None:
            items.append((_token_text(entry, int(tid), tokenizer), min(value, 0.0)))
    items.sort(key=lambda kv: -kv[1])
    top: dict[str, float] = {}
    for tok, v in items:
        if tok not in top:
            top[tok] = v
        if len(top) == k:
            break
    return top


# ---------------------------------------------------------------------------------------------
# the sampler
# ---------------------------------------------------------------------------------------------


class VLLMSampler:
    """A :class:`~semcal.backends.base.Sampler` on vLLM's offline ``LLM`` engine.

    Parameters
    ----------
    model:
        A hub id or local folder (or a GGUF file, which vLLM loads experimentally).
    tensor_parallel_size, pipeline_parallel_size:
        GPUs per layer and pipeline stages (the product is the number of GPUs used).
    distributed_executor_backend:
        ``None`` lets vLLM choose (multiprocessing on one node); ``"ray"`` for a multi-node
        Ray cluster, ``"mp"`` to force multiprocessing.
    enable_prefix_caching:
        Reuse the KV cache of shared prompt prefixes (few-shot preambles).
    gpu_memory_utilization, max_model_len:
        Passed to ``vllm.LLM``.
    chat:
        Whether the model expects chat messages; ``None`` guesses from the name. Chat
        prompts are rendered with the tokenizer's chat template.
    split_samples:
        ``False`` (default): one request with ``n`` samples and the seed of sample 0.
        ``True``: ``n`` requests with ``n=1`` and the seed of sample ``i``, so sample
        ``i`` does not depend on ``n`` (prefix caching still shares the prompt's prefill).
    engine_kwargs:
        Anything else ``vllm.LLM`` accepts (``dtype``, ``quantization``, ``seed``,
        ``trust_remote_code``, ``download_dir``, ``enforce_eager``...).
    """

    def __init__(
        self,
        model: str,
        tensor_parallel_size: int = 1,
        pipeline_parallel_size: int = 1,
        distributed_executor_backend: str | None = None,
        enable_prefix_caching: bool = True,
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        chat: bool | None = None,
        split_samples: bool = False,
        **engine_kwargs: Any,
    ) -> None:
        for name, value in (("tensor_parallel_size", tensor_parallel_size),
                            ("pipeline_parallel_size", pipeline_parallel_size)):
            if not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be an integer >= 1, got {value!r}")
        if not (0 < float(gpu_memory_utilization) <= 1):
            raise InputError(f"gpu_memory_utilization must be in (0, 1], got {gpu_memory_utilization!r}")
        vllm = _import_vllm()
        self._vllm = vllm
        self.engine_options = build_engine_kwargs(
            model,
            tensor_parallel_size=tensor_parallel_size,
            pipeline_parallel_size=pipeline_parallel_size,
            distributed_executor_backend=distributed_executor_backend,
            enable_prefix_caching=enable_prefix_caching,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            **engine_kwargs,
        )
        try:
            self.llm = vllm.LLM(**self.engine_options)
        except Exception as exc:  # CUDA missing, OOM, unknown model...
            raise BackendError(f"vLLM could not start {model!r}: {exc}") from exc
        self.tokenizer = self.llm.get_tokenizer()
        self._template: ChatTemplate | None = None  # the tokenizer's, in semcal's sandbox
        self.model_name = str(model)
        self.is_chat = guess_is_chat(model) if chat is None else bool(chat)
        self.split_samples = bool(split_samples)

    @property
    def context_length(self) -> int | None:
        """The engine's ``max_model_len``, None if it does not say."""
        try:
            n = self.llm.llm_engine.model_config.max_model_len
        except AttributeError:
            return None
        return n if isinstance(n, int) and n > 0 else None

    def count_tokens(self, prompt: Prompt) -> int:
        (r,) = self._render([prompt])
        if isinstance(r, dict):
            return len(r["prompt_token_ids"])
        return len(self.tokenizer(r)["input_ids"])

    def _render(self, prompts: Sequence[Prompt]) -> list[Any]:
        rendered = []
        for p in prompts:
            if not isinstance(p, Prompt):
                raise InputError(f"expected a Prompt, got {type(p).__name__}")
            if p.is_chat and self._template is None:
                self._template = sandboxed_template(self.tokenizer)
            text = render_chat(self._template, p, str(self.model_name))
            # a chat template already holds the BOS token: pass token ids so vLLM adds no second one
            if p.is_chat:
                ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
                rendered.append({"prompt_token_ids": list(ids)})
            else:
                rendered.append(text)
        return rendered

    def sample(
        self, prompts: Sequence[Prompt], n: int, params: SamplingParams
    ) -> list[list[Completion]]:
        """Draw ``n`` completions for each prompt; returns ``len(prompts)`` lists of ``n``."""
        check_n(n)
        prompts = list(prompts)
        inputs = self._render(prompts)
        vllm = self._vllm
        requests: list[Any] = []
        sp: list[Any] = []
        owner: list[int] = []
        for j, inp in enumerate(inputs):
            base = prompt_seed(params.seed, prompts[j])
            if params.greedy:
                plan = [(1, 0)]
            elif self.split_samples:
                plan = [(1, sample_seed(base, i)) for i in range(n)]
            else:
                plan = [(n, sample_seed(base, 0))]
            for count, seed in plan:
                requests.append(inp)
                sp.append(vllm.SamplingParams(**vllm_sampling_kwargs(params, count, seed)))
                owner.append(j)
        try:
            outputs = self.llm.generate(requests, sp, use_tqdm=False)
        except Exception as exc:
            raise BackendError(f"vLLM generation failed: {exc}") from exc
        result: list[list[Completion]] = [[] for _ in prompts]
        for j, req_out in zip(owner, outputs):
            outs = sorted(req_out.outputs, key=lambda o: getattr(o, "index", 0))
            for o in outs:
                result[j].append(completion_from_vllm(o, params.stop, self.tokenizer))
        for j, row in enumerate(result):
            if params.greedy and len(row) == 1:
                result[j] = row * n
            elif len(row) != n:
                raise BackendError(f"vLLM returned {len(row)} samples for prompt {j}, expected {n}")
        return result

    def next_token_logprobs(self, prompts: Sequence[Prompt], k: int = 5) -> list[dict[str, float]]:
        """Top-``k`` log-probabilities of the first generated token, one dict per prompt."""
        if not isinstance(k, int) or k < 1:
            raise InputError(f"k must be an integer >= 1, got {k!r}")
        vllm = self._vllm
        one = SamplingParams(temperature=0.0, max_tokens=1, logprobs=True)
        kw = vllm_sampling_kwargs(one, 1, 0)
        kw["logprobs"] = k
        sp = vllm.SamplingParams(**kw)
        outputs = self.llm.generate(self._render(list(prompts)), sp, use_tqdm=False)
        result = []
        for req_out in outputs:
            steps = req_out.outputs[0].logprobs
            if not steps:
                raise BackendError("vLLM returned no log-probabilities")
            result.append(top_logprobs_from_vllm(steps[0], k, self.tokenizer))
        return result

    def close(self) -> None:
        """Shut the engine down and free GPU memory (best effort; vLLM keeps some global state)."""
        llm = getattr(self, "llm", None)
        self.llm = None
        if llm is not None:
            engine = getattr(llm, "llm_engine", None)
            shutdown = getattr(engine, "shutdown", None)
            if callable(shutdown):
                try:
                    shutdown()
                except Exception:  # noqa: S110 - best-effort cleanup
                    pass
            del llm
        try:
            from vllm.distributed.parallel_state import (  # type: ignore[import-not-found]
                destroy_distributed_environment,
                destroy_model_parallel,
            )

            destroy_model_parallel()
            destroy_distributed_environment()
        except Exception:  # noqa: S110 - not available on every vLLM release
            pass
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:  # pragma: no cover
            pass

    def __enter__(self) -> VLLMSampler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"VLLMSampler(model={self.model_name!r})"


def build_engine_kwargs(
    model: str,
    tensor_parallel_size: int = 1,
    pipeline_parallel_size: int = 1,
    distributed_executor_backend: str | None = None,
    enable_prefix_caching: bool = True,
    gpu_memory_utilization: float = 0.9,
    max_model_len: int | None = None,
    **engine_kwargs: Any,
) -> dict[str, Any]:
    """Keyword arguments for ``vllm.LLM`` (pure; options left at None are not passed)."""
    if distributed_executor_backend not in (None, "ray", "mp", "uni", "external_launcher"):
        raise InputError(
            f"distributed_executor_backend must be None, 'ray', 'mp', 'uni' or "
            f"'external_launcher', got {distributed_executor_backend!r}"
        )
    if tensor_parallel_size * pipeline_parallel_size > 1 and distributed_executor_backend == "uni":
        raise InputError("the 'uni' executor runs on one GPU; use 'mp' or 'ray' for parallelism")
    kw: dict[str, Any] = {
        "model": str(model),
        "tensor_parallel_size": tensor_parallel_size,
        "pipeline_parallel_size": pipeline_parallel_size,
        "enable_prefix_caching": bool(enable_prefix_caching),
        "gpu_memory_utilization": float(gpu_memory_utilization),
    }
    if distributed_executor_backend is not None:
        kw["distributed_executor_backend"] = distributed_executor_backend
    if max_model_len is not None:
        if not isinstance(max_model_len, int) or max_model_len < 1:
            raise InputError(f"max_model_len must be an integer >= 1, got {max_model_len!r}")
        kw["max_model_len"] = max_model_len
    clash = set(engine_kwargs) & set(kw)
    if clash:
        raise InputError(f"engine option given twice: {sorted(clash)}")
    kw.update(dict(_clean(engine_kwargs)))
    return kw


def _clean(options: Mapping[str, Any]) -> Mapping[str, Any]:
    return {k: v for k, v in options.items() if v is not None}
