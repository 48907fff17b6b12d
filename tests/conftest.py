"""Shared test setup.

llama.cpp's extra CPU buffer types crash on Intel CPUs that advertise AMX; semcal's backend
turns them off, and so does every other llama.cpp model load in the test process (tests that
use llama-cpp-python's high-level API as an independent reference).
"""

from __future__ import annotations

import importlib.util


def pytest_configure(config) -> None:
    if importlib.util.find_spec("llama_cpp") is not None:
        from semcal.backends.llama_server import disable_extra_buffer_types

        disable_extra_buffer_types()
