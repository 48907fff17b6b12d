"""Sampling throughput benchmark: semcal backends vs the naive llama-cpp-python loop and llama-server.

Workload (defaults): 20 questions x 20 samples, "sentence" style, temperature 1, max_tokens 32,
on both embedded models. For every model it prints, side by side from the same run:

* semcal's llama.cpp backend (parallel sequences sharing the prompt's KV cache, and the
  cross-prompt prefix cache that evaluates the shared k-shot examples once, as the naive
  loop's llama-cpp-python prompt cache does), with per-token log-probabilities on and off,
  and with the prefix cache off (``prefix_cache=False``: every prompt evaluated in full);
* any other requested backend that can open the model (``--backends llamacpp,hf``);
* llama.cpp's own server (``llama-server``, built by ``bench/build_llama_server.sh`` from the
  llama.cpp that llama-cpp-python vendors; ``--server``), in two modes: every sample its own
  one-completion request, ``n`` in flight on ``n`` slots, and one ``n``-completion request per
  prompt; skipped when no server binary is found;
* the naive loop: one ``Llama.create_completion`` per sample on the same rendered prompts;

as samples/s, generated tokens/s and the ratio to the naive loop.

    python bench/sampling.py                       # full workload (several minutes on 2 cores)
    python bench/sampling.py -q 4 -n 8 --max-tokens 16   # quick
    python bench/sampling.py --contended -q 6 -n 8  # beside two busy threads vs idle

The ceiling rows decode full batches of ``--n-parallel`` rows for ``--max-tokens`` steps
with the sampler's own engine and no sampling at all: with logits for every row (the work
sampling cannot avoid; the 262k-entry output row of gemma-3-270m is over half of it) and for
one row only (the rest of the network).

``--contended`` measures semcal's llama.cpp sampler (first model only) idle, then beside two
busy processes that it starts itself (a pure-Python loop each: on 2 cores, another llama.cpp's
worth of busy threads): with the default thread count (the cores no other work keeps busy
when the model loads, revised while sampling) and with every core (the default before), and
once with the busy processes starting after the model loaded (only the revision can then
correct the count), each as a share of the idle throughput.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

from semcal.backends import get_sampler, sample_seed
from semcal.types import Prompt, Question, SamplingParams

FALLBACK_QUESTIONS = [
    ("What is the capital of Italy?", "Rome"),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci"),
    ("What is the chemical symbol for gold?", "Au"),
    ("How many legs does a spider have?", "8"),
    ("Which planet is known as the Red Planet?", "Mars"),
    ("Who wrote Pride and Prejudice?", "Jane Austen"),
    ("What is the largest ocean on Earth?", "Pacific"),
    ("In which country are the pyramids of Giza?", "Egypt"),
]
FALLBACK_SHOTS = [
    ("What is the capital of France?", "The capital of France is Paris."),
    ("Who wrote Hamlet?", "Hamlet was written by William Shakespeare."),
    ("What is the largest planet in the solar system?", "The largest planet is Jupiter."),
    ("What is the boiling point of water at sea level in Celsius?", "Water boils at 100 degrees Celsius."),
    ("Which element has the atomic number 1?", "The element with atomic number 1 is hydrogen."),
]


def build_prompts(n_questions: int, chat: bool, style: str) -> tuple[list[Prompt], tuple[str, ...]]:
    """Prompts for the workload: semcal.prompts over the bundled 'world' set when available,
    else a simple 5-shot Q/A prompt over questions written here."""
    try:
        from semcal.data import bundled
        from semcal.prompts import build_prompt, stop_strings

        questions: list[Question] = list(bundled("world"))[:n_questions]
        while len(questions) < n_questions:
            questions += questions[: n_questions - len(questions)]
        return [build_prompt(q, style, chat=chat) for q in questions], tuple(stop_strings(style, chat))
    except Exception as exc:  # noqa: BLE001 - the benchmark must run on a partial tree too
        print(f"(semcal.prompts/semcal.data unavailable: {exc}; using built-in prompts)", file=sys.stderr)
    from semcal.types import Message

    qs = [FALLBACK_QUESTIONS[i % len(FALLBACK_QUESTIONS)][0] for i in range(n_questions)]
    if chat:
        return [Prompt(messages=(Message("user", q + " Answer in one sentence."),)) for q in qs], ()
    shots = "".join(f"Q: {q}\nA: {a}\n\n" for q, a in FALLBACK_SHOTS)
    return [Prompt(text=shots + f"Q: {q}\nA:") for q in qs], ("\n",)


def run_sampler(sampler: Any, prompts: Sequence[Prompt], n: int, params: SamplingParams) -> dict[str, float]:
    t0 = time.perf_counter()
    out = sampler.sample(prompts, n, params)
    dt = time.perf_counter() - t0
    samples = sum(len(r) for r in out)
    tokens = sum(c.n_tokens for r in out for c in r)
    return {"seconds": dt, "samples": samples, "tokens": tokens}


def run_ceiling(sampler: Any, prompt: Prompt, rows: int, steps: int, every_row: bool = True
                ) -> dict[str, float]:
    """The compute ceiling of batched decoding, measured with the sampler's own engine and
    context: one prompt evaluated once and its cells shared by ``rows`` sequences, then
    ``steps`` ``llama_decode`` calls of ``rows`` tokens each — no sampling, no Python per
    token, no sequence ever finishing early (the batch stays full). ``every_row``: logits for
    every row, as sampling needs (for gemma-3-270m that is a 262k-entry output row each);
    False: for one row only (what the ceiling would be without the output layer's work)."""
    s = sampler
    lib = s._llama
    tokens = s.prompt_tokens(prompt)
    need = len(tokens) + rows * (steps + 1) + 64
    s._ensure_context(int(-(-need // 256) * 256))
    s._reset_kv()  # an empty cache, as the sampler keeps it between calls
    s._prefill(tokens, 0, 0)
    for j in range(1, rows):
        lib.llama_memory_seq_cp(s._mem, 0, j, -1, -1)
    b = s._batch
    for j in range(rows):
        b.seq_id[j][0] = j
    s._b_token[:rows] = tokens[-1]
    t0 = time.perf_counter()
    for step in range(steps):
        s._b_pos[:rows] = len(tokens) + step
        s._b_out[:rows] = 1 if every_row else 0
        if not every_row:
            s._b_out[0] = 1
        s._decode(rows)
    dt = time.perf_counter() - t0
    s._reset_kv()
    return {"seconds": dt, "samples": rows, "tokens": rows * steps}


def run_naive(path: str, texts: Sequence[str], n: int, params: SamplingParams, threads: int, n_ctx: int) -> dict[str, float]:
    """One ``create_completion`` per sample (llama-cpp-python's high-level API), with
    llama.cpp's extra CPU buffer types off as in semcal's backend (they crash on AMX CPUs)."""
    import llama_cpp

    from semcal.backends.llama_server import disable_extra_buffer_types

    disable_extra_buffer_types()
    llm = llama_cpp.Llama(path, n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, verbose=False)
    try:
        t0 = time.perf_counter()
        samples = tokens = 0
        for text in texts:
            for i in range(n):
                r = llm.create_completion(
                    text,
                    max_tokens=params.max_tokens,
                    temperature=params.temperature,
                    top_p=params.top_p,
                    top_k=0,
                    min_p=0.0,
                    repeat_penalty=1.0,
                    stop=list(params.stop) or None,
                    seed=sample_seed(params.seed, i),
                )
                samples += 1
                tokens += int(r["usage"]["completion_tokens"])
        dt = time.perf_counter() - t0
    finally:
        llm.close()
    return {"seconds": dt, "samples": samples, "tokens": tokens}


def find_server(given: str | None) -> str | None:
    """The llama-server binary: ``--server``, else ``$LLAMA_SERVER``, else the one that
    ``bench/build_llama_server.sh`` builds (``bench/.llama-server/llama-server``), else none."""
    import os
    from pathlib import Path

    def runnable(cand: str) -> bool:
        return Path(cand).is_file() and os.access(cand, os.X_OK)

    if given:  # asked for by name: that one or an error, never another
        if not runnable(given):
            raise SystemExit(f"--server {given}: not an executable file")
        return given
    for cand in (os.environ.get("LLAMA_SERVER"),
                 str(Path(__file__).resolve().parent / ".llama-server" / "llama-server")):
        if cand and runnable(cand):
            return cand
    return None


def run_server(binary: str, path: str, texts: Sequence[str], n: int, params: SamplingParams,
               threads: int, n_ctx: int, one_request: bool) -> dict[str, float]:
    """llama.cpp's own server on the same model, prompts and sampling settings, started here
    with ``n`` slots (``--no-repack``: the extra CPU buffer types are off, as in semcal's
    backend). ``one_request``: one ``n``-completion request per prompt, one after another (the
    server evaluates the prompt once and copies it to ``n`` slots, as semcal does); else every
    prompt's ``n`` samples as separate one-completion requests, ``n`` in flight at a time on
    ``n`` slots (continuous batching across prompts, as a client that knows no ``n`` would)."""
    import json
    import socket
    import subprocess
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [binary, "-m", path, "--host", "127.0.0.1", "--port", str(port), "-t", str(threads),
         "-tb", str(threads), "-np", str(n), "-c", str(n_ctx * n), "--no-repack", "--no-webui",
         "--threads-http", str(min(n, 32))],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"

    def post(body: dict[str, Any]) -> list[dict[str, Any]]:
        req = urllib.request.Request(url + "/completion", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=600) as r:
            got = json.loads(r.read())
        return got if isinstance(got, list) else [got]  # one result per completion

    def body(text: str, k: int, seed: int) -> dict[str, Any]:
        # the server's own endpoint: its OpenAI one counts only the first of n completions
        return {"prompt": text, "n_predict": params.max_tokens, "temperature": params.temperature,
                "top_p": params.top_p, "top_k": 0, "min_p": 0.0, "repeat_penalty": 1.0,
                "stop": list(params.stop), "n": k, "seed": seed, "cache_prompt": True}

    try:
        deadline = time.time() + 120
        while True:  # wait until the model is loaded
            try:
                with urllib.request.urlopen(url + "/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"llama-server did not start (exit {proc.poll()})")
            time.sleep(0.5)
        post(body(texts[0], 1, 0) | {"n_predict": 4})  # warm-up
        t0 = time.perf_counter()
        if one_request:
            answers = [post(body(t, n, params.seed)) for t in texts]
        else:
            with ThreadPoolExecutor(n) as pool:
                answers = list(pool.map(
                    lambda job: post(body(job[0], 1, sample_seed(params.seed, job[1]))),
                    [(t, i) for t in texts for i in range(n)]))
        dt = time.perf_counter() - t0
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    samples = sum(len(a) for a in answers)
    tokens = sum(int(c["tokens_predicted"]) for a in answers for c in a)
    return {"seconds": dt, "samples": samples, "tokens": tokens}


def run_contended(model: str, args: argparse.Namespace) -> None:
    """Idle vs beside two busy processes (started here), default threads vs every core."""
    import os
    import subprocess

    from semcal.backends.llamacpp import LlamaCppSampler, _cores

    def busy_processes() -> list[Any]:
        return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]

    def stop(procs: list[Any]) -> None:
        for p in procs:
            p.kill()
            p.wait()

    def measure(threads: int | None, start_busy: bool = False) -> tuple[str, dict[str, float]]:
        """One timed run; ``start_busy``: the busy processes start after the model loaded
        (and stop after the run), so the load-time thread count was chosen on an idle
        machine and only the governor can correct it."""
        s = LlamaCppSampler(model, n_threads=threads, n_parallel=args.n_parallel)
        procs: list[Any] = []
        try:
            prompts, stops = build_prompts(args.questions, s.is_chat, args.style)
            params = SamplingParams(temperature=args.temperature, max_tokens=args.max_tokens,
                                    stop=stops, seed=0)
            s.sample(prompts[:1], 2, SamplingParams(max_tokens=4, stop=stops))
            first = s.n_threads
            if start_busy:
                procs = busy_processes()
                time.sleep(1.0)
            r = run_sampler(s, prompts, args.samples, params)
            return (f"{first}->{s.n_threads}" if s.n_threads != first else str(first)), r
        finally:
            stop(procs)
            s.close()

    rows = [("idle, default threads", *measure(None)), ("idle, 1 thread", *measure(1)),
            ("2 busy start after load, default", *measure(None, start_busy=True))]
    busy = busy_processes()
    try:
        time.sleep(1.0)
        rows.append(("2 busy threads, default threads", *measure(None)))
        rows.append(("2 busy threads, every core", *measure(_cores())))
    finally:
        stop(busy)
    idle = rows[0][2]["tokens"] / rows[0][2]["seconds"]
    print(f"\nmodel {model}, contended ({os.cpu_count()} cores)")
    print(f"  {'condition':<34} {'threads':>7} {'samp/s':>9} {'tok/s':>9} {'of idle':>8}")
    for name, threads, r in rows:
        tps = r["tokens"] / r["seconds"]
        print(f"  {name:<34} {threads:>7} {r['samples'] / r['seconds']:>9.2f} {tps:>9.1f} "
              f"{100 * tps / idle:>7.0f}%")


def fmt(name: str, r: dict[str, float], base: dict[str, float] | None) -> str:
    sps = r["samples"] / r["seconds"]
    tps = r["tokens"] / r["seconds"]
    ratio = f"{tps / (base['tokens'] / base['seconds']):6.2f}x" if base else "     -"
    return f"  {name:<40} {r['samples']:>6.0f} {r['tokens']:>7.0f} {r['seconds']:>8.1f} {sps:>9.2f} {tps:>9.1f}  {ratio}"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="gemma-3-270m,smollm2-135m-instruct")
    ap.add_argument("--backends", default="llamacpp,hf", help="semcal backends to try (unavailable ones are reported)")
    ap.add_argument("-q", "--questions", type=int, default=20)
    ap.add_argument("-n", "--samples", type=int, default=20)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--style", default="sentence")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-parallel", type=int, default=32)
    ap.add_argument("--naive-questions", type=int, default=None, help="questions for the naive loop (default: all)")
    ap.add_argument("--no-naive", action="store_true")
    ap.add_argument("--no-prefix-cache", action="store_true", help="skip the prefix-cache-off row")
    ap.add_argument("--server", default=None,
                    help="llama-server binary for the server rows (default: $LLAMA_SERVER, else "
                         "bench/.llama-server/llama-server from bench/build_llama_server.sh; "
                         "without one the server rows are skipped)")
    ap.add_argument("--repeats", type=int, default=2, help="logprobs on/off pairs (the best of each is shown)")
    ap.add_argument("--contended", action="store_true",
                    help="only the contention table: idle vs beside two busy processes")
    args = ap.parse_args(argv)
    if args.contended:
        run_contended([m.strip() for m in args.models.split(",") if m.strip()][0], args)
        return 0

    print(
        f"workload: {args.questions} questions x {args.samples} samples, style={args.style}, "
        f"T={args.temperature}, max_tokens={args.max_tokens}, threads={args.threads}"
    )
    try:
        import os

        print(f"load average at start: {os.getloadavg()[0]:.2f} (2 cores shared: figures are noisy when > ~1)")
    except OSError:
        pass
    server = find_server(args.server)  # a bad --server is an error before any model runs
    header = f"  {'backend':<40} {'samp':>6} {'tokens':>7} {'sec':>8} {'samp/s':>9} {'tok/s':>9}  vs naive"
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        from semcal.backends.llamacpp import LlamaCppSampler

        main_sampler = LlamaCppSampler(model, n_threads=args.threads, n_parallel=args.n_parallel)
        prompts, stops = build_prompts(args.questions, main_sampler.is_chat, args.style)
        params = SamplingParams(temperature=args.temperature, max_tokens=args.max_tokens, stop=stops, seed=0)
        rows: list[tuple[str, dict[str, float]]] = []
        # warm-up (page cache, first-call allocations) on one prompt
        main_sampler.sample(prompts[:1], 2, SamplingParams(max_tokens=4, stop=stops))
        off = SamplingParams(temperature=args.temperature, max_tokens=args.max_tokens, stop=stops, seed=0, logprobs=False)
        # on/off alternate twice and the faster of each pair is kept: the log-prob cost is a few
        # percent at most, below the run-to-run noise of a shared 2-core machine
        runs_on, runs_off = [], []
        for _ in range(args.repeats):
            runs_on.append(run_sampler(main_sampler, prompts, args.samples, params))
            runs_off.append(run_sampler(main_sampler, prompts, args.samples, off))
        rows.append(("semcal llamacpp (default)", min(runs_on, key=lambda r: r["seconds"])))
        rows.append(("semcal llamacpp, logprobs off", min(runs_off, key=lambda r: r["seconds"])))
        if not args.no_prefix_cache:
            # what the cross-prompt prefix cache is worth: every prompt evaluated in full
            pc = LlamaCppSampler(model, n_threads=args.threads, n_parallel=args.n_parallel, prefix_cache=False)
            try:
                pc.sample(prompts[:1], 2, SamplingParams(max_tokens=4, stop=stops))
                rows.append(("semcal llamacpp, prefix cache off", run_sampler(pc, prompts, args.samples, params)))
            finally:
                pc.close()
        # the compute ceiling, with the same engine, threads and batch size: full batches of
        # llama_decode with no sampling (logits for every row, as sampling needs; and for one
        # row, which shows what the output layer costs)
        ceiling = [run_ceiling(main_sampler, prompts[0], args.n_parallel, args.max_tokens)
                   for _ in range(args.repeats)]
        rows.append(("ceiling: decode only, logits every row", min(ceiling, key=lambda r: r["seconds"])))
        rows.append(("ceiling: decode only, logits one row",
                     run_ceiling(main_sampler, prompts[0], args.n_parallel, args.max_tokens,
                                 every_row=False)))
        texts = [main_sampler.render(p) for p in prompts]
        path = str(main_sampler.spec.path)
        longest = max(len(main_sampler.prompt_tokens(p)) for p in prompts)
        main_sampler.close()
        for backend in [b.strip() for b in args.backends.split(",") if b.strip() and b.strip() != "llamacpp"]:
            try:
                # the same thread count as llama.cpp (torch would take every core)
                opts = {"n_threads": args.threads} if backend == "hf" else {}
                s = get_sampler(backend, model, **opts)
            except Exception as exc:  # noqa: BLE001 - report and go on
                print(f"  ({backend}: unavailable for {model}: {str(exc).splitlines()[0][:120]})")
                continue
            try:
                rows.append((f"semcal {backend}", run_sampler(s, prompts, args.samples, params)))
            except Exception as exc:  # noqa: BLE001
                print(f"  ({backend}: failed on {model}: {str(exc).splitlines()[0][:120]})")
            finally:
                s.close()
        if server is None:
            print("  (llama-server: none found, its rows are skipped; bench/build_llama_server.sh "
                  "builds one)")
        else:
            ctx = longest + args.max_tokens + 64
            for one, name in ((False, f"llama-server, n=1 x {args.samples} requests"),
                              (True, f"llama-server, one n={args.samples} request")):
                try:
                    rows.append((name, run_server(server, path, texts, args.samples, params,
                                                  args.threads, ctx, one)))
                except Exception as exc:  # noqa: BLE001 - report and go on
                    print(f"  ({name}: failed: {(str(exc) or repr(exc)).splitlines()[0][:160]})")
        base = None
        if not args.no_naive:
            nq = args.naive_questions or len(texts)
            base = run_naive(path, texts[:nq], args.samples, params, args.threads, n_ctx=longest + args.max_tokens + 64)
        print(f"\nmodel {model}")
        print(header)
        for name, r in rows:
            print(fmt(name, r, base))
        if base:
            print(fmt("naive create_completion loop", base, base))
        on, off_r = rows[0][1], rows[1][1]
        cost = (on["seconds"] / on["tokens"]) / (off_r["seconds"] / off_r["tokens"]) - 1
        print(f"  per-token cost of log-probabilities: {100 * cost:+.1f}% (time per token, on vs off)")
        ceil = dict(rows)["ceiling: decode only, logits every row"]
        share = (on["tokens"] / on["seconds"]) / (ceil["tokens"] / ceil["seconds"])
        print(f"  semcal (default) reaches {100 * share:.0f}% of the ceiling with logits every row")
        for name, r in rows:
            if name.startswith("llama-server"):
                print(f"  semcal (default) vs {name}: "
                      f"{(on['tokens'] / on['seconds']) / (r['tokens'] / r['seconds']):.2f}x tok/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
