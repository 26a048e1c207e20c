"""Peak host memory (RSS) of this process, whole or since a reset. Standard library only: the
official-code benchmark (benchmarks/official_steps.py) runs it under a Python without jax."""
from __future__ import annotations

import ctypes
import resource

_PEAK_BEFORE_RESET = [0.0]


def peak_host_rss_mb() -> float:
    """The whole process's peak, compilation included (and what came before a reset)."""
    return max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, _PEAK_BEFORE_RESET[0])


def reset_peak_rss() -> bool:
    """Restart the kernel's peak-RSS count (Linux), so that what follows is measured without the
    compilation before it. False where the kernel offers no such reset. The reset also clears
    getrusage's maximum, so the peak so far is kept for `peak_host_rss_mb`."""
    _PEAK_BEFORE_RESET[0] = peak_host_rss_mb()
    try:  # hand the heap that compiling freed back to the system first (glibc keeps it)
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_since_reset_mb() -> float | None:
    try:
        with open("/proc/self/status") as f:
            return next((int(line.split()[1]) / 1024.0 for line in f
                         if line.startswith("VmHWM:")), None)
    except OSError:
        return None
