"""sbirjax/allocator.py: with freed memory kept, a large buffer that a worker thread allocates and
frees on every call (as XLA:CPU does its temporary buffer) stops costing a page fault per page on
every call; without it (glibc's default) it does."""
import json
import os
import subprocess
import sys

import pytest

from sbirjax import allocator

# Runs in a fresh process: the setting must come before any thread allocates.
SCRIPT = r"""
import ctypes, json, resource, threading
from sbirjax import allocator
applied = allocator.keep_freed_memory()
libc = ctypes.CDLL(None)
libc.prctl(41, 1, 0, 0, 0)  # PR_SET_THP_DISABLE: 4-KB pages, as the count below assumes
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
size, faults = 128 * 2**20, []

def worker():  # as XLA's threads do: a large buffer, written, freed, once per call
    for _ in range(3):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        buf = libc.malloc(size)
        ctypes.memset(buf, 1, size)
        libc.free(buf)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)

thread = threading.Thread(target=worker)
thread.start()
thread.join()
print(json.dumps({"applied": applied, "faults": sum(faults[1:])}))  # the calls after the first
"""
PAGES = 128 * 2**20 // 4096


def run_script(keep: str) -> dict:
    env = {k: v for k, v in os.environ.items()  # glibc's own settings would decide instead
           if k != "GLIBC_TUNABLES" and not k.startswith("MALLOC_")}
    env[allocator.ENV] = keep
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True,
                         timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux") or not allocator.glibc(),
                    reason="glibc's allocator on Linux")
def test_kept_memory_removes_the_page_faults_of_each_call():
    kept, default = run_script("1"), run_script("0")
    assert kept["applied"] and not default["applied"]
    assert default["faults"] > 1.5 * PAGES, default  # every call: what the setting is for
    assert kept["faults"] < PAGES // 10, kept


def test_off_unless_asked_for(monkeypatch):
    monkeypatch.delenv(allocator.ENV, raising=False)
    assert not allocator.keep_freed_memory()
    monkeypatch.setenv(allocator.ENV, "0")
    assert not allocator.keep_freed_memory()
