"""Opt-in (SBIRJAX_KEEP_FREED_MEMORY=1): keep freed host memory for reuse, so that XLA:CPU's
per-step buffers stop page-faulting anew on every step.

XLA:CPU allocates each execution's temporary buffer with malloc and frees it at the end. glibc
serves a block that large with a fresh mmap and unmaps it on free, so every step faults in and
zeroes gigabytes of new pages (docs/benchmarks.md, "a page fault for every page of every step").
`keep_freed_memory` tells glibc to keep such blocks instead: one arena (blocks requested from
XLA's worker threads otherwise land in per-thread arenas, which always mmap large blocks), no
mmap, no trimming of the heap. The process then holds its peak heap until it exits, and the heap
can fragment and grow by a buffer's size more; input-pipeline threads share the one arena. What
it buys and costs was measured on the benchmarks' steps only, on the CPU; on a GPU or TPU host it
changes host allocations only, and nothing was measured there. Hence opt-in.

It must run before any thread allocates (before jax creates its backend), so the entry points
(sbirjax.main, benchmarks.train_step, benchmarks.masbir_step) call it first thing.
"""
from __future__ import annotations

import ctypes
import os
import sys

ENV = "SBIRJAX_KEEP_FREED_MEMORY"
# mallopt parameters (glibc's malloc.h)
M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8
_applied = False


def glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") is not None
    except (ValueError, OSError, AttributeError):  # not a glibc system
        return False


def keep_freed_memory() -> bool:
    """Apply the setting above when SBIRJAX_KEEP_FREED_MEMORY=1; returns whether it took
    effect. Asked for where it cannot act (not glibc), it says so on stderr."""
    global _applied
    if os.environ.get(ENV, "0") != "1":
        return False
    if not glibc():
        print(f"{ENV}=1 ignored: the C library is not glibc", file=sys.stderr)
        return False
    mallopt = ctypes.CDLL(None).mallopt  # this process's own C library
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # 1 means done; a trim threshold of -1 turns trimming off (mallopt(3))
    _applied = all([mallopt(M_ARENA_MAX, 1), mallopt(M_MMAP_MAX, 0),
                    mallopt(M_TRIM_THRESHOLD, -1)])
    if not _applied:
        print(f"{ENV}=1: glibc refused a setting; some may be in effect", file=sys.stderr)
    return _applied


def applied() -> bool:
    """Whether keep_freed_memory took effect in this process."""
    return _applied
