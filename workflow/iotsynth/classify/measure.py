"""Wall time and peak memory of one training call, measured the same way for every classifier.

Memory is the resident set size (RSS) of the whole process, read with
psutil, so it counts what native code (NumPy, libsvm, the Random Forest's
Cython trees, PyTorch) allocates. ``tracemalloc`` would see Python
allocations only. A thread samples RSS every ``interval`` seconds during the
call. ``resource.getrusage`` adds the kernel's record of the process's
highest RSS, which also catches a peak between two samples whenever that peak
is the highest of the process's life so far.

The reported memory is the peak RSS during the call minus the RSS just
before it: what training added on top of the loaded data. Memory freed by
the allocator but not returned to the operating system still counts as
resident, so a call that follows a larger one can read lower than it
would in a fresh process.
"""

from __future__ import annotations

import gc
import resource
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil

MEGABYTE = 1_000_000
# ru_maxrss is in kilobytes on Linux and in bytes on macOS.
MAXRSS_UNIT = 1 if sys.platform == "darwin" else 1024


@dataclass(frozen=True)
class Measurement:
    """Cost of one training call.

    Attributes
    ----------
    seconds : float
        Wall-clock time of the call (``time.perf_counter``).
    peak_memory_mb : float
        Peak RSS during the call minus RSS before it, in MB of 10**6 bytes
        (never negative).
    rss_before_mb, peak_rss_mb : float
        The two RSS values, in MB.
    """

    seconds: float
    peak_memory_mb: float
    rss_before_mb: float
    peak_rss_mb: float


class _PeakSampler(threading.Thread):
    """Thread that records the highest RSS of the process until stopped."""

    def __init__(self, interval: float):
        super().__init__(daemon=True)
        self.interval = interval
        self.process = psutil.Process()
        self.peak = self.process.memory_info().rss
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.interval):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def stop(self) -> int:
        self.done.set()
        self.join()
        self.peak = max(self.peak, self.process.memory_info().rss)
        return self.peak


def _max_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * MAXRSS_UNIT


def measure_call(function: Callable[[], Any], interval: float = 0.05) -> tuple[Any, Measurement]:
    """Run ``function()`` and measure its wall time and peak memory.

    Parameters
    ----------
    function : callable
        Called with no arguments, e.g. ``lambda: model.fit(X, y)``.
    interval : float, default 0.05
        Seconds between RSS samples.

    Returns
    -------
    result
        What ``function`` returned.
    Measurement
    """
    if not interval > 0:
        raise ValueError(f"the memory sampling interval must be positive, got {interval!r}")
    gc.collect()
    rss_before = psutil.Process().memory_info().rss
    max_rss_before = _max_rss_bytes()

    sampler = _PeakSampler(interval)
    sampler.start()
    started = time.perf_counter()
    try:
        result = function()
    finally:
        seconds = time.perf_counter() - started
        peak = sampler.stop()

    max_rss_after = _max_rss_bytes()
    if max_rss_after > max_rss_before:
        # The process reached a new lifetime peak during the call.
        peak = max(peak, max_rss_after)
    measurement = Measurement(
        seconds=seconds,
        peak_memory_mb=max(0, peak - rss_before) / MEGABYTE,
        rss_before_mb=rss_before / MEGABYTE,
        peak_rss_mb=peak / MEGABYTE,
    )
    return result, measurement
