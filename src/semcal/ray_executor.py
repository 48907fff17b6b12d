"""The Ray executor under its first name: it lives in :mod:`semcal.executors.ray_pool` now.

``from semcal.ray_executor import RayPool`` keeps working (the same class, so patching it
here patches it everywhere).
"""

from semcal.executors.ray_pool import (  # noqa: F401 - re-exported
    CONNECT_TIMEOUT,
    RayPool,
    SamplerActor,
    _check_reachable,
    _connect,
    _token_auth,
)

__all__ = ["CONNECT_TIMEOUT", "RayPool", "SamplerActor"]
