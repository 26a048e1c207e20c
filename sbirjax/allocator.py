"""Opt-in: keep freed host memory for reuse, so XLA:CPU's per-step buffers stop page-faulting.

XLA:CPU allocates each execution's temporary buffer (2.4 GB for the MA-SBIR step at ViT-B/32
sizes) with malloc and frees it at the end. glibc serves a block that large with a fresh mmap and
returns it to the system on free, so every step touches gigabytes of new pages: 575,000 page
faults and 1-2 s of system time per MA-SBIR step on a 2-core machine (docs/benchmarks.md).
`keep_freed_memory` makes glibc keep such blocks instead: one arena (blocks requested from XLA's
worker threads otherwise land in per-thread arenas, which always mmap large blocks), no mmap, no
trimming of the heap's top. The process then holds its peak heap until it exits, which a training
process reaches every step anyway.

It must run before any thread allocates (before jax creates its CPU client), so the entry points
(sbirjax.main, benchmarks.train_step and benchmarks.masbir_step) call it first thing. Opt-in:
SBIRJAX_KEEP_FREED_MEMORY=1. Measured in one sitting on a 2-core machine (docs/benchmarks.md):
the MA-SBIR step 12% faster; StyleMeUp's 256-px meta-steps no faster, and first order 37% more
memory while stepping. The heap can also fragment: a freed block that a small allocation splits
no longer fits the next step's, and the heap grows by one more (seen once in 14 MA-SBIR steps:
+2.2 GB). It acts only with glibc and jax on the CPU (JAX_PLATFORMS 'cpu', or no TPU or GPU
plugin installed).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import os

# mallopt parameters (glibc malloc.h)
M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8
ACCELERATOR_PLUGINS = ("libtpu", "jax_cuda12_plugin", "jax_cuda13_plugin", "jax_rocm60_plugin",
                       "jax_rocm7_plugin")
ENV = "SBIRJAX_KEEP_FREED_MEMORY"
_state = {"applied": False}


def cpu_only() -> bool:
    """True when jax will run on the CPU: JAX_PLATFORMS says so, or no accelerator plugin is
    installed. Decided without importing jax (importing it is fine; creating a backend is not)."""
    platforms = os.environ.get("JAX_PLATFORMS", "")
    if platforms:
        return platforms.split(",")[0].strip().lower() == "cpu"
    return not any(importlib.util.find_spec(name) for name in ACCELERATOR_PLUGINS)


def keep_freed_memory() -> bool:
    """Tell glibc to keep freed heap memory for reuse (above). Returns whether it was applied."""
    if os.environ.get(ENV, "0") != "1" or not cpu_only():
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
        if not hasattr(libc, "gnu_get_libc_version"):
            return False  # not glibc: its own allocator, not measured
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success; a trim threshold of -1 turns trimming off (mallopt(3))
    ok = [mallopt(M_ARENA_MAX, 1), mallopt(M_MMAP_MAX, 0), mallopt(M_TRIM_THRESHOLD, -1)]
    _state["applied"] = all(ok)
    return _state["applied"]


def applied() -> bool:
    """Whether keep_freed_memory took effect in this process."""
    return _state["applied"]
