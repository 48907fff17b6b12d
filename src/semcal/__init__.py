"""semcal: measure whether a language model knows when it is right about the meaning of its answer.

Pipeline (each stage a subpackage; data flows one way)::

    data -> prompts -> backends (sampling) -> store -> collapse (B) -> grade -> confidence -> metrics -> report

See README.md for the quick start and shared/DESIGN.md for the architecture.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
