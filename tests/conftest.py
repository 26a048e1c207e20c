"""Test set-up: 8 fake CPU devices, so sharding code runs on a real mesh.

This must run before anything imports jax, which is why it lives in the root conftest. A
compilation cache shared by the whole test run (a fresh directory each run) lets tests that
build the same step, e.g. every StyleMeUp config shrunk to the same tiny model, compile it once.
"""
import atexit
import os
import shutil
import tempfile

# The XLA:CPU backend at optimisation level 0 compiles about twice as fast; the tests' models are
# tiny, so compile time is most of their run time. (The measurements in docs/ use the default.)
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "")
    + " --xla_force_host_platform_device_count=8 --xla_backend_optimization_level=0"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="sbirjax-test-xla-cache-")
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"

# tensorflow_datasets leaves an empty temporary folder behind for every builder made before its
# data is prepared (DatasetInfo.initialize_from_bucket): about 400 a test run. Temporary files
# of the run, its worker processes and their subprocesses go in one folder removed at exit.
if "SBIRJAX_TEST_TMPDIR" not in os.environ:
    _tmp = tempfile.mkdtemp(prefix="sbirjax-test-tmp-")
    atexit.register(shutil.rmtree, _tmp, ignore_errors=True)
    os.environ["SBIRJAX_TEST_TMPDIR"] = os.environ["TMPDIR"] = _tmp
    tempfile.tempdir = _tmp
