"""How fast the judge B reads responses: judged responses per second, batched vs one at a time.

    python bench/judge_speed.py                       # the embedded judge (semcal[judge])
    python bench/judge_speed.py --responses 64 --loop 16   # a quicker look
    python bench/judge_speed.py --judge-model smollm2-135m-instruct
    python bench/judge_speed.py --prompt choose-v1   # the choosing judge

The responses are the real ones of the collapse benchmark's development sets
(bench/data/collapse: both embedded models, world questions, concise and sentence styles),
de-duplicated per question as the judge B does, the first ``--responses`` of them. Two ways
to judge them, each with a fresh judge B (no cached replies) on one llama.cpp sampler:

- batched: what ``semcal analyze --collapse judge`` does: ``JudgeCollapse.prepare`` sends
  every question's responses in calls of ``batch_size`` (64) prompts, which the sampler
  decodes side by side, the shared instruction and examples evaluated once (prefix cache);
- one at a time: one response per ``sample`` call (``batch_size=1``), the first ``--loop``
  responses (the prefix cache still on: that is the sampler's default for any caller);
- one at a time without the prefix cache (``prefix_cache=False``): every prompt evaluated
  whole, as a plain loop over ``create_chat_completion`` would.

It prints responses/s of each and the speed-up, and checks that both gave the same replies
on the responses both judged. Measure on an idle machine (nothing else running): two
llama.cpp processes on two cores slow each other far below a fair share.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from semcal.backends import get_sampler
from semcal.collapse.judge import PROMPT_VERSION, JudgeCollapse
from semcal.collapse.labelled import load_labelled

DATA = Path(__file__).resolve().parent / "data" / "collapse"
DEV_SETS = ("world-concise", "world-sentence")


def responses(limit: int) -> list[tuple[object, list[str]]]:
    """(question, distinct non-empty responses) pairs, ``limit`` responses in all."""
    out, total = [], 0
    for it in load_labelled(DATA, sets=list(DEV_SETS)):
        texts = [t for t in dict.fromkeys(it.texts) if t.strip()]
        texts = texts[: max(0, limit - total)]
        if texts:
            out.append((it.question, texts))
            total += len(texts)
        if total >= limit:
            break
    return out


def judge(sampler: object, items: list, batch_size: int,
          prompt: str = PROMPT_VERSION) -> tuple[float, JudgeCollapse]:
    b = JudgeCollapse(sampler, batch_size=batch_size, prompt=prompt)
    t = time.perf_counter()
    if batch_size > 1:
        b.prepare(items)
    for q, texts in items:
        b(q, texts)
    return time.perf_counter() - t, b


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--judge-model", default="qwen2.5-coder-1.5b-instruct")
    ap.add_argument("--responses", type=int, default=192, help="responses judged in batches")
    ap.add_argument("--loop", type=int, default=32, help="responses judged one at a time")
    ap.add_argument("--threads", type=int, default=None, help="llama.cpp threads (all cores)")
    ap.add_argument("--prompt", default=PROMPT_VERSION,
                    help=f"the judge's prompt version ({PROMPT_VERSION}; choose-v1 chooses)")
    args = ap.parse_args(argv)

    sampler = get_sampler("llamacpp", args.judge_model, n_threads=args.threads)
    warm = responses(2)
    judge(sampler, warm, 1, args.prompt)  # load the weights into memory before any clock runs

    batched_items = responses(args.responses)
    loop_items = responses(args.loop)
    n_b = sum(len(t) for _, t in batched_items)
    n_l = sum(len(t) for _, t in loop_items)
    s_b, jb = judge(sampler, batched_items, 64, args.prompt)
    s_l, jl = judge(sampler, loop_items, 1, args.prompt)
    sampler.close()
    plain = get_sampler("llamacpp", args.judge_model, n_threads=args.threads, prefix_cache=False)
    judge(plain, warm, 1, args.prompt)
    s_p, jp = judge(plain, loop_items, 1, args.prompt)
    plain.close()
    same_plain = sum(jl._memory.get(k) == v for k, v in jp._memory.items())
    same = sum(jb._memory[k] == v for k, v in jl._memory.items() if k in jb._memory)
    print(f"prompt {args.prompt}")
    print("| judge | way | responses | seconds | responses/s |")
    print("|---|---|---:|---:|---:|")
    print(f"| {args.judge_model} | batched (prepare, 64 prompts a call) | {n_b} | {s_b:.1f} | "
          f"{n_b / s_b:.2f} |")
    print(f"| {args.judge_model} | one at a time | {n_l} | {s_l:.1f} | {n_l / s_l:.2f} |")
    print(f"| {args.judge_model} | one at a time, no prefix cache | {n_l} | {s_p:.1f} | "
          f"{n_l / s_p:.2f} |")
    print(f"\nbatched vs one at a time: {(n_b / s_b) / (n_l / s_l):.1f}x; vs one at a time "
          f"without the prefix cache: {(n_b / s_b) / (n_l / s_p):.1f}x. Replies equal on {same} "
          f"of {len(jl._memory)} responses judged batched and one at a time, on {same_plain} "
          f"of {len(jp._memory)} with and without the prefix cache. Fallbacks to the rules "
          f"(batched): {jb.fallbacks} of {jb.judged}")
    print(f"{os.cpu_count()} cores; threads {args.threads or 'all'}; python "
          f"{sys.version.split()[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
