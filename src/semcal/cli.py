"""Command-line interface (thin: parses arguments and calls the library).

Commands: ``demo``, ``run``, ``resume``, ``analyze``, ``report``, ``compare``, ``reproduce``,
``models``, ``label``.
Every user mistake ends as one line on stderr and a non-zero exit status; ``--debug``
shows tracebacks of unexpected errors.

The modules behind a command that load numpy, scipy or matplotlib (``analysis``, ``runner``,
``store``, ``reproduce``, ``report``) are imported by that command's function, the only
imports inside functions in semcal besides optional third-party packages: ``semcal --help``
and a mistyped argument answer in about 0.2 s instead of 1.5 s.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import logging
import math
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from semcal import __version__
from semcal.backends import models
from semcal.backends.models import resolve_model
from semcal.errors import BackendError, InputError, SemcalError
from semcal.files import check_output
from semcal.limits import BOUNDS, check_int
from semcal.spec import AdaptiveSpec, ExecutorSpec, JudgeSpec, RunSpec, tomllib, validate_adaptive

log = logging.getLogger("semcal")

#: exit statuses
EXIT_ERROR = 2
EXIT_UNEXPECTED = 1
EXIT_INTERRUPTED = 130

#: the signal that stopped this command (SIGTERM from `timeout` or a batch scheduler, SIGHUP
#: from a closed terminal); None for Ctrl-C. Each is handled like Ctrl-C: the batch in progress
#: is dropped, everything committed stays, the resume command is printed, and the exit status is
#: the shell's convention 128 + signal number.
_STOP_SIGNAL: int | None = None


def _on_stop_signal(signum: int, frame: Any) -> None:
    global _STOP_SIGNAL
    _STOP_SIGNAL = signum
    raise KeyboardInterrupt


def _install_stop_signals() -> None:
    global _STOP_SIGNAL
    _STOP_SIGNAL = None
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None:
            signal.signal(sig, _on_stop_signal)


def _interrupt_status() -> int:
    return EXIT_INTERRUPTED if _STOP_SIGNAL is None else 128 + int(_STOP_SIGNAL)


def _stop_name() -> str:
    return "interrupted" if _STOP_SIGNAL is None else f"stopped by {signal.Signals(_STOP_SIGNAL).name}"

#: the demo: an embedded base model and an embedded instruct model on the bundled questions
DEMO_MODELS = ("gemma-3-270m", "smollm2-135m-instruct")
#: --limit presets of the demo: name -> (questions, samples per question)
DEMO_SIZES = {"tiny": (4, 4), "small": (8, 6), "full": (60, 8)}


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {printable(message)} (see '{self.prog} --help')\n")
        raise SystemExit(EXIT_ERROR)


def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("output")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bars, fewer messages")
    g.add_argument("-v", "--verbose", action="store_true", help="log what semcal does")
    g.add_argument("--debug", action="store_true", help="debug logging and full tracebacks")
    return p


def _bounded(name: str, low: int | None = None) -> Callable[[str], int]:
    """An integer flag within the range of ``name`` in :data:`semcal.limits.BOUNDS` (one
    table for flags and spec files), checked while the arguments are parsed: a count that
    would make the work endless fails at once, naming the flag and the bound."""
    BOUNDS[name]  # a name missing from the table fails when the parser is built

    def parse(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid int value: {s!r}") from None
        try:
            return check_int(name, v, low)
        except InputError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def _demo_limit(s: str) -> str:
    """``demo --limit``: a preset name, or a number of questions within its bound."""
    if s not in DEMO_SIZES:
        try:
            int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be a number or one of {', '.join(DEMO_SIZES)}, got {s!r}") from None
        _bounded("limit")(s)
    return s


def _add_sampling_flags(p: argparse.ArgumentParser, with_model: bool = True) -> None:
    if with_model:
        p.add_argument("--model", help="embedded model name (see 'semcal models'), GGUF path or HF id")
        p.add_argument("--backend", help="sampling engine: llamacpp (default), hf, openai, vllm; mock (no model: tests, benchmarks)")
        p.add_argument("--dataset", help="bundled question set (demo, world, arithmetic) or a file")
        p.add_argument("--format", help="format/layout of a dataset file (e.g. jsonl, csv, "
                       "triviaqa, gsm8k); an error with a bundled set")
        p.add_argument("--task", help="task family of the questions, qa or math: forced on a "
                       "file's questions; picks that task's questions of a bundled set")
        p.add_argument("--style", help="response style: concise, sentence (default) or cot")
    p.add_argument("--samples", "-M", type=_bounded("samples"),
                   help="samples per question M (the most per question if adaptive)")
    p.add_argument("--temperature", type=float, help="sampling temperature (default 1.0)")
    p.add_argument("--top-p", type=float, dest="top_p", help="nucleus sampling (default 1.0)")
    p.add_argument("--max-tokens", type=_bounded("max_tokens"), dest="max_tokens",
                   help="tokens per answer")
    p.add_argument("--seed", type=_bounded("seed"), help="run seed (default 0)")
    p.add_argument("--k-shot", type=_bounded("k_shot"), dest="k_shot",
                   help="few-shot examples for base models")
    p.add_argument(
        "--batch-questions", type=_bounded("batch_questions"), dest="batch_questions",
        help="questions per backend call (default 1; raise for engines that batch, e.g. vLLM)",
    )
    p.add_argument("--collapse", help="collapsing function B used by adaptive stopping and the "
                   "model estimators: auto (default), exact, math, embedding, or judge with a "
                   "[judge] table in the spec")
    ad = p.add_argument_group("adaptive sampling")
    ad.add_argument("--adaptive", action="store_true", default=None,
                    help="stop a question early once its plurality share is pinned down")
    ad.add_argument("--round", type=_bounded("adaptive.round"), dest="adaptive_round",
                    help="samples per round (5)")
    ad.add_argument("--epsilon", type=float, help="half-width of the share's interval (0.1)")
    ad.add_argument("--delta", type=float, help="error probability of the interval (0.05)")
    ad.add_argument("--min-samples", type=_bounded("adaptive.min_samples"), dest="min_samples",
                    help="least samples (10)")


_OPT_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def _parse_opts(items: Sequence[str] | None, flag: str) -> dict[str, Any]:
    """``K=V`` options of a component (``--collapse-opt threshold=0.9``): V is read as a TOML
    value (number, true/false, "quoted string") and else taken as a plain string."""

    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not _OPT_KEY.fullmatch(key):
            raise InputError(f"{flag} wants KEY=VALUE with a name for KEY, got {item!r}")
        if len(raw) > 10_000:
            raise InputError(f"{flag} {key}: the value is longer than 10000 characters")
        try:
            value: Any = tomllib.loads(f"v = {raw.strip()}")["v"]
        except (tomllib.TOMLDecodeError, RecursionError):
            value = raw.strip()
        if isinstance(value, (dict, list)):
            raise InputError(f"{flag} {key}: give a number, true/false or a string")
        if key == "max_tokens" and isinstance(value, int):  # the judge's reply budget
            check_int("max_tokens", value, label=f"{flag} max_tokens")
        out[key] = value
    return out


def _add_opt_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--collapse-opt", action="append", dest="collapse_opt", metavar="K=V",
                   help="an option of the collapsing function, e.g. threshold=0.9 (embedding), "
                   "unmarked=last_number, max_words=8 (repeatable)")
    p.add_argument("--grader-opt", action="append", dest="grader_opt", metavar="K=V",
                   help="an option of the grader, e.g. rel_tol=0.01 (numeric) (repeatable)")


def _add_analysis_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--collapse", default=None,
                   help="collapsing function B: auto, exact, math, embedding, judge (needs a "
                   "judge model: --judge-model or the run's [judge] table); default: the B "
                   "each run was sampled with (auto unless its spec names another); analyze "
                   "takes a list (auto,exact) and shows each B's numbers side by side")
    p.add_argument("--grader", default="auto", help="grader: auto (default: numeric for math, "
                   "exact otherwise), exact, numeric, judge (needs a judge model)")
    _add_opt_flags(p)
    p.add_argument("--audit-against", dest="audit_against", metavar="B",
                   help="compare B's classes with those of a second B and list the samples they "
                   "disagree on (default for --collapse judge: auto)")
    j = p.add_argument_group("judge model (for --collapse judge and --grader judge)")
    j.add_argument("--judge-model", dest="judge_model",
                   help="embedded name, GGUF path, HF id, or a server's model name")
    j.add_argument("--judge-backend", dest="judge_backend", default=None,
                   help="llamacpp (default), hf, vllm, openai")
    j.add_argument("--judge-base-url", dest="judge_base_url",
                   help="server URL for --judge-backend openai, e.g. http://127.0.0.1:8080/v1")
    p.add_argument("--estimators", default=None,
                   help="confidence estimators to compare: 'all' or a comma list")
    p.add_argument("--run", action="append", dest="runs", help="only this run (repeatable)")
    p.add_argument("--n-boot", type=_bounded("n_boot"), default=1000, dest="n_boot",
                   help="bootstrap resamples for confidence intervals (1000)")


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    p = _Parser(prog="semcal", description="Measure semantic calibration of language models.")
    p.add_argument("--version", action="version", version=f"semcal {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    d = sub.add_parser(
        "demo", parents=[common], help="the offline demo: a base and an instruct model",
        description="Sample the embedded base model (gemma-3-270m) and instruct model "
        "(smollm2-135m-instruct) on the bundled demo questions in sentence style, print their "
        "calibration and write an HTML report. Takes a few minutes on a 2-core CPU.",
    )
    d.add_argument("--out", default="semcal-demo", help="experiment directory (semcal-demo)")
    d.add_argument("--limit", default="full", type=_demo_limit,
                   help="questions: a number or a preset (tiny, small, full)")
    d.add_argument("--samples", "-M", type=_bounded("samples"), help="samples per question")
    d.add_argument("--style", default="sentence", help="response style (sentence)")
    d.add_argument("--models", help="comma list of models (default: the two embedded ones)")
    d.add_argument("--adaptive", action="store_true", help="use adaptive sampling")
    d.add_argument("--seed", type=_bounded("seed"), default=0, help="run seed (0)")
    d.add_argument("--threads", type=_bounded("threads"), help="CPU threads for llama.cpp, 1-4096 (default: the cores that no other work keeps busy when the model loads)")
    d.add_argument("--no-model-estimators", action="store_false", dest="model_estimators",
                   help="skip P(True) and verbalised confidence (two extra model calls per "
                   "question; measured 2%% extra time for the instruct model, 20%% for the base "
                   "model, whose few-shot rating prompts are long)")

    r = sub.add_parser(
        "run", parents=[common], help="sample a run from a spec file and/or flags",
        description="Sample M answers per question and store them in OUT/semcal.sqlite. "
        "Running the same spec again into the same directory resumes it.",
    )
    r.add_argument("spec", nargs="?", help="run spec (TOML); flags override its values")
    r.add_argument("--out", required=True, help="experiment directory")
    r.add_argument("--name", help="run name in the store")
    r.add_argument("--limit", type=_bounded("limit"), help="first N questions only")
    r.add_argument("--no-greedy", action="store_false", dest="greedy", default=None,
                   help="skip the greedy completion per question (used by baselines)")
    r.add_argument("--threads", type=_bounded("threads"), help="CPU threads for llama.cpp, 1-4096 (default: the cores that no other work keeps busy when the model loads)")
    ex = r.add_argument_group("executor (where the sampling runs)")
    ex.add_argument("--executor", choices=("local", "ray"), default=None,
                    help="local (default): this process; ray: Ray actors, each with its own "
                    "model, this process the only writer of the store (pip install "
                    "'semcal[ray]')")
    ex.add_argument("--ray-address", dest="ray_address", metavar="auto|HOST:PORT",
                    help="a running Ray cluster (default: start a local one)")
    ex.add_argument("--workers", type=_bounded("workers"), help="Ray actors (default 2)")
    r.add_argument("--backend-opt", action="append", dest="backend_opt", metavar="K=V",
                   help="an option of the backend, as in the spec's [backend_options], e.g. "
                   "n_parallel=4 (llamacpp), timeout=120 (openai) (repeatable)")
    r.add_argument("--model-estimators", action="store_true", dest="model_estimators",
                   default=None,
                   help="also ask the model for P(True) and its verbalised confidence in each "
                   "question's plurality answer (two extra calls per question; shown by "
                   "'semcal analyze' and the report)")
    _add_sampling_flags(r)

    rs = sub.add_parser("resume", parents=[common], help="finish the unfinished runs of a directory",
                        description="Continue every unfinished run stored in DIR.")
    rs.add_argument("dir", help="experiment directory")
    rs.add_argument("--run", action="append", dest="runs", help="only this run (repeatable)")

    a = sub.add_parser("analyze", parents=[common], help="metrics from the store (no model)",
                       description="Collapse, grade and score the stored samples; print metrics.")
    a.add_argument("dir", help="experiment directory")
    _add_analysis_flags(a)
    a.add_argument("--csv", help="write the per-question table as CSV")
    a.add_argument("--parquet", help="write the per-question table as Parquet")
    a.add_argument("--json", action="store_true", help="print the summaries as JSON")
    rg = a.add_argument_group("adaptive replay (what --adaptive would have saved on a fixed-M run)")
    rg.add_argument("--replay-adaptive", action="store_true", dest="replay",
                    help="apply the adaptive stopping rule to the stored samples")
    rg.add_argument("--round", type=_bounded("adaptive.round"), dest="adaptive_round",
                    help="samples per round (5)")
    rg.add_argument("--epsilon", type=float, help="half-width of the share's interval (0.1)")
    rg.add_argument("--delta", type=float, help="error probability of the interval (0.05)")
    rg.add_argument("--min-samples", type=_bounded("adaptive.min_samples"), dest="min_samples",
                    help="least samples (10)")

    rp = sub.add_parser("report", parents=[common], help="write the HTML report of a directory",
                        description="Write a self-contained HTML report (and CSV/Parquet tables).")
    rp.add_argument("dir", help="experiment directory")
    rp.add_argument("--output", "-o", help="HTML file (default DIR/report.html; the tables go "
                    "next to it, named after it: x.html -> x.questions.csv)")
    rp.add_argument("--no-tables", action="store_true", dest="no_tables",
                    help="write only the HTML file, no CSV/Parquet tables")
    _add_analysis_flags(rp)

    c = sub.add_parser("compare", parents=[common], help="several runs side by side",
                       description="Reliability curves of every run on one axes, and a table.")
    c.add_argument("dirs", nargs="+", help="experiment directories")
    c.add_argument("--output", "-o", default="compare.html", help="HTML file (compare.html)")
    c.add_argument("--collapse", default=None,
                   help="collapsing function B (default: the one each run was sampled with)")
    c.add_argument("--grader", default="auto", help="grader (auto)")
    _add_opt_flags(c)
    c.add_argument("--n-boot", type=_bounded("n_boot"), default=1000, dest="n_boot",
                   help="bootstrap resamples")

    x = sub.add_parser(
        "reproduce", parents=[common], help="run the paper's comparisons and draw the figures",
        description="Sample every run an experiment spec asks for (default: the embedded base and "
        "instruct models on the bundled world and arithmetic questions), compute smECE and "
        "accuracy with bootstrap CIs, run the theory diagnostics, and write results.json, "
        "summary.md and figures/*.png into OUT. Running it again resumes.",
    )
    x.add_argument("spec", nargs="?", help="experiment spec (TOML, see experiments/*.toml)")
    x.add_argument("--out", default="semcal-reproduce", help="output directory (semcal-reproduce)")
    x.add_argument("--models", nargs="+", metavar="M[:ROLE]",
                   help="models, each NAME or NAME:ROLE (role base, instruct or sft)")
    x.add_argument("--backend", help="sampling engine: llamacpp (default), hf, openai, vllm; mock (no model: tests, benchmarks)")
    x.add_argument("--datasets", nargs="+", metavar="D", help="bundled question sets or files")
    x.add_argument("--comparisons", nargs="+", metavar="C",
                   help="styles, tuning, cot, temperature, trajectories, selfpredict")
    x.add_argument("--questions", type=_bounded("questions"), help="questions per dataset")
    x.add_argument("--samples", "-M", type=_bounded("samples"), help="samples per question M")
    x.add_argument("--seed", type=_bounded("seed"), help="run seed")
    x.add_argument("--n-boot", type=_bounded("n_boot", low=1), dest="n_boot",
                   help="bootstrap resamples")

    sub.add_parser("models", parents=[common], help="list the embedded models",
                   description="List the models that ship with semcal (usable offline).")
    _add_label_parser(sub, common)
    return p


def _add_label_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    lb = sub.add_parser(
        "label", parents=[common], help="label a sample of a run by hand (a local web page)",
        description="Serve a local page (127.0.0.1 only) that shows a seeded random sample of "
        "a run's questions with their sampled responses, to group them into meanings by hand. "
        "Labels are saved as you go to DIR/labels-<run>.jsonl; 'semcal analyze DIR' then "
        "checks B against them. See docs/labelling.md.")
    lb.add_argument("dir", help="experiment directory")
    lb.add_argument("--run", help="the run to label (needed when DIR holds several)")
    lb.add_argument("--n", type=_bounded("label_questions"), default=30,
                    help="questions in the sample (30)")
    lb.add_argument("--seed", type=_bounded("seed"), default=0,
                    help="seed of the sample (0); the same seed shows the same questions")
    lb.add_argument("--port", type=_bounded("port", low=0), default=0,
                    help="port on 127.0.0.1 (default 0: a free one)")



# ----------------------------------------------------------------------------- formatting


def _f(v: Any, nd: int = 3) -> str:
    if v is None:
        return "-"
    try:
        x = float(v)
    except (TypeError, ValueError):
        return str(v)
    return "-" if math.isnan(x) else f"{x:.{nd}f}"


def format_summary_table(analyses: Sequence[Any], *, compare: bool = False) -> str:
    """The printed table: model, accuracy, smECE ± CI, ECE, Brier, AUROC (one row per run).
    A run that is not finished says so after its name ("(unfinished: 12 of 40 questions)").
    ``compare``: a dataset column, and runs of one name told apart by their directory."""
    from semcal.report.html import dataset_labels, run_labels, unfinished_note

    header = ["run", "model", "style", "B", "grader", "n", "M", "accuracy", "conf",
              "smECE [95% CI]", "ECE", "Brier", "AUROC"]
    names = run_labels(analyses) if compare else [a.run.name for a in analyses]
    rows = []
    for a, name in zip(analyses, names):
        s = a.summary
        ci = f"{_f(s['smece'])} [{_f(s['smece_lo'])}, {_f(s['smece_hi'])}]"
        note = unfinished_note(a)
        rows.append([
            f"{name} ({note})" if note else name, a.run.model, a.run.style, a.collapse_label,
            a.grader_label, str(s["n"]), _f(s.get("mean_samples"), 1),
            _f(s["accuracy"]), _f(s["mean_confidence"]), ci, _f(s["ece"]), _f(s["brier"]),
            _f(s["auroc"]),
        ])
    if compare:
        header.insert(3, "dataset")
        for r, d in zip(rows, dataset_labels(analyses)):
            r.insert(3, d)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(out)


def _pct(v: Any) -> str:
    x = float(v) if v is not None else math.nan
    return "-" if math.isnan(x) else f"{100 * x:.1f}%"


def format_audit(a: Any, listed: int = 10) -> str:
    """The B audit of one analysed run (see :func:`semcal.analysis.collapse_audit`)."""
    au = a.audit
    if not au:
        return ""
    out = [f"B audit, run {a.run.name} (B {a.collapse_label}, grader {a.grader_label}): "
           f"{_f(au.get('classes_per_question'), 2)} classes per question, "
           f"{_pct(au.get('singleton_share'))} of answer classes are singletons, "
           f"no answer {_pct(au.get('no_answer_rate'))}, refusals {_pct(au.get('refusal_rate'))} "
           f"of samples, ties {_pct(au.get('tie_rate'))} of questions"]
    if len(au.get("engines") or ()) > 1:
        out.append(f"  sampled by more than one engine build ({'; '.join(au['engines'])}): "
                   "samples of different builds need not be comparable")
    if "judged" in au:
        out.append(f"  judge: {au['judged']} responses judged ({au['judge_calls']} calls), "
                   f"{au['judge_fallbacks']} answers not found in their response (rule-based "
                   f"label kept), same label as the rule-based B for "
                   f"{_pct(au['judge_agrees_with_rules'])}")
    ag = au.get("against")
    if ag:
        out.append(f"  against B {ag['against']}: {_pct(ag['agreement'])} of samples in the same "
                   f"class, same plurality on {_pct(ag['same_plurality'])} of questions; "
                   f"{ag['disagreements']} samples disagree"
                   + (f" (first {min(listed, len(ag['listed']))}):" if ag["listed"] else ""))
        for d in ag["listed"][:listed]:
            text = " ".join(d["text"].split())[:70]
            out.append(f"    {d['qid']} [{d['sample']}] {d['label']!r} vs {d['other_label']!r}: {text!r}")
    return "\n".join(out)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def format_b_check(a: Any) -> str:
    """The B check of one analysed run against its hand labels (``semcal label``), or ""
    when the run has no label file (:func:`semcal.label.check.b_check`)."""
    bc = getattr(a, "b_check", None)
    if not bc:
        return ""
    out = [f"B check, run {a.run.name} (B {a.collapse_label} against hand labels in "
           f"{bc['file']}): {_count(bc['questions'], 'question')} labelled"
           + (f", {bc['incomplete']} unfinished" if bc["incomplete"] else "")]
    if bc["questions"]:
        out.append(f"  same-class pairs: precision {_f(bc['precision'])}, recall "
                   f"{_f(bc['recall'])}, F1 {_f(bc['f1'])} [{_f(bc['f1_lo'])}, "
                   f"{_f(bc['f1_hi'])}]; grade error {_pct(bc['grade_error'])} "
                   f"[{_pct(bc['grade_error_lo'])}, {_pct(bc['grade_error_hi'])}]")
    d = bc.get("deltas")
    if d:
        for m, name in (("accuracy", "accuracy"), ("mean_confidence", "mean conf"),
                        ("smece", "smECE")):
            out.append(f"  {name:<10} B {_f(d[m + '_b'])}  hand {_f(d[m + '_hand'])}  "
                       f"B - hand {d[m + '_delta']:+.3f} [{_f(d[m + '_delta_lo'])}, "
                       f"{_f(d[m + '_delta_hi'])}]")
    out.append(f"  {bc['verdict']}")
    return "\n".join(out)


def format_estimator_table(a: Any) -> str:
    header = ["estimator", "kind", "n", "smECE", "ECE", "Brier", "AUROC"]
    rows = [[e["estimator"], e["kind"], str(e["n"]), _f(e.get("smece")), _f(e.get("ece")),
             _f(e.get("brier")), _f(e.get("auroc"))] for e in a.estimators]
    if not rows:
        return ""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(out)


def _say(args: argparse.Namespace, msg: str) -> None:
    if not getattr(args, "quiet", False):
        print(msg, file=sys.stderr)


# ----------------------------------------------------------------------------- commands


def _flag_names(given: dict[str, Any]) -> str:
    """The command-line flags of the adaptive settings ``given`` ("--round and --delta")."""
    flags = ["--" + k.replace("_", "-") for k in given]
    return flags[0] if len(flags) == 1 else ", ".join(flags[:-1]) + " and " + flags[-1]


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
    if not getattr(args, "k_shot", None) or spec.backend != "llamacpp":
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


def format_b_sensitivity(analyses: Sequence[Any]) -> str:
    """For each run analysed under several Bs: the spread of its numbers across the Bs, and
    whether B changes what the run says (smECE intervals that do not overlap)."""
    by_run: dict[tuple[str, str], list[Any]] = {}
    for a in analyses:
        by_run.setdefault((str(a.run.name), str(getattr(a.run, "id", ""))), []).append(a)
    lines = []
    for (name, _), group in by_run.items():
        if len(group) < 2:
            continue

        def spread(key: str, group: list[Any] = group) -> str:
            vals = [a.summary.get(key) for a in group]
            vals = [v for v in vals if v is not None and math.isfinite(v)]
            return "-" if not vals else f"{min(vals):.3f}-{max(vals):.3f}"

        los = [a.summary.get("smece_lo") for a in group]
        his = [a.summary.get("smece_hi") for a in group]
        known = all(v is not None and math.isfinite(v) for v in los + his)
        apart = known and max(los) > min(his)
        verdict = ("their smECE intervals do not all overlap: the choice of B changes this "
                   "run's calibration result" if apart else
                   "their smECE intervals overlap: the Bs agree within the metric's own interval"
                   if known else "no intervals (--n-boot 0 or too few questions)")
        bs = ", ".join(a.collapse_label for a in group)
        lines.append(f"B sensitivity, run {name} ({bs}): accuracy {spread('accuracy')}, "
                     f"mean confidence {spread('mean_confidence')}, smECE {spread('smece')}; "
                     f"{verdict}")
    return "\n".join(lines)


def _json_safe(v: Any) -> Any:
    """``v`` with every NaN or infinity as None (JSON has no such numbers: Python's bare
    ``NaN`` is not JSON) and NumPy scalars as Python ones."""
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    if type(v).__module__ == "numpy" and hasattr(v, "item"):
        try:  # a NumPy scalar or array
            return _json_safe(v.item() if getattr(v, "ndim", 0) == 0 else v.tolist())
        except (TypeError, ValueError):
            return str(v)
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _strict_json(v: Any) -> str:
    """Valid JSON (RFC 8259) of ``v``: NaN and infinities become null."""
    return json.dumps(_json_safe(v), indent=2, default=str, allow_nan=False)


def _status(a: Any) -> dict[str, Any]:
    from semcal.report.html import run_status

    st = run_status(a)
    return {"finished": st["finished"], "questions_planned": st["questions_planned"]}


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


def cmd_reproduce(args: argparse.Namespace) -> int:
    from semcal.reproduce import reproduce

    if args.seed is not None and args.seed < 0:
        raise InputError(f"--seed must be >= 0, got {args.seed}")
    _check_reproduce_models(args)
    try:
        res = reproduce(
            args.spec, args.out, models=args.models, backend=args.backend,
            datasets=args.datasets, comparisons=args.comparisons, questions=args.questions,
            samples=args.samples, seed=args.seed, n_boot=args.n_boot, quiet=args.quiet,
        )
    except KeyboardInterrupt:
        print(
            f"semcal: {_stop_name()}: every finished batch is stored in {args.out}; "
            "run the same command again to resume",
            file=sys.stderr,
        )
        return _interrupt_status()
    summary = Path(res.out_dir) / "summary.md"
    if summary.is_file():
        print(summary.read_text(encoding="utf-8").rstrip())
    _say(args, f"results: {summary} ({res.seconds:.0f} s)")
    return 0


def _check_reproduce_models(args: argparse.Namespace) -> None:
    """Fail before anything is sampled when a llama.cpp model name does not resolve."""
    from semcal.reproduce import ExperimentSpec, load_experiment, parse_model_arg

    exp = load_experiment(args.spec) if args.spec else ExperimentSpec()
    entries = [parse_model_arg(m) for m in args.models] if args.models else list(exp.models)
    for m in entries:
        if (m.backend or args.backend or exp.backend) == "llamacpp":
            resolve_model(m.model)


def cmd_label(args: argparse.Namespace) -> int:
    from semcal.label.labels import remove_stale_temps
    from semcal.label.server import LabelServer, prepare

    session = prepare(args.dir, args.run, n=args.n, seed=args.seed)
    remove_stale_temps(session.path)
    try:
        server = LabelServer(session, port=args.port)
    except OSError as exc:
        raise InputError(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror}") from None
    done = sum(e.complete for e in session.labels.values())
    print(f"labelling run {session.run}: {len(session.questions)} questions ({done} labelled); "
          f"open {server.url} (Ctrl-C to stop)", flush=True)
    thread = threading.Thread(target=server.serve_forever, name="semcal-label", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.5)
    except KeyboardInterrupt:
        server.shutdown()
        done = sum(e.complete for e in session.labels.values())
        print(f"semcal: label server stopped; {_count(done, 'question')} labelled in "
              f"{session.path}",
              file=sys.stderr)
    finally:
        server.server_close()
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    print(f"{'name':28s} {'kind':9s} description")
    for m in models.EMBEDDED.values():
        kind = "instruct" if m.is_chat else "base"
        where = "" if m.installed() else f" [not installed: pip install 'semcal[{m.extra}]']"
        print(f"{m.name:28s} {kind:9s} {m.description}{where}")
    _say(args, "any GGUF file path works too: --model path/to/model.gguf")
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


COMMANDS = {
    "demo": cmd_demo,
    "run": cmd_run,
    "resume": cmd_resume,
    "analyze": cmd_analyze,
    "report": cmd_report,
    "compare": cmd_compare,
    "reproduce": cmd_reproduce,
    "models": cmd_models,
    "label": cmd_label,
}


#: C0 and C1 control characters other than tab and newline: in a run name, a question or a
#: model's text they would be read by the terminal as commands (title changes, cursor moves,
#: hyperlinks), so everything semcal prints shows them as visible escapes instead
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with every control character shown as ``\\xNN`` / ``\\uNNNN``."""
    return _CONTROLS.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), text)


class _Printable(io.TextIOBase):
    """A text stream that writes through :func:`printable` to the stream it wraps."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(printable(text))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._stream, "encoding", "utf-8")


class _PrintableFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record))


def _setup_logging(args: argparse.Namespace) -> None:
    level = logging.WARNING
    if getattr(args, "verbose", False):
        level = logging.INFO
    if getattr(args, "debug", False):
        level = logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for handler in logging.getLogger().handlers:
        if type(handler) is logging.StreamHandler and handler.stream is sys.stderr:
            handler.setFormatter(_PrintableFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.getLogger("semcal").setLevel(level)


def _check_output_flags(args: argparse.Namespace) -> None:
    """Refuse, before any work, an output flag that names data semcal keeps (a store, its
    log, a lock, a label file: :func:`semcal.files.check_output`); every write checks again."""
    for flag in ("output", "csv", "parquet"):
        path = getattr(args, flag, None)
        if path:
            check_output(path, where=f"--{flag}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    _setup_logging(args)
    _install_stop_signals()
    stdout = sys.stdout
    sys.stdout = _Printable(stdout)  # type: ignore[assignment]
    try:
        return _dispatch(args)
    finally:
        sys.stdout = stdout


def _dispatch(args: argparse.Namespace) -> int:
    try:
        _check_output_flags(args)
        return COMMANDS[args.command](args)
    except SemcalError as exc:
        if getattr(args, "debug", False):
            raise
        msg = printable(" ".join(str(exc).split()))
        print(f"semcal: error: {msg}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"semcal: {_stop_name()}", file=sys.stderr)
        return _interrupt_status()
    except Exception as exc:
        if getattr(args, "debug", False):
            raise
        msg = printable(" ".join(str(exc).split())) or "(no message)"
        print(
            f"semcal: unexpected error: {type(exc).__name__}: {msg} (rerun with --debug for details)",
            file=sys.stderr,
        )
        return EXIT_UNEXPECTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
