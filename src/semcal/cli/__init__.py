"""Command-line interface (thin: parses arguments and calls the library).

Commands: ``demo``, ``run``, ``resume``, ``analyze``, ``report``, ``compare``, ``reproduce``,
``models``, ``label``.
Every user mistake ends as one line on stderr and a non-zero exit status; ``--debug``
shows tracebacks of unexpected errors.

The modules behind a command that load numpy, scipy or matplotlib (``analysis``, ``runner``,
``store``, ``reproduce``, ``report``) are imported by that command's function, the only
imports inside functions in semcal besides optional third-party packages: ``semcal --help``
and a mistyped argument answer in about 0.2 s instead of 1.5 s.

Rooms: ``parser.py`` (:func:`build_parser`, bounded integer flags, ``K=V`` options),
``format.py`` (the printed tables and audits, strict JSON), ``output.py`` (:func:`printable`,
logging), ``signals.py`` (exit statuses, SIGTERM/SIGHUP as Ctrl-C), the commands in
``run_cmds.py`` (demo, run, resume), ``analysis_cmds.py`` (analyze, report, compare) and
``other_cmds.py`` (reproduce, label, models), and ``app.py`` (:data:`COMMANDS`,
:func:`main`). ``semcal.cli:main`` is the ``semcal`` script; ``python -m semcal.cli`` runs it
too.
"""

from semcal.cli.analysis_cmds import (  # noqa: F401 - re-exported
    _analyze,
    _collapse_list,
    cmd_analyze,
    cmd_compare,
    cmd_report,
)
from semcal.cli.app import COMMANDS, _check_output_flags, _dispatch, main  # noqa: F401
from semcal.cli.format import (  # noqa: F401 - re-exported
    _f,
    _json_safe,
    _pct,
    _strict_json,
    format_audit,
    format_b_check,
    format_b_sensitivity,
    format_b_unchecked,
    format_estimator_table,
    format_summary_table,
)
from semcal.cli.other_cmds import cmd_label, cmd_models, cmd_reproduce  # noqa: F401
from semcal.cli.output import _say, _setup_logging, printable  # noqa: F401 - re-exported
from semcal.cli.parser import (  # noqa: F401 - re-exported
    DEMO_MODELS,
    DEMO_SIZES,
    _bounded,
    _parse_opts,
    build_parser,
)
from semcal.cli.run_cmds import (  # noqa: F401 - re-exported
    _check_threads,
    _interrupted,
    _run_line,
    _run_or_hint,
    _spec_from_args,
    cmd_demo,
    cmd_resume,
    cmd_run,
    demo_b_note,
)
from semcal.cli.signals import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_UNEXPECTED  # noqa: F401

__all__ = [
    "COMMANDS",
    "DEMO_MODELS",
    "DEMO_SIZES",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_UNEXPECTED",
    "build_parser",
    "demo_b_note",
    "format_audit",
    "format_b_check",
    "format_b_unchecked",
    "format_b_sensitivity",
    "format_estimator_table",
    "format_summary_table",
    "main",
    "printable",
]
