"""The commands that sample: ``run``, ``resume`` and ``demo`` (a run spec from flags, the
run line printed after each run, the resume hint after an interruption)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from semcal.backends import BACKENDS
from semcal.backends.models import resolve_model
from semcal.cli.format import format_summary_table
from semcal.cli.output import _say
from semcal.cli.parser import DEMO_MODELS, DEMO_SIZES, _flag_names, _parse_opts
from semcal.cli.signals import _interrupt_status, _stop_name
from semcal.errors import BackendError, InputError
from semcal.spec import AdaptiveSpec, ExecutorSpec, RunSpec


def _spec_from_args(args: argparse.Namespace) -> Any:
    flat = {
        k: getattr(args, k, None)
        for k in ("model", "backend", "dataset", "format", "task", "style", "samples",
                  "temperature", "top_p", "max_tokens", "seed", "k_shot", "batch_questions",
                  "collapse", "limit", "name", "greedy", "model_estimators")
    }
    ad_flags = {
        "round": getattr(args, "adaptive_round", None),
        "epsilon": getattr(args, "epsilon", None),
        "delta": getattr(args, "delta", None),
        "min_samples": getattr(args, "min_samples", None),
    }
    ad_flags = {k: v for k, v in ad_flags.items() if v is not None}
    if args.spec:
        spec = RunSpec.from_toml(args.spec, **flat)
    else:
        if not flat.get("model"):
            raise InputError("give a spec file or --model (see 'semcal run --help')")
        spec = RunSpec.from_dict({k: v for k, v in flat.items() if v is not None})
    if ad_flags and not args.adaptive and not spec.adaptive.enabled:
        raise InputError(f"{_flag_names(ad_flags)} set adaptive sampling, which this run does "
                         "not use: add --adaptive (or leave them out)")
    if args.adaptive or ad_flags:
        base = spec.adaptive
        enabled = True if args.adaptive else base.enabled
        spec = dataclasses.replace(
            spec, adaptive=AdaptiveSpec(**{**dataclasses.asdict(base), **ad_flags, "enabled": enabled})
        )
    ex_flags = {k: v for k, v in (("kind", getattr(args, "executor", None)),
                                  ("address", getattr(args, "ray_address", None)),
                                  ("workers", getattr(args, "workers", None))) if v is not None}
    if ex_flags:
        if "kind" not in ex_flags and spec.executor.kind != "ray":
            raise InputError("--ray-address and --workers need --executor ray")
        spec = dataclasses.replace(
            spec, executor=ExecutorSpec(**{**dataclasses.asdict(spec.executor), **ex_flags}))
    extra = _parse_opts(getattr(args, "backend_opt", None), "--backend-opt")
    if getattr(args, "threads", None) is not None:
        _check_threads(args.threads)
        extra["n_threads"] = args.threads
    if extra:
        spec = spec.replace(backend_options={**dict(spec.backend_options), **extra})
    return spec


def _check_threads(n: int) -> None:
    if not 1 <= n <= 4096:
        raise InputError(f"--threads must be between 1 and 4096, got {n} "
                         "(leave it out to use the cores no other work keeps busy)")


def _print_results(analyses: Sequence[Any], args: argparse.Namespace) -> None:
    print(format_summary_table(analyses))


def _interrupted(args: argparse.Namespace, res: Any, how: str) -> int:
    print(
        f"semcal: {_stop_name()}: {res.n_done}/{res.n_questions} questions of run "
        f"{res.run_name!r} are stored in {res.directory}; nothing committed is lost.\n"
        f"Resume with: {how}",
        file=sys.stderr,
    )
    return _interrupt_status()


def _run_or_hint(runner: Any, spec: Any, out: Any, quiet: bool, how: str,
                 **kwargs: Any) -> Any:
    """``runner.run``; a backend that fails for good (a server gone, a model that cannot
    answer) ends with its message and how to resume the stored part."""
    from semcal.store import STORE_NAME

    try:
        return runner.run(spec, out, quiet=quiet, **kwargs)
    except BackendError as exc:
        # it failed before anything was stored: before the store, or (a server that cannot be
        # reached) before this run was created in it
        if getattr(exc, "before_run", False) or not (Path(out) / STORE_NAME).is_file():
            raise
        raise BackendError(f"{exc} (every finished question is stored; resume with: {how})") from None


def _check_k_shot(args: argparse.Namespace, spec: Any) -> None:
    """An explicit --k-shot on a chat model is refused: chat prompts carry no worked examples,
    so the number would be stored but never used. (Known before loading for a llama.cpp model:
    the embedded model's kind or the GGUF's chat template.)"""
    if not getattr(args, "k_shot", None) or not BACKENDS.flag(spec.backend, "local_models"):
        return
    if resolve_model(spec.model).is_chat:
        raise InputError(f"--k-shot {args.k_shot}: {spec.model} is a chat model, whose prompts "
                         "carry no worked examples; leave --k-shot out")


def cmd_run(args: argparse.Namespace) -> int:
    from semcal import analysis, runner

    spec = _spec_from_args(args)
    runner.preflight(spec)
    _check_k_shot(args, spec)
    res = _run_or_hint(runner, spec, args.out, args.quiet, f"semcal resume {args.out}")
    if res.interrupted:
        return _interrupted(args, res, f"semcal resume {args.out}")
    _say(args, _run_line(res))
    a = analysis.analyze_dir(args.out, runs=[res.run_name], n_boot=1000)
    _print_results(a, args)
    _say(args, f"report: semcal report {args.out}")
    return 0


def _run_line(res: Any) -> str:
    rate = res.samples_new / res.seconds if res.seconds > 0 else 0.0
    extra = ""
    if res.sample_fraction is not None:
        extra = f", adaptive used {100 * res.sample_fraction:.0f}% of the fixed-M samples"
    if getattr(res, "estimates_new", 0):
        extra += (f"; P(True)/verbalised confidence for {res.estimates_new} questions in "
                  f"{res.estimate_seconds:.1f}s")
    return (
        f"run {res.run_name!r}: {res.n_done}/{res.n_questions} questions, {res.samples_total} "
        f"samples ({res.samples_new} new, {rate:.1f}/s) in {res.seconds:.1f}s"
        f"{' (resumed)' if res.resumed else ''}{extra}"
    )


def cmd_resume(args: argparse.Namespace) -> int:
    from semcal import runner
    from semcal.store import Store, has_store

    if not has_store(args.dir):
        raise InputError(f"no semcal store in {args.dir}")
    with Store(args.dir, readonly=True) as st:
        runs = [r for r in st.runs() if not args.runs or r.name in args.runs]
        if not runs and not args.runs:
            raise InputError(f"{args.dir}: the store has no runs; nothing to resume")
        todo = []
        for r in runs:
            done, total, _ = st.progress(r.id)
            if r.finished is None or done < total:
                todo.append(r)
    if not todo:
        _say(args, f"nothing to resume in {args.dir}: every run is complete")
        return 0
    for r in todo:
        spec = RunSpec.from_dict(r.spec, where=f"run {r.name}")
        # the run's stored questions, not the data file's present state
        res = _run_or_hint(runner, spec, args.dir, args.quiet, f"semcal resume {args.dir}",
                           resume=True)
        if res.interrupted:
            return _interrupted(args, res, f"semcal resume {args.dir}")
        _say(args, _run_line(res))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from semcal import analysis, runner
    from semcal.report.html import write_report

    lim = str(args.limit)
    if lim in DEMO_SIZES:
        n_q, m = DEMO_SIZES[lim]
    else:
        try:
            n_q = int(lim)
        except ValueError:
            raise InputError(
                f"--limit must be a number or one of {', '.join(DEMO_SIZES)}, got {lim!r}"
            ) from None
        if n_q < 1:
            raise InputError(f"--limit must be >= 1, got {n_q}")
        m = DEMO_SIZES["full"][1]
    if args.samples:
        m = args.samples
    models_ = [s.strip() for s in args.models.split(",")] if args.models else list(DEMO_MODELS)
    if args.threads is not None:
        _check_threads(args.threads)
    opts = {"n_threads": args.threads} if args.threads is not None else {}
    specs = [
        RunSpec(
            model=mname, dataset="demo", style=args.style, samples=m, limit=n_q, seed=args.seed,
            backend_options=opts, adaptive=AdaptiveSpec(enabled=bool(args.adaptive)),
            model_estimators=bool(args.model_estimators),
        )
        for mname in models_
    ]
    for s in specs:
        runner.preflight(s)
    t_all = time.monotonic()
    _say(args, f"semcal demo: {len(specs)} models × {n_q} questions × M={m}, style {args.style} "
               f"-> {args.out}")
    names = []
    for s in specs:
        res = _run_or_hint(runner, s, args.out, args.quiet, _demo_cmd(args))
        if res.interrupted:
            return _interrupted(args, res, _demo_cmd(args))
        _say(args, _run_line(res))
        names.append(res.run_name)
    analyses = analysis.analyze_dir(args.out, runs=names, n_boot=1000)
    paths = write_report(analyses, Path(args.out) / "report.html")
    print(format_summary_table(analyses))
    print(f"report: {paths['html']}")
    _say(args, demo_b_note(args.style, str(args.out)))
    _say(args, f"total time {time.monotonic() - t_all:.1f}s")
    return 0


def demo_b_note(style: str, out: str = "DIR") -> str:
    """Which style the demo's B is measured best on (docs/collapse.md, held-out hand labels),
    and how to measure B's error on this very run."""
    first = ("B is auto, the rule-based default; against held-out hand labels it reads concise "
             "answers best")
    if style == "concise":
        return f"{first}. To check it on this run: semcal label {out} (docs/labelling.md)"
    return (f"{first}; on {'chains of thought' if style == 'cot' else 'sentences'} its error "
            "can move smECE by a few hundredths, as much as the effects compared. Check it on "
            f"this run: semcal label {out}, or compare Bs: semcal analyze {out} "
            "--collapse auto,judge")


def _demo_cmd(args: argparse.Namespace) -> str:
    parts = ["semcal demo", f"--out {args.out}", f"--limit {args.limit}"]
    if args.samples:
        parts.append(f"--samples {args.samples}")
    if args.style != "sentence":
        parts.append(f"--style {args.style}")
    if args.models:
        parts.append(f"--models {args.models}")
    if args.adaptive:
        parts.append("--adaptive")
    if args.seed:
        parts.append(f"--seed {args.seed}")
    if not args.model_estimators:
        parts.append("--no-model-estimators")
    return " ".join(parts)
