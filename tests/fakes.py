"""Shared test fakes: a deterministic in-process sampler with known answer distributions,
a collapse function for its answers, a question file of its questions, and helpers to build
a spec and dump a store. Tests import these from here (not from each other); a model-free
sampler that runs through the registered backend path is ``backend = "mock"``
(semcal.backends.mock)."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Sequence
from pathlib import Path

from semcal.backends.mock import MockSampler
from semcal.collapse.extract import extract_answer
from semcal.spec import RunSpec
from semcal.store import Store
from semcal.types import Collapsed, Completion, Prompt, Question, SamplingParams

#: question tag -> answer distribution of the fake model
DISTS: dict[str, dict[str, float]] = {
    "ZQA": {"Paris": 1.0},
    "ZQB": {"Rome": 0.6, "Milan": 0.4},
    "ZQC": {"4": 0.34, "5": 0.33, "6": 0.33},
    "ZQD": {"Oslo": 0.9, "Bergen": 0.1},
    "ZQE": {"blue": 0.5, "green": 0.5},
    "ZQF": {"Tokyo": 0.8, "Kyoto": 0.2},
}
GOLD = {"ZQA": "Paris", "ZQB": "Rome", "ZQC": "4", "ZQD": "Oslo", "ZQE": "red", "ZQF": "Tokyo"}


class FakeSampler(MockSampler):
    """The registered ``mock`` backend scripted with :data:`DISTS`, plus fault injection:
    ``interrupt_after`` calls it raises KeyboardInterrupt (Ctrl-C mid-run), ``bad_count``
    returns one completion too few for the first prompt. :attr:`calls` records
    (prompts, n, seed) of every call."""

    def __init__(self, interrupt_after: int | None = None, bad_count: bool = False, **kw):
        super().__init__("fake", script=DISTS, **kw)
        self.model_name = "fake"
        self.calls: list[tuple[int, int, int]] = []  # (n prompts, n, seed)
        self.interrupt_after = interrupt_after
        self.bad_count = bad_count
        self.closed = False

    def sample(self, prompts: Sequence[Prompt], n: int, params: SamplingParams) -> list[list[Completion]]:
        if self.interrupt_after is not None and len(self.calls) >= self.interrupt_after:
            raise KeyboardInterrupt
        self.calls.append((len(prompts), n, params.seed))
        out = super().sample(prompts, n, params)
        if self.bad_count:
            out[0] = out[0][:-1]
        return out

    def close(self) -> None:
        self.closed = True


class EstSampler(FakeSampler):
    """:class:`FakeSampler` that also rates proposed answers: P(True) 0.9 / verbalised 70% for
    the gold answer of the question, 0.3 / 20% for any other. :attr:`ratings` records
    "p_true:<answer>" / "verbal:<answer>"; ``interrupt_rating_after`` ratings it raises
    KeyboardInterrupt."""

    def __init__(self, interrupt_rating_after: int | None = None, **kw):
        super().__init__(respond=self._verbal, rate=self._p_true, **kw)
        self.ratings: list[str] = []
        self.interrupt_rating_after = interrupt_rating_after

    def _rated(self, p: Prompt) -> tuple[str, bool] | None:
        text = p.text or " ".join(m.content for m in p.messages)
        if "Proposed answer:" not in text:
            return None
        answer = text.rsplit("Proposed answer:", 1)[1].strip().splitlines()[0].strip()
        return answer, answer == GOLD[self.tag_of(p)]

    def _tick(self, what: str) -> None:
        if self.interrupt_rating_after is not None and len(self.ratings) >= self.interrupt_rating_after:
            raise KeyboardInterrupt
        self.ratings.append(what)

    def _p_true(self, p: Prompt) -> dict[str, float]:
        answer, right = self._rated(p)
        self._tick(f"p_true:{answer}")
        pt = 0.9 if right else 0.3
        return {" True": math.log(pt), " False": math.log(1 - pt), " The": -5.0}

    def sample(self, prompts: Sequence[Prompt], n: int, params: SamplingParams) -> list[list[Completion]]:
        if all(self._rated(p) is not None for p in prompts):  # ratings are not counted in calls
            return MockSampler.sample(self, prompts, n, params)
        return super().sample(prompts, n, params)

    def _verbal(self, p: Prompt, i: int, params: SamplingParams) -> str | None:
        rated = self._rated(p)
        if rated is None:
            return None  # an answer to the question: drawn from DISTS
        if i == 0:
            self._tick(f"verbal:{rated[0]}")
        return " 70%" if rated[1] else " 20%"


def replying(reply: Callable[[Prompt], str], *, chat: bool = True, model: str = "fake-judge") -> MockSampler:
    """The mock backend answering every prompt with ``reply(prompt)`` and recording the prompts
    and parameters it was given (a judge or grader stand-in)."""
    return MockSampler(model, chat=chat, record=True, respond=lambda p, i, params: reply(p))


def fake_judge(reply: Callable[[str], str] | None = None, *, chat: bool = True) -> MockSampler:
    """A judge stand-in for the judge B: answers with ``reply(response)``, by default the
    rule-based extraction of the response (or NONE)."""
    def answer(p: Prompt) -> str:
        body = p.messages[-1].content if p.is_chat else p.text
        response = body.rsplit("Response: ", 1)[1].rsplit("\nShort answer:", 1)[0]
        return reply(response) if reply else (extract_answer(response, "qa") or "NONE")

    return replying(answer, chat=chat)


def verdicts(replies: dict[str, str]) -> MockSampler:
    """A grader stand-in for the judge grader: the verdict ``replies[response]`` ("???" for
    a response it was not told about)."""
    def answer(p: Prompt) -> str:
        response = p.messages[-1].content.split("Response: ", 1)[1].split("\n", 1)[0]
        return replies.get(response, "???")

    return replying(answer, model="fake-grader")


def cycling(texts: Sequence[str], greedy: str, *, model: str = "nasty") -> MockSampler:
    """A chat model whose sample i of any prompt is ``texts[i % len(texts)]`` and whose greedy
    answer is ``greedy`` (used to push hostile text through a real run)."""
    return MockSampler(model, chat=True, respond=lambda p, i, params: (
        greedy if params.temperature == 0 else texts[i % len(texts)]))


def fixed_outputs(texts: Sequence[str] = (), tops: Sequence[dict[str, float]] = (), *,
                  chat: bool = False) -> MockSampler:
    """The mock backend whose k-th prompt of a call gets ``texts[k]`` and whose next-token
    log-probs are ``tops`` in order; it records the prompts it was given."""
    order: dict[int, int] = {}
    pending = list(tops)

    def respond(p: Prompt, i: int, params: SamplingParams) -> str:
        return texts[order.setdefault(id(p), len(order))]

    def rate(p: Prompt) -> dict[str, float]:
        return pending.pop(0)

    return MockSampler("fake", chat=chat, record=True, respond=respond, rate=rate)


def fake_collapse(question: Question, texts: Sequence[str]) -> Collapsed:
    labels = tuple(t.removeprefix("The answer is ").rstrip(".").lower() for t in texts)
    return Collapsed(labels, frozenset(a.lower() for a in question.answers))


def write_questions(path: Path) -> Path:
    """The fake model's questions as a JSONL file (one per tag of :data:`GOLD`)."""
    with path.open("w") as f:
        for tag, gold in GOLD.items():
            f.write(json.dumps({"id": tag.lower(), "question": f"{tag} which one?",
                                "answers": [gold]}) + "\n")
    return path


def make_spec(qfile: Path, **kw) -> RunSpec:
    base = dict(model="fake", dataset=str(qfile), format="jsonl", samples=6, seed=3,
                max_tokens=8, style="concise", k_shot=0)
    base.update(kw)
    return RunSpec(**base)


def dump_store(out: Path) -> dict:
    with Store(out, readonly=True) as st:
        (run_info,) = st.runs()
        res = {}
        for q in st.questions(run_info.id):
            res[q.id] = [(s.round, s.index, s.seed, s.completion.text) for s in st.samples(run_info.id, q.id)]
        return {"samples": res, "greedy": {k: v.text for k, v in st.greedy(run_info.id).items()},
                "done": sorted(st.done_ids(run_info.id))}


# ----------------------------------------------------------------------------- a token-level toy model (theory diagnostics)

CLASSES = {"q1": {"paris": 0.7, "lyon": 0.3}, "q2": {"rome": 0.5, "milan": 0.3, "turin": 0.2}}


class ToySampler:
    """Answers "The answer is X ." (direct) or "Let me think . so X ." style token sequences.

    The class X is drawn from a fixed per-question distribution the first time the answer needs
    it; a prefix that already contains X keeps it. With ``think`` tokens before the answer, the
    class is decided late (like chain-of-thought); without, it is the 4th token.
    """

    model_name = "toy"
    is_chat = False

    def __init__(self, think: int = 0, seed: int = 0):
        self.think = think
        self.roots: dict[str, str] = {}  # prompt text -> question id
        self.rng = random.Random(seed)
        self.calls: list[tuple[int, int]] = []  # (prompts, seed) of every sample() call

    def _qid(self, prompt: Prompt) -> tuple[str, str]:
        text = prompt.text
        best = max((r for r in self.roots if text.startswith(r)), key=len, default=None)
        if best is None:  # a new question prompt: its id is the last line's last word
            qid = "q1" if "Zorbland" in text else "q2"
            self.roots[text] = qid
            return qid, ""
        return self.roots[best], text[len(best):]

    def _tokens(self, qid: str) -> list[str]:
        dist = CLASSES[qid]
        z = self.rng.choices(list(dist), weights=list(dist.values()))[0]
        pre = [" hmm"] * self.think
        return [*pre, " The", " answer", " is", f" {z}", "."]

    def sample(self, prompts: Sequence[Prompt], n: int, params: SamplingParams):
        self.calls.append((len(prompts), params.seed))
        out = []
        for p in prompts:
            qid, prefix = self._qid(p)
            row = []
            for _ in range(n):
                full = self._tokens(qid)
                # keep a class already present in the prefix
                for z in CLASSES[qid]:
                    if f" {z}" in prefix:
                        full = [*[" hmm"] * self.think, " The", " answer", " is", f" {z}", "."]
                # drop the tokens the prefix already holds
                consumed, k = "", 0
                while k < len(full) and len(consumed) < len(prefix):
                    consumed += full[k]
                    k += 1
                rest = full[k:]
                row.append(
                    Completion(
                        text="".join(rest),
                        finish_reason="stop",
                        n_tokens=len(rest),
                        token_logprobs=tuple([-0.1] * len(rest)),
                        tokens=tuple(rest),
                    )
                )
            out.append(row)
        return out

    def next_token_logprobs(self, prompts: Sequence[Prompt], k: int):
        out = []
        for p in prompts:
            qid, _ = self._qid(p)
            if self.think:
                out.append({" hmm": 0.0})
            else:
                out.append({" The": 0.0})
        return out

    def close(self) -> None:
        pass


class DirectToy(ToySampler):
    """The first token is the answer itself: " paris" (no template)."""

    def _tokens(self, qid: str) -> list[str]:
        dist = CLASSES[qid]
        z = self.rng.choices(list(dist), weights=list(dist.values()))[0]
        return [f" {z}", "."]

    def next_token_logprobs(self, prompts: Sequence[Prompt], k: int):
        out = []
        for p in prompts:
            qid, _ = self._qid(p)
            out.append({f" {z}": math.log(pz) for z, pz in CLASSES[qid].items()})
        return out
