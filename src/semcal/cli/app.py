"""The entry point: :func:`main` parses the arguments, sets up logging and the stop
signals, and runs the command from :data:`COMMANDS`; every error ends as one line."""

from __future__ import annotations

import argparse
import sys

from semcal.cli.analysis_cmds import cmd_analyze, cmd_compare, cmd_report
from semcal.cli.other_cmds import cmd_label, cmd_models, cmd_reproduce
from semcal.cli.output import _Printable, _setup_logging, printable
from semcal.cli.parser import build_parser
from semcal.cli.run_cmds import cmd_demo, cmd_resume, cmd_run
from semcal.cli.signals import (
    EXIT_ERROR,
    EXIT_UNEXPECTED,
    _install_stop_signals,
    _interrupt_status,
    _stop_name,
)
from semcal.errors import SemcalError
from semcal.files import check_output

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
