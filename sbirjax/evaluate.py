"""Evaluation: embed queries and gallery with the jitted embed function, then compute metrics.

Images are produced and embedded chunk by chunk, so only embeddings are held in memory.
"""
from __future__ import annotations

import jax
import numpy as np
from etils import epath
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


PROTOCOLS = ("fine_grained", "category", "fine_grained_within_class")


def evaluate_split(split, params, embed_fns, data_config, eval_config, mesh):
    """Metrics of one eval split under `eval_config.protocol`, for every query variant.

    Queries are the split's sketches embedded by every embed function except 'photo' (the
    gallery): 'sketch' is reported unprefixed, another variant v as 'v/<metric>'. Protocols:
      fine_grained               acc@K (SketchX convention) against the split's photos, plus the
                                 style-consistency figures rank_avg and v_avg
      category                   eval_config.category_metrics (metrics.category_retrieval_metrics
                                 names: 'map@all', 'p@200', 'map_voc@all', 'p_minr@100', ...)
      fine_grained_within_class  acc@K counting only photos of the query's class (FG-ZS)
    Returns (metrics dict, extras for plotting: embeddings and ranks of the 'sketch' variant)."""
    protocol = eval_config.get("protocol", "fine_grained")
    if protocol not in PROTOCOLS:
        raise ValueError(f"config.eval.protocol={protocol!r}: use one of {PROTOCOLS}")
    bs = eval_config.batch_size
    g = embed_all(embed_fns["photo"], params,
                  lambda j: augment.photo_image(split.photos[j], data_config.image),
                  split.num_photos, bs, mesh)
    out, extras = {"num_gallery": int(split.num_photos)}, None
    for variant in [m for m in embed_fns if m != "photo"]:
        q = embed_all(embed_fns[variant], params,
                      lambda i: augment.sketch_image(split.sketches[i], data_config.image),
                      split.num_sketches, bs, mesh)
        values, ex = _protocol_metrics(protocol, split, q, g, eval_config)
        prefix = "" if variant == "sketch" else f"{variant}/"
        out.update({prefix + k: v for k, v in values.items()})
        extras = extras or ex
    return out, extras


def _protocol_metrics(protocol, split, q, g, eval_config):
    ks = tuple(eval_config.ks)
    if protocol == "category":
        names = tuple(eval_config.get("category_metrics") or ("map@all", "p@200"))
        values = metrics.category_retrieval_metrics(
            q, split.sketch_category, g, split.photo_category, metrics=names,
            similarity=eval_config.get("similarity", "neg_euclidean"))
        values["num_queries"] = int(split.num_sketches)
        return values, {"query_emb": q, "gallery_emb": g, "query_index": np.arange(len(q)),
                        "relevance": "category"}
    valid = split.sketch_photo >= 0
    if not valid.any():
        raise ValueError(f"split {split.name}: no sketch has its photo in the gallery, so "
                         f"protocol {protocol!r} has no queries; use protocol 'category'")
    if protocol == "fine_grained":
        ranks = metrics.fg_ranks(q[valid], g, split.sketch_photo[valid])
    else:
        ranks = metrics.fg_ranks_within_class(q[valid], g, split.sketch_photo[valid],
                                              split.sketch_category[valid], split.photo_category)
    values = metrics.fg_acc_at_k(ranks, ks)
    sc = metrics.style_consistency(ranks, split.sketch_photo[valid])
    values.update({"rank_avg": sc["rank_avg"], "v_avg": sc["v_avg"],
                   "num_queries": int(valid.sum())})
    if eval_config.get("category_metrics"):
        values.update(metrics.category_retrieval_metrics(
            q, split.sketch_category, g, split.photo_category,
            metrics=tuple(eval_config.category_metrics),
            similarity=eval_config.get("similarity", "neg_euclidean")))
    return values, {"query_emb": q[valid], "gallery_emb": g, "ranks": ranks,
                    "query_index": np.flatnonzero(valid), "relevance": "photo"}


def headline(values: dict, protocol: str) -> str:
    """The figure a plot title shows: acc@1 (fine-grained) or the first category metric."""
    if protocol == "category":
        key = next((k for k in values if "@" in k and "/" not in k), None)
    else:
        key = "acc@1"
    return f"{key}={values[key]:.3f}" if key in values else ""


def save_ranks(path, ranks, photo_ids, users) -> None:
    """Per-query fine-grained ranks with the photo and user of each query, for later comparison
    of runs (python -m sbirjax.compare)."""
    path = epath.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        np.savez(f, ranks=np.asarray(ranks), photo=np.asarray(photo_ids), user=np.asarray(users))


def save_grid(split, extras, data_config, path, *, num_queries=8, top_k=5, title=""):
    """Retrieval grid PNG for evenly spaced queries of the split.

    Fine-grained: green = the query's own photo, which is also shown in a last column. Category
    level: green = a photo of the query's class; the rank shown is that of the first such photo."""
    q_emb, g_emb = extras["query_emb"], extras["gallery_emb"]
    pick = np.linspace(0, len(q_emb) - 1, num=min(num_queries, len(q_emb))).astype(int)
    d = ((q_emb[pick, None, :] - g_emb[None, :, :]) ** 2).sum(-1)
    order = np.argsort(d, axis=1, kind="stable")
    top = order[:, :top_k]
    sketch_idx = extras["query_index"][pick]
    queries = np.stack([augment.sketch_image(split.sketches[int(i)], data_config.image)
                        for i in sketch_idx])
    photos = np.stack([[augment.photo_image(split.photos[int(j)], data_config.image) for j in row]
                       for row in top])
    if extras.get("relevance") == "category":
        relevant = split.photo_category[order] == split.sketch_category[sketch_idx][:, None]
        ranks = np.where(relevant.any(1), relevant.argmax(1) + 1, 0)
        plots.retrieval_grid(queries, photos, relevant[:, :top_k], ranks, path, title=title)
        return
    truth = split.sketch_photo[sketch_idx]
    truths = np.stack([augment.photo_image(split.photos[int(j)], data_config.image) for j in truth])
    plots.retrieval_grid(queries, photos, top == truth[:, None], extras["ranks"][pick], path,
                         truth_images=truths, title=title + "  (last column: true photo)")
