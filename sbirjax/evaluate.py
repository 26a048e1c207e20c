"""Evaluation: embed queries and gallery with the jitted embed function, then compute metrics.

Images are produced and embedded chunk by chunk, so only embeddings are held in memory.
"""
from __future__ import annotations

import jax
import numpy as np
from jax.experimental import multihost_utils

from sbirjax import metrics, plots, sharding
from sbirjax.data import augment


def embed_all(embed_fn, params, make_image, count: int, batch_size: int, mesh) -> np.ndarray:
    """Embed items 0..count-1 (make_image(i) -> uint8 HWC) in padded batches over the mesh."""
    batch_sh = sharding.batch_sharding(mesh)
    out = []
    for start in range(0, count, batch_size):
        idx = np.arange(start, min(start + batch_size, count))
        images = np.stack([make_image(int(i)) for i in idx])
        if len(idx) < batch_size:  # pad so every batch has the same shape (one compilation)
            images = np.concatenate([images, np.repeat(images[-1:], batch_size - len(idx), 0)])
        # Every process holds the whole batch; each device takes its own rows, whatever the
        # order of devices over processes.
        batch = jax.make_array_from_callback(images.shape, batch_sh, lambda idx: images[idx])
        emb = embed_fn(params, batch)
        out.append(np.asarray(multihost_utils.process_allgather(emb, tiled=True))[:len(idx)])
    return np.concatenate(out)


def fine_grained(split, params, embed_fns, data_config, eval_config, mesh):
    """acc@K and style consistency of sketches against the unique photos of the split.

    Returns (metrics dict, extras for plotting)."""
    bs = eval_config.batch_size
    q = embed_all(embed_fns["sketch"], params,
                  lambda i: augment.sketch_image(split.sketches[i], data_config.image),
                  split.num_sketches, bs, mesh)
    g = embed_all(embed_fns["photo"], params,
                  lambda j: augment.photo_image(split.photos[j], data_config.image),
                  split.num_photos, bs, mesh)
    valid = split.sketch_photo >= 0
    ranks = metrics.fg_ranks(q[valid], g, split.sketch_photo[valid])
    out = metrics.fg_acc_at_k(ranks, tuple(eval_config.ks))
    sc = metrics.style_consistency(ranks, split.sketch_photo[valid])
    out.update({"rank_avg": sc["rank_avg"], "v_avg": sc["v_avg"],
                "num_queries": int(valid.sum()), "num_gallery": int(split.num_photos)})
    if eval_config.get("category_metrics"):
        out.update(metrics.category_retrieval_metrics(
            q, split.sketch_category, g, split.photo_category,
            metrics=tuple(eval_config.category_metrics), similarity="neg_euclidean"))
    return out, {"query_emb": q[valid], "gallery_emb": g, "ranks": ranks,
                 "query_index": np.flatnonzero(valid)}


def save_grid(split, extras, data_config, path, *, num_queries=8, top_k=5, title=""):
    """Retrieval grid PNG for evenly spaced queries of the split."""
    q_emb, g_emb = extras["query_emb"], extras["gallery_emb"]
    pick = np.linspace(0, len(q_emb) - 1, num=min(num_queries, len(q_emb))).astype(int)
    d = ((q_emb[pick, None, :] - g_emb[None, :, :]) ** 2).sum(-1)
    top = np.argsort(d, axis=1, kind="stable")[:, :top_k]
    sketch_idx = extras["query_index"][pick]
    truth = split.sketch_photo[sketch_idx]
    queries = np.stack([augment.sketch_image(split.sketches[int(i)], data_config.image)
                        for i in sketch_idx])
    photos = np.stack([[augment.photo_image(split.photos[int(j)], data_config.image) for j in row]
                       for row in top])
    truths = np.stack([augment.photo_image(split.photos[int(j)], data_config.image) for j in truth])
    plots.retrieval_grid(queries, photos, top == truth[:, None], extras["ranks"][pick], path,
                         truth_images=truths, title=title + "  (last column: true photo)")
