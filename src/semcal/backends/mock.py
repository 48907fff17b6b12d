"""A model-free sampler: the ``mock`` backend.

It exists to exercise semcal's own machinery without a model: the runner, the store, the
analysis and the report, in tests and in benchmarks of semcal's overhead
(``bench/runner_scale.py``). It is not a language model and its numbers mean nothing about
any model; every run it makes records ``backend = "mock"``.

Each prompt gets its own answer distribution over (at most 64 of) ``answers`` (weights drawn
from a hash of the prompt, sharpened by ``concentration``); sample ``i`` is drawn with the same per-sample
seed a real backend uses (``sample_seed(prompt_seed(seed, prompt), i)``), so runs are
reproducible and resumable whatever the batch composition, and temperature 0 gives the most
likely answer. ``next_token_logprobs`` returns a True/False pair, so P(True) runs too.
``context_length`` (words) makes it refuse prompts that do not fit, as a real engine's
context does.

Tests script it (like inspect_ai's ``mockllm``): ``script`` maps a tag to the answer weights
of every prompt that contains it (the tag found last in the prompt wins, since the question
under test follows the few-shot examples); ``respond(prompt, i, params)`` writes sample
``i``'s text itself (a judge or grader stand-in; None: drawn as usual); ``rate(prompt)`` gives the next-token
log-probabilities; ``record`` keeps every prompt and parameter set it was given
(:attr:`prompts`, :attr:`params`). ``respond``, ``rate`` and ``record`` are for Python
callers: a spec or ``--backend-opt`` cannot name a function.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Mapping, Sequence

from semcal.backends.base import check_context, prompt_seed, sample_seed
from semcal.errors import InputError
from semcal.types import Completion, Prompt, SamplingParams

DEFAULT_ANSWERS = ("Paris", "London", "Rome", "Berlin", "Madrid", "42")
#: most distinct answers one prompt draws from (picked from ``answers`` by the prompt's hash)
PER_PROMPT = 64


def _digest(prompt: Prompt) -> int:
    return prompt_seed(0, prompt)


def _cumulative(weights: list[float]) -> list[float]:
    out, total = [], 0.0
    for w in weights:
        total += float(w)
        out.append(total)
    return out


class MockSampler:
    """Answers ``template.format(answer=...)`` with a per-prompt answer distribution."""

    def __init__(
        self,
        model: str = "mock",
        *,
        answers: Sequence[str] = DEFAULT_ANSWERS,
        concentration: float = 2.0,
        chat: bool = False,
        template: str = "The answer is {answer}.",
        context_length: int | None = None,
        script: Mapping[str, Mapping[str, float]] | None = None,
        respond: Callable[[Prompt, int, SamplingParams], str | None] | None = None,
        rate: Callable[[Prompt], dict[str, float]] | None = None,
        record: bool = False,
    ) -> None:
        if isinstance(answers, str) or not answers or not all(
            isinstance(a, str) and a.strip() for a in answers
        ):
            raise InputError("mock backend: 'answers' must be a non-empty list of non-empty strings")
        if len(answers) > 10_000:
            raise InputError("mock backend: at most 10000 answers")
        if isinstance(concentration, bool) or not isinstance(concentration, (int, float)) or not (
            0 < float(concentration) <= 100
        ):
            raise InputError("mock backend: 'concentration' must be a number in (0, 100]")
        if not isinstance(chat, bool):
            raise InputError("mock backend: 'chat' must be true or false")
        if not isinstance(template, str) or "{answer}" not in template or len(template) > 1000:
            raise InputError("mock backend: 'template' must be a string containing {answer}")
        if context_length is not None and (
            isinstance(context_length, bool) or not isinstance(context_length, int)
            or not 16 <= context_length <= 2**31 - 1
        ):
            raise InputError("mock backend: 'context_length' must be an integer >= 16")
        if script is not None and (not isinstance(script, Mapping) or not all(
            isinstance(tag, str) and tag and isinstance(w, Mapping) and w and all(
                isinstance(a, str) and not isinstance(x, bool) and isinstance(x, (int, float))
                and x > 0 for a, x in w.items())
            for tag, w in script.items())):
            raise InputError("mock backend: 'script' must map tags to tables of answer -> weight > 0")
        for name, fn in (("respond", respond), ("rate", rate)):
            if fn is not None and not callable(fn):
                raise InputError(f"mock backend: {name!r} must be a function (Python callers only)")
        self.script = {t: (list(w), _cumulative(list(w.values()))) for t, w in (script or {}).items()}
        self.respond = respond
        self.rate = rate
        #: with ``record``: every prompt given to sample()/next_token_logprobs(), and the
        #: parameters of every sample() call
        self.record = bool(record)
        self.prompts: list[Prompt] = []
        self.params: list[SamplingParams] = []
        #: tokens = whitespace-separated words; None: no context limit
        self.context_length = context_length
        self.model_name = f"mock:{model}"
        self.is_chat = chat
        self.answers = tuple(answers)
        self.concentration = float(concentration)
        self.template = template

    def tag_of(self, prompt: Prompt) -> str | None:
        """The ``script`` tag that scripts ``prompt``: the one found last in it (the question
        under test follows the few-shot examples); None when none is found."""
        text = prompt.text + "\n" + "\n".join(m.content for m in prompt.messages)
        found = [(text.rfind(tag), tag) for tag in self.script if tag in text]
        return max(found)[1] if found else None

    def _dist(self, prompt: Prompt) -> tuple[list[str], list[float]]:
        """The prompt's answers (at most :data:`PER_PROMPT` of them) and cumulative weights."""
        tag = self.tag_of(prompt) if self.script else None
        if tag is not None:
            return self.script[tag]
        rng = random.Random(_digest(prompt))
        pool = (list(self.answers) if len(self.answers) <= PER_PROMPT
                else rng.sample(self.answers, PER_PROMPT))
        cum, total = [], 0.0
        for _ in pool:
            total += rng.random() ** self.concentration
            cum.append(total)
        return pool, cum

    def _completion(self, answer: str, params: SamplingParams) -> Completion:
        text = self.template.replace("{answer}", answer)
        words = text.split()
        finish = "stop"
        if len(words) > params.max_tokens:
            words, finish = words[: params.max_tokens], "length"
            text = " ".join(words)
        logprobs = tuple(-0.1 for _ in words) if params.logprobs else None
        return Completion(text, finish, len(words), logprobs, None)

    def _text_completion(self, text: str, params: SamplingParams) -> Completion:
        """A scripted reply, as it is (``n_tokens``: its words, at least one)."""
        n = max(1, len(text.split()))
        logprobs = tuple(-0.1 for _ in range(n)) if params.logprobs else None
        return Completion(text, "stop", n, logprobs, None)

    def sample(
        self, prompts: Sequence[Prompt], n: int, params: SamplingParams
    ) -> list[list[Completion]]:
        out: list[list[Completion]] = []
        check_context(self, [self.count_tokens(p) for p in prompts], params.max_tokens)
        if self.record:
            self.prompts.extend(prompts)
            self.params.append(params)
        for p in prompts:
            if self.respond is not None:
                texts = [self.respond(p, i, params) for i in range(n)]
                if all(t is not None for t in texts):
                    out.append([self._text_completion(t, params) for t in texts])
                    continue
            pool, cum = self._dist(p)
            if params.temperature == 0:
                w = [b - a for a, b in zip([0.0, *cum[:-1]], cum)]
                best = pool[max(range(len(w)), key=w.__getitem__)]
                out.append([self._completion(best, params) for _ in range(n)])
                continue
            base = prompt_seed(params.seed, p)
            comps = []
            for i in range(n):
                rng = random.Random(sample_seed(base, i))
                comps.append(self._completion(rng.choices(pool, cum_weights=cum)[0], params))
            out.append(comps)
        return out

    def next_token_logprobs(self, prompts: Sequence[Prompt], k: int) -> list[dict[str, float]]:
        if self.record:
            self.prompts.extend(prompts)
        if self.rate is not None:
            return [self.rate(p) for p in prompts]
        out = []
        for p in prompts:
            h = int.from_bytes(hashlib.blake2b(str(_digest(p)).encode(), digest_size=4).digest(),
                               "little")
            pt = 0.05 + 0.9 * (h / 2**32)
            out.append({" True": math.log(pt), " False": math.log(1 - pt)})
        return out

    def count_tokens(self, prompt: Prompt) -> int:
        """Whitespace-separated words of the prompt (the mock's "tokens")."""
        return len((prompt.text + " " + " ".join(m.content for m in prompt.messages)).split())

    def close(self) -> None:
        pass
