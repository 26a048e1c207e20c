"""Speed of sbirjax.search's exact blockwise top-k against a plain matmul, as JSON.

  python -m benchmarks.search_topk [--large] [--dtype=float32] [--block=32768]

1,000 random unit queries against a random unit gallery of 100k x 512 (with --large also 1M x 512),
the gallery on the host, streamed to the device in blocks (query.top_k), queries in batches of 256
and 1,000 (the last batch padded to the batch size). Reported per (gallery, batch): queries/s,
achieved GFLOP/s (2 Q N d flops per batch) and that rate as a fraction of the rate of a jitted
float32 (Q, d) @ (d, N) matmul on a gallery already on the device, timed in the same run.
"""
from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from benchmarks import common
from sbirjax.search import query

_LARGE = flags.DEFINE_bool("large", False, "also a 1M x 512 gallery")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "float16"], "gallery dtype on the host")
_BLOCK = flags.DEFINE_integer("block", query.BLOCK, "gallery rows per block")
_ITERS = flags.DEFINE_integer("iters", 3, "timed repetitions")

QUERIES, DIM, BATCHES = 1000, 512, (256, 1000)


@jax.jit
def matmul(queries, gallery_t):
    return jnp.matmul(queries, gallery_t, precision=jax.lax.Precision.HIGHEST)


def batches(queries, size):
    for start in range(0, len(queries), size):
        b = queries[start:start + size]
        yield np.pad(b, ((0, size - len(b)), (0, 0))) if len(b) < size else b


def search_all(queries, gallery, size, block):
    for b in batches(queries, size):
        scores, rows = query.top_k(b, gallery, 10, block=block)
    rows.block_until_ready()


def matmul_all(queries, gallery_t, size):
    for b in batches(queries, size):
        out = matmul(b, gallery_t)
    out.block_until_ready()


def measure(n: int, rng) -> list[dict]:
    queries = query.normalize(rng.normal(size=(QUERIES, DIM)))
    gallery = query.normalize(rng.normal(size=(n, DIM))).astype(_DTYPE.value)
    gallery_t = jax.device_put(np.asarray(gallery, np.float32).T)
    out = []
    for size in BATCHES:
        padded = -(-QUERIES // size) * size  # queries computed, padding included
        flops = 2.0 * padded * n * DIM
        t_search = common.time_calls(
            functools.partial(search_all, queries, gallery, size, _BLOCK.value),
            warmup=1, iters=_ITERS.value)["median_s"]
        t_matmul = common.time_calls(functools.partial(matmul_all, queries, gallery_t, size),
                                     warmup=1, iters=_ITERS.value)["median_s"]
        search_gflops, matmul_gflops = flops / t_search / 1e9, flops / t_matmul / 1e9
        out.append({"gallery": n, "dim": DIM, "dtype": _DTYPE.value, "batch": size, "k": 10,
                    "block": _BLOCK.value, "queries": QUERIES,
                    "search_s": round(t_search, 4), "queries_per_s": round(QUERIES / t_search, 1),
                    "search_gflops": round(search_gflops, 2), "matmul_s": round(t_matmul, 4),
                    "matmul_gflops": round(matmul_gflops, 2),
                    "fraction_of_matmul": round(search_gflops / matmul_gflops, 3)})
    return out


def main(argv):
    del argv
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    results = measure(100_000, rng)
    if _LARGE.value:
        results += measure(1_000_000, rng)
    common.emit({"benchmark": "search_topk", "machine": common.machine(), "results": results,
                 "target": "exact search >= 0.5 of the matmul rate at batches >= 256",
                 "target_met": all(r["fraction_of_matmul"] >= 0.5 for r in results),
                 "wall_s": round(time.perf_counter() - t, 1)})


if __name__ == "__main__":
    app.run(main)
