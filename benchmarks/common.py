"""Shared benchmark plumbing: timing with warm-up, machine facts, JSON output."""
from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import time

import jax


def machine() -> dict:
    d = jax.devices()[0]
    return {"platform": d.platform, "device_kind": d.device_kind, "device_count": jax.device_count(),
            "host_cpus": os.cpu_count(), "python": platform.python_version(), "jax": jax.__version__}


def time_calls(fn, *, warmup: int, iters: int) -> dict:
    """Median/min/mean seconds of `fn()` (which must block until its work is done)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return {"median_s": statistics.median(times), "min_s": min(times),
            "mean_s": statistics.fmean(times), "iters": iters, "warmup": warmup}


def peak_host_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def emit(record: dict) -> None:
    print(json.dumps(record, indent=2, sort_keys=True), flush=True)
