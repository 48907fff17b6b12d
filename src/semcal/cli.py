"""Command-line interface (thin: parses arguments and calls the library)."""

from __future__ import annotations

import argparse
import sys

from semcal import __version__
from semcal.errors import SemcalError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="semcal",
        description="Measure semantic calibration of language models.",
    )
    p.add_argument("--version", action="version", version=f"semcal {__version__}")
    p.add_subparsers(dest="command", metavar="COMMAND")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command is None:
            parser.print_help()
            return 0
        return 0
    except SemcalError as exc:
        print(f"semcal: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
