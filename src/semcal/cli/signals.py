"""Exit statuses and the stop signals: SIGTERM and SIGHUP end a command as Ctrl-C does."""

from __future__ import annotations

import signal
import threading
from typing import Any

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
