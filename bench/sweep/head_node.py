"""What a fresh local Ray instance's head node leaves out (``bench.sweep.cluster.connect`` starts it).

Besides the GCS server and the raylet, Ray's head node starts two Python processes a sweep's driver does not use: the
autoscaler's monitor (one machine: nothing to scale) and, unless the run is verbose, the log monitor (it streams the
workers' output to a driver with log_to_driver; Tune's results and the trials' errors come another way). Each imports
Ray and polls the GCS: about 0.5 and 0.8 s of CPU per sweep beside the trials, measured on a 2-core machine (8 December
2026). ray.init has no argument for either (``ray start`` has --no-monitor), so they are switched off on the
parameters ray.init builds (Ray's ``RayParams``), for that one call.
"""
from __future__ import annotations

import contextlib
from typing import Any

MONITOR_PARAMS = ("no_monitor", "include_log_monitor")  # RayParams' fields for the two


@contextlib.contextmanager
def without_monitors(log_monitor: bool):
    """Within the block, the head node a ray.init starts runs no autoscaler monitor, and a log monitor only when
    ``log_monitor`` (``MONITOR_PARAMS``). A Ray whose parameters lack these fields starts them as it would."""
    try:
        from ray._private.parameter import RayParams
        names = RayParams.__init__.__code__.co_varnames
    except (ImportError, AttributeError):
        names = ()
    if not all(name in names for name in MONITOR_PARAMS):
        yield
        return
    original = RayParams.__init__

    def init(self, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.no_monitor = True
        if not log_monitor:
            self.include_log_monitor = False

    RayParams.__init__ = init
    try:
        yield
    finally:
        RayParams.__init__ = original
