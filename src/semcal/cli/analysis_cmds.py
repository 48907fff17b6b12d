"""The commands that read a store (no model): ``analyze``, ``report`` and ``compare``."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from semcal.cli.format import (
    _f,
    _status,
    _strict_json,
    format_audit,
    format_b_check,
    format_b_sensitivity,
    format_b_unchecked,
    format_estimator_table,
    format_summary_table,
)
from semcal.cli.output import _say
from semcal.cli.parser import _flag_names, _parse_opts
from semcal.errors import InputError
from semcal.spec import AdaptiveSpec, JudgeSpec, validate_adaptive


def _analyze(args: argparse.Namespace, dirs: Sequence[str]) -> list[Any]:
    from semcal import analysis

    judge = None
    if getattr(args, "judge_model", None):
        judge = JudgeSpec(model=args.judge_model, backend=args.judge_backend or "llamacpp",
                          base_url=args.judge_base_url)
    elif getattr(args, "judge_backend", None) or getattr(args, "judge_base_url", None):
        raise InputError("--judge-backend and --judge-base-url need --judge-model")
    bs = _collapse_list(args.collapse)
    if len(bs) > 1 and args.command != "analyze":
        raise InputError(f"--collapse {args.collapse}: '{args.command}' shows one B; give a list "
                         "of Bs to 'semcal analyze'")
    out = []
    for d in dirs:
        per_b = [analysis.analyze_dir(
            d, runs=getattr(args, "runs", None), collapse=b, grader=args.grader,
            collapse_opts=_parse_opts(getattr(args, "collapse_opt", None), "--collapse-opt"),
            grader_opts=_parse_opts(getattr(args, "grader_opt", None), "--grader-opt"),
            estimators=getattr(args, "estimators", None), n_boot=args.n_boot, judge=judge,
            audit_against=getattr(args, "audit_against", None),
        ) for b in bs]
        for runs in zip(*per_b):  # each run's rows side by side, one per B
            out += runs
    return out


def _collapse_list(value: str | None) -> list[str | None]:
    """``--collapse auto,exact`` as ["auto", "exact"]; None (the run's own B) as [None]."""
    if value is None:
        return [None]
    names = [v.strip() for v in value.split(",")]
    if not all(names):
        raise InputError(f"--collapse {value!r}: an empty name in the list")
    if len(names) > 8:
        raise InputError(f"--collapse: at most 8 Bs at once, got {len(names)}")
    return list(dict.fromkeys(names))


def cmd_analyze(args: argparse.Namespace) -> int:
    from semcal import analysis

    replay = {k: v for k, v in (("round", args.adaptive_round), ("epsilon", args.epsilon),
                                ("delta", args.delta), ("min_samples", args.min_samples))
              if v is not None}
    if replay and not args.replay:
        raise InputError(f"{_flag_names(replay)} set the adaptive replay: add --replay-adaptive "
                         "(or leave them out)")
    analyses = _analyze(args, [args.dir])
    if args.json:
        print(_strict_json(
            [{"run": a.run.name, "model": a.run.model, "collapse": a.collapse,
              "grader": a.grader, "collapse_label": a.collapse_label,
              "grader_label": a.grader_label, **a.summary, **_status(a),
              "estimators": a.estimators, "audit": a.audit, "b_check": a.b_check}
             for a in analyses]))
    else:
        print(format_summary_table(analyses))
        sensitivity = format_b_sensitivity(analyses)
        if sensitivity:
            print("\n" + sensitivity)
        for a in analyses:
            print(format_audit(a))
            if a.b_check:
                print(format_b_check(a))
            elif not args.quiet and (line := format_b_unchecked(a, str(args.dir))):
                print(line)
        for a in analyses:
            t = format_estimator_table(a)
            if t and not args.quiet:
                print(f"\nconfidence estimators, run {a.run.name}:\n{t}")
    if args.replay:
        given = {"round": args.adaptive_round, "epsilon": args.epsilon, "delta": args.delta,
                 "min_samples": args.min_samples}
        ad = dataclasses.replace(AdaptiveSpec(enabled=True),
                                 **{k: v for k, v in given.items() if v is not None})

        validate_adaptive(ad)
        print(f"\nadaptive replay (round {ad.round}, epsilon {ad.epsilon}, delta {ad.delta}, "
              f"min {ad.min_samples}):")
        for a in analyses:
            r = analysis.adaptive_replay(a, ad)
            print(f"  {r['run']}: {r['samples_adaptive']}/{r['samples_fixed']} samples "
                  f"({100 * r['fraction']:.0f}%), {r['stopped_early']}/{r['n_questions']} questions "
                  f"stopped early; smECE {_f(r['smece_fixed'])} -> {_f(r['smece_adaptive'])}, "
                  f"accuracy {_f(r['accuracy_fixed'])} -> {_f(r['accuracy_adaptive'])}")
    if args.csv or args.parquet:  # the per-question table is built only to be written
        rows = [r for a in analyses for r in a.table()]
        for path in (args.csv, args.parquet):
            if path:
                analysis.write_table(rows, path)
                _say(args, f"wrote {path}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from semcal.report.html import write_report

    analyses = _analyze(args, [args.dir])
    out = Path(args.output) if args.output else Path(args.dir) / "report.html"
    paths = write_report(analyses, out, export=not args.no_tables)
    print(format_summary_table(analyses))
    print(f"report: {paths['html']}")
    for k in ("csv", "parquet"):
        if paths.get(k):  # always said, even with -q: files appeared next to the report
            print(f"table: {paths[k]}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from semcal.report.html import compare_notes, write_compare

    args.runs = None
    args.estimators = None
    analyses = _analyze(args, args.dirs)
    path = write_compare(analyses, Path(args.output))  # refuses when no run has a question
    kept, notes = compare_notes(analyses)
    for note in notes:  # always said, even with -q: they change what the numbers mean
        print(f"semcal: warning: {note}", file=sys.stderr)
    print(format_summary_table(kept, compare=True))
    print(f"comparison: {path}")
    return 0
