"""Exact top-k over a gallery streamed to the devices in blocks, and the results grid.

Similarity is the dot product of unit vectors (cosine); for unit vectors its ranking equals that of
the Euclidean distance the evaluation uses.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import PIL.Image
import PIL.ImageDraw


def normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


# Rows of the gallery scored per step: a (Q, BLOCK) float32 score block of 1,000 queries is 128 MB.
BLOCK = 32768


@functools.partial(jax.jit, static_argnames=("k", "approx"), donate_argnums=(0, 1))
def _merge_block(best_scores, best_rows, queries, block, offset, valid, *, k: int, approx: bool):
    """The running (Q, k) best merged with the top of one (B, d) gallery block whose first `valid`
    rows are gallery rows offset, offset + 1, ... (the rest is padding, never picked)."""
    scores = jnp.matmul(queries, block.astype(jnp.float32).T, precision=jax.lax.Precision.HIGHEST)
    scores = jnp.where(jnp.arange(block.shape[0]) < valid, scores, -jnp.inf)
    kb = min(k, block.shape[0])
    pick = functools.partial(jax.lax.approx_max_k, recall_target=0.95) if approx else jax.lax.top_k
    block_scores, block_rows = pick(scores, kb)
    # Running best first: it holds lower rows, so on equal scores the stable top_k keeps rows
    # ascending.
    scores = jnp.concatenate([best_scores, block_scores], axis=1)
    rows = jnp.concatenate([best_rows, block_rows.astype(jnp.int32) + offset], axis=1)
    scores, pos = jax.lax.top_k(scores, k)
    return scores, jnp.take_along_axis(rows, pos, axis=1)


def _balanced_block(n: int, block: int) -> int:
    """Rows per block: as many blocks as `block` rows need, each as even as a multiple of 8
    allows. A gallery of 100k rows in blocks of 32,768 would pad its fourth block from 1,696
    rows to 32,768, scoring 31% more rows than it has; four blocks of 25,000 pad none."""
    block = max(1, min(int(block), n))
    count = -(-n // block)
    even = -(-n // count)
    rounded = -(-even // 8) * 8
    return rounded if even > 8 and rounded <= block else even


def _query_sharding(n_queries: int, mesh=None):
    """The query axis split over the local devices when it divides evenly, else replicated."""
    devices = jax.local_devices()
    mesh = mesh or jax.sharding.Mesh(np.asarray(devices), ("queries",))
    axis = mesh.axis_names
    split = n_queries % mesh.devices.size == 0
    return (jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(axis if split else None)),
            jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))


def top_k(queries, gallery, k: int, *, block: int = BLOCK, approx: bool = False, mesh=None):
    """(scores, indices), each (Q, min(k, N)): the most similar gallery rows of each query, best
    first; equal scores in ascending row order (= numpy's stable argsort of -scores).

    `gallery` (N, d) is read `block` rows at a time (a numpy array, a memory-mapped .npy, float16
    or float32, or a device array): each block goes to the devices, is cast to float32 there and
    scored, its top k merged with the running best (concatenate, top_k again). The devices hold
    the queries, one block and the running best, never the whole gallery. The query block is split
    over the local devices when Q divides by their number, else replicated; every block is
    replicated. The blocks are made even (`_balanced_block`), the last one padded to the same
    shape (one compilation).

    `approx=True` takes each block's top with `jax.lax.approx_max_k` (recall target 0.95): faster
    on TPU only (on CPU and GPU it is exact and no faster); the merge stays exact.
    """
    n, d = gallery.shape
    k = min(int(k), n)
    block = _balanced_block(n, block) if n else 1
    q_sharding, replicated = _query_sharding(len(queries), mesh)
    queries = jax.device_put(np.asarray(queries, np.float32), q_sharding)
    best_scores = jax.device_put(np.full((len(queries), k), -np.inf, np.float32), q_sharding)
    best_rows = jax.device_put(np.full((len(queries), k), -1, np.int32), q_sharding)
    for start in range(0, n, block):
        rows = gallery[start:start + block]
        valid = rows.shape[0]
        if valid < block:  # pad the last block to the common shape
            pad = ((0, block - valid), (0, 0))
            rows = (jnp.pad(rows, pad) if isinstance(rows, jax.Array)
                    else np.pad(np.asarray(rows), pad))
        best_scores, best_rows = _merge_block(
            best_scores, best_rows, queries, jax.device_put(rows, replicated),
            np.int32(start), np.int32(valid), k=k, approx=bool(approx))
    return best_scores, best_rows


def combine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Two query vectors as one: the mean of the two unit vectors, renormalised."""
    return normalize((normalize(a) + normalize(b)) / 2)


# ------------------------------------------------------------------------------ grid
TILE = 160
LABEL = 18


def _tile(image: np.ndarray, tile: int = TILE) -> PIL.Image.Image:
    """The image fitted into a white square tile, aspect kept."""
    im = PIL.Image.fromarray(np.asarray(image, np.uint8)).convert("RGB")
    scale = tile / max(im.size)
    size = (max(1, round(im.size[0] * scale)), max(1, round(im.size[1] * scale)))
    resample = PIL.Image.NEAREST if scale > 2 else PIL.Image.BILINEAR  # model inputs stay crisp
    im = im.resize(size, resample)
    out = PIL.Image.new("RGB", (tile, tile), "white")
    out.paste(im, ((tile - size[0]) // 2, (tile - size[1]) // 2))
    return out


def grid(query_image: np.ndarray, results, images, path: str, *, title: str = "query") -> None:
    """One row: the query (as the model saw it), then each result with its rank and score."""
    n = 1 + len(results)
    canvas = PIL.Image.new("RGB", (n * (TILE + 4) + 4, TILE + LABEL + 8), "white")
    draw = PIL.ImageDraw.Draw(canvas)
    tiles = [(_tile(query_image), title)]
    tiles += [(_tile(im), f"#{rank}   score {score:.3f}")
              for (_, score, rank), im in zip(results, images)]
    for i, (tile, label) in enumerate(tiles):
        x = 4 + i * (TILE + 4)
        canvas.paste(tile, (x, 4))
        if i == 0:
            draw.rectangle([x - 2, 2, x + TILE + 1, TILE + 5], outline=(40, 90, 200), width=2)
        draw.text((x + 2, TILE + 7), label, fill="black")
    canvas.save(path)
