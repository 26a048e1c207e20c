"""Top-k over the whole gallery on the accelerator, and the results grid.

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


@functools.partial(jax.jit, static_argnames="k")
def top_k(queries, gallery, k: int):
    """(scores, indices), each (Q, k): the k most similar gallery rows of each query, best first."""
    return jax.lax.top_k(queries @ gallery.T, k)


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
    tiles += [(_tile(im), f"#{rank}   score {score:.3f}") for (_, score, rank), im in zip(results, images)]
    for i, (tile, label) in enumerate(tiles):
        x = 4 + i * (TILE + 4)
        canvas.paste(tile, (x, 4))
        if i == 0:
            draw.rectangle([x - 2, 2, x + TILE + 1, TILE + 5], outline=(40, 90, 200), width=2)
        draw.text((x + 2, TILE + 7), label, fill="black")
    canvas.save(path)
