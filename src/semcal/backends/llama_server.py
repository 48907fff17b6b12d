"""llama.cpp without its extra CPU buffer types, for every model loaded in this process.

On Intel Xeon CPUs that advertise AMX, llama.cpp's extra buffer types (the AMX and
repacked weight layouts, on by default in llama-cpp-python) crash with a general protection
fault in ``libggml-cpu`` on the first evaluation. semcal's own llama.cpp backend loads models
with ``use_extra_bufts = False``; this module does the same for code that goes through
llama-cpp-python's high-level API (``llama_cpp.Llama``) and for its OpenAI-compatible server.

Start the server safely on any CPU with (all of ``llama_cpp.server``'s flags work)::

    python -m semcal.backends.llama_server --model model.gguf --port 8080

In Python, call :func:`disable_extra_buffer_types` once before creating ``llama_cpp.Llama``.
Turning the extra buffer types off costs nothing measurable with the small quantised models
semcal embeds (see docs/backends.md).
"""

from __future__ import annotations

import sys
from typing import Any

from semcal.errors import require

_PATCHED = "_semcal_no_extra_bufts"


def disable_extra_buffer_types() -> None:
    """Make every later model load of llama-cpp-python in this process skip llama.cpp's extra
    CPU buffer types (``use_extra_bufts = False``). Idempotent."""
    low = require("llama_cpp.llama_cpp", "the llama.cpp backend", "llama")
    original = low.llama_model_default_params
    if getattr(original, _PATCHED, False):
        return

    def safe_default_params() -> Any:
        params = original()
        params.use_extra_bufts = False
        return params

    setattr(safe_default_params, _PATCHED, True)
    low.llama_model_default_params = safe_default_params
    top = sys.modules.get("llama_cpp")
    if top is not None and getattr(top, "llama_model_default_params", None) is original:
        top.llama_model_default_params = safe_default_params


def main(argv: list[str] | None = None) -> None:
    """``python -m semcal.backends.llama_server ...``: llama_cpp.server with the extra buffer
    types off. Takes exactly the flags of ``python -m llama_cpp.server``."""
    disable_extra_buffer_types()
    server_main = require("llama_cpp.server.__main__", "the llama.cpp server", "server")
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    server_main.main()


if __name__ == "__main__":
    main()
