"""Runner and analysis overhead at scale: semcal's own time per question, without a model.

The ``mock`` backend (semcal.backends.mock) answers instantly, so what is timed is semcal:
prompt building, seeding, the store's transactions, adaptive stopping (the run's B on every
round), P(True)/verbalised estimates, and then ``analyze`` (collapse, grade, metrics with
bootstrap intervals) over the stored samples. Time per question should stay flat as the
run grows; a runner that re-reads the store per batch shows up as a growing figure.

    python bench/runner_scale.py                          # 1000, 10000, 100000 questions
    python bench/runner_scale.py --sizes 250,1000,4000    # quick
    python bench/runner_scale.py --modes fixed,analyze --sizes 100000 --samples 1

Modes: ``fixed`` (M samples per question), ``adaptive`` (rounds of 2 up to M, B = exact),
``estimators`` (fixed M plus P(True) and verbalised confidence), ``analyze`` (semcal's
analysis of the fixed run: samples -> B (auto) -> grade -> every default estimator ->
summary with bootstrap CIs, nothing cached). The mock answers with the real responses of
bench/data/collapse (``--texts real``, the default) so B reads realistic texts.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from semcal.analysis import analyze_run
from semcal.backends.mock import MockSampler
from semcal.runner import run
from semcal.spec import AdaptiveSpec, RunSpec
from semcal.store import Store

ANSWERS = ("Paris", "London", "Rome", "Berlin", "Madrid", "Oslo", "Vienna", "Lisbon")
COLLAPSE_DATA = Path(__file__).resolve().parent / "data" / "collapse"


def real_texts() -> list[str]:
    """The real responses of the collapse benchmark (both embedded models, world questions,
    concise and sentence styles): the mock answers with these, so B reads texts of real
    length and variety (few repeats) instead of one short word."""
    out: list[str] = []
    for f in sorted(COLLAPSE_DATA.glob("*--*.jsonl")):
        if "gsm8k" in f.name or "cot" in f.name:
            continue
        for line in f.read_text(encoding="utf-8").splitlines():
            out += [r["text"] for r in json.loads(line)["responses"] if r["text"].strip()]
    return out


def make_sampler(texts: str) -> MockSampler:
    if texts == "real":
        return MockSampler(answers=real_texts(), template="{answer}", concentration=1.0)
    return MockSampler(answers=ANSWERS)


def write_questions(path: Path, n: int) -> None:
    with path.open("w") as f:
        for i in range(n):
            gold = ANSWERS[i % len(ANSWERS)]
            f.write(json.dumps({"id": f"q{i}", "question": f"Question number {i}: which city?",
                                "answers": [gold]}) + "\n")


def spec_for(mode: str, data: Path, samples: int) -> RunSpec:
    kw: dict = dict(model="mock", backend="mock", dataset=str(data), format="jsonl",
                    samples=samples, seed=1, style="concise", k_shot=0, collapse="exact",
                    max_tokens=8)
    if mode == "adaptive":
        kw["adaptive"] = AdaptiveSpec(enabled=True, round=2, min_samples=2, epsilon=0.2)
    if mode == "estimators":
        kw["model_estimators"] = True
    return RunSpec(**kw)


def time_mode(mode: str, n: int, samples: int, work: Path, texts: str = "real") -> tuple[float, int]:
    data = work / f"q{n}.jsonl"
    if not data.exists():
        write_questions(data, n)
    out = work / f"{mode}-{n}"
    if mode == "analyze":
        out = work / f"fixed-{n}"
        if not out.exists():
            run(spec_for("fixed", data, samples), out, sampler=make_sampler(texts), quiet=True)
        t = time.perf_counter()  # a cold analysis: nothing cached, nothing written
        with Store(out, readonly=True) as st:
            analyze_run(st, st.runs()[0], collapse="auto", grader="auto", cache=False)
        return time.perf_counter() - t, n
    t = time.perf_counter()
    res = run(spec_for(mode, data, samples), out, sampler=make_sampler(texts), quiet=True)
    return time.perf_counter() - t, res.n_questions


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,10000,100000",
                    help="numbers of questions, comma-separated (default 1000,10000,100000)")
    ap.add_argument("--modes", default="fixed,adaptive,estimators,analyze",
                    help="fixed, adaptive, estimators, analyze (comma-separated)")
    ap.add_argument("--samples", type=int, default=8, help="M per question (default 8)")
    ap.add_argument("--texts", choices=("real", "short"), default="real",
                    help="what the mock answers: real responses of the collapse benchmark "
                         "(default) or one-word city names")
    ap.add_argument("--work", default=None, help="folder for the stores (default: a temp dir)")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in ("fixed", "adaptive", "estimators", "analyze")]
    if bad or not sizes or any(s < 1 for s in sizes) or args.samples < 1:
        ap.error(f"bad --modes/--sizes/--samples: {bad or args.sizes}")
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        work = Path(tmp)
        print(f"M = {args.samples}, mock backend (no model time), {args.texts} texts")
        print(f"{'mode':<11} {'questions':>9} {'seconds':>9} {'ms/question':>12}")
        for mode in modes:
            for n in sizes:
                dt, _ = time_mode(mode, n, args.samples, work, args.texts)
                print(f"{mode:<11} {n:>9} {dt:>9.2f} {1000 * dt / n:>12.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
