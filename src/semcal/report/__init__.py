"""Reports: reliability diagrams (:mod:`semcal.report.reliability`), tables and HTML.

The plotting names are re-exported lazily so that ``import semcal.report`` stays cheap (it does
not import matplotlib until a diagram is asked for).
"""

from __future__ import annotations

from typing import Any

_RELIABILITY = (
    "BinnedCurve",
    "ReliabilityCurve",
    "binned_curve",
    "plot_reliability",
    "plot_reliability_binned",
    "plot_reliability_grid",
    "reliability_curve",
    "save_figure",
)

__all__ = list(_RELIABILITY)


def __getattr__(name: str) -> Any:
    if name in _RELIABILITY:
        from semcal.report import reliability

        return getattr(reliability, name)
    raise AttributeError(f"module 'semcal.report' has no attribute {name!r}")
