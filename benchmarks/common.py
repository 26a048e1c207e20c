"""Shared benchmark plumbing: timing with warm-up, machine facts, JSON output."""
from __future__ import annotations

import copy
import json
import os
import platform
import statistics
import time

import jax
import numpy as np
from absl import flags

from sbirjax import allocator

from benchmarks.host_memory import (  # noqa: F401 - the benchmarks' names for them
    peak_host_rss_mb, peak_rss_since_reset_mb, reset_peak_rss)


def machine() -> dict:
    d = jax.devices()[0]
    return {"platform": d.platform, "device_kind": d.device_kind,
            "device_count": jax.device_count(), "host_cpus": os.cpu_count(),
            "python": platform.python_version(), "jax": jax.__version__,
            # freed host memory kept for reuse (sbirjax/allocator.py; entry points apply it)
            "keep_freed_memory": allocator.applied()}


def time_calls(fn, *, warmup: int, iters: int) -> dict:
    """Median/min/mean seconds of `fn()` (which must block until its work is done), and the peak
    RSS of the timed calls alone where the kernel can say (`steps_peak_rss_mb`)."""
    for _ in range(warmup):
        fn()
    reset = reset_peak_rss()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return {"median_s": statistics.median(times), "min_s": min(times),
            "mean_s": statistics.fmean(times), "iters": iters, "warmup": warmup,
            "steps_peak_rss_mb": peak_rss_since_reset_mb() if reset else None}


def emit(record: dict) -> None:
    print(json.dumps(record, indent=2, sort_keys=True), flush=True)


def compile_with_flops(jitted, *args):
    """(compiled function, FLOPs of one call as XLA's cost analysis counts them: matmuls and
    elementwise ops; None where the backend does not say). Call the compiled function to time it,
    so the program is compiled once."""
    compiled = jitted.lower(*args).compile()
    analysis = compiled.cost_analysis()
    if isinstance(analysis, (list, tuple)):  # older JAX: one dict per device program
        analysis = analysis[0] if analysis else None
    flops = (analysis or {}).get("flops")
    return compiled, (float(flops) if flops and flops > 0 else None)


def matmul_peak_gflops(n: int = 4096, iters: int = 5) -> float:
    """Best float32 (n x n) @ (n x n) rate of this device: the ceiling utilisation is measured
    against (../performance targets use the same 4096^2 figure)."""
    import jax.numpy as jnp
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    mm = jax.jit(lambda x, y: x @ y)
    t = time_calls(lambda: jax.block_until_ready(mm(a, a)), warmup=1, iters=iters)
    return 2.0 * n ** 3 / t["min_s"] / 1e9


DEVICE_PEAK_TFLOPS = flags.DEFINE_float(
    "device_peak_tflops", 0.0, "the accelerator's datasheet peak for the step's dtype, TFLOP/s; "
    "> 0 adds fraction_of_device_peak (model FLOP utilisation)")


def device_peak_gflops() -> float | None:
    """--device_peak_tflops in GFLOP/s, or None when not given."""
    return DEVICE_PEAK_TFLOPS.value * 1e3 if DEVICE_PEAK_TFLOPS.value > 0 else None


def utilisation(flops: float | None, seconds: float, peak_gflops: float,
                device_peak: float | None = None) -> dict:
    """The step's achieved rate against the measured matmul rate and, when given, the device's
    datasheet peak (GFLOP/s: model FLOP utilisation)."""
    if flops is None:
        return {"flops": None}
    achieved = flops / seconds / 1e9
    out = {"flops": flops, "achieved_gflops": achieved,
           "fraction_of_matmul_peak": achieved / peak_gflops}
    if device_peak:
        out["fraction_of_device_peak"] = achieved / device_peak
    return out


# Per example-builder: name -> number of images (per example) under it.
BATCH_LAYOUT = {"triplet": {"sketch": 1, "positive": 1, "negative": 1},
                "meta_task": {"sketches": 3, "photo": 1, "negative": 1}}


def random_batch(layout, batch, size, seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.integers(0, 256, (batch, *((n,) if n > 1 else ()), size, size, 3),
                            dtype=np.uint8) for k, n in layout.items()}


def unrolled_flops(config, method, module, mesh, state, batch, rng):
    """XLA counts a loop body once, so a chunked (lax.map) step under-reports its FLOPs by the
    number of chunks: count them on the same step with every task vmapped, compiled, never run."""
    flat = copy.deepcopy(config)
    with flat.unlocked():
        flat.meta.task_chunk, flat.meta.remat = 0, False
    from sbirjax import compiled  # here, not at the top: the other benchmarks need no model
    fns = compiled.compile_fns(flat, method, module, mesh, 1000, rng)
    return compile_with_flops(fns.step, state, batch, rng)[1]
