"""Retrieval among scikit-image's real photos with the frozen ImageNet trunk, as JSON.

  python -m benchmarks.photo_retrieval [--size=224] [--backbone=efficientnet_lite0]

A sanity check of the pretrained backbone on real images that needs no SBIR dataset. It is NOT an
SBIR benchmark: there are no sketches, 24 photos, and groups made by hand
(benchmarks/real_photos.py).

  categories: every photo of a group with at least two members queries all other photos (leave
              one out; photos alone in their group are distractors) by cosine similarity; mAP
              (scikit-learn's AP) and P@1, overall and per group.
  two_views:  the left and the right three quarters of each photo (each cut to its centred square
              and resized); each left view queries the 24 right views; acc@1 and mean rank.

Embeddings: the trunk's pooled 1280-d feature with the ImageNet weights; the same trunk with random
weights (seed 0); raw pixels (32 x 32 RGB, each image's mean removed) as a floor; and 'chance',
random Gaussian embeddings averaged over 200 draws.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from benchmarks import common, real_photos
from sbirjax.evaluation import metrics
from sbirjax.nets import efficientnet, efficientnet_weights

_SIZE = flags.DEFINE_integer("size", 224, "input size in pixels")
_BACKBONE = flags.DEFINE_string("backbone", "efficientnet_lite0", "EfficientNet-Lite variant")


def photos_and_labels():
    names, labels = [], []
    for group, members in real_photos.GROUPS.items():
        names += members
        labels += [group] * len(members)
    return names, np.array(labels)


def views(names, size: int):
    """(left views, right views): the left and right 3/4 of each photo, squared and resized."""
    left, right = [], []
    for name in names:
        image = real_photos.rgb(name)
        cut = image.shape[1] * 3 // 4
        left.append(real_photos.square(image[:, :cut], size))
        right.append(real_photos.square(image[:, -cut:], size))
    return np.stack(left), np.stack(right)


def pixels(images):
    small = jax.image.resize(jnp.asarray(images, jnp.float32), (len(images), 32, 32, 3), "linear")
    flat = np.asarray(small).reshape(len(images), -1)
    return flat - flat.mean(axis=1, keepdims=True)


def category_scores(embeddings, labels) -> dict:
    e = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    sims = e @ e.T
    groups = {g: np.flatnonzero(labels == g) for g in dict.fromkeys(labels)}
    per_group = {}
    for g, members in groups.items():
        if len(members) < 2:
            continue
        ap, p1 = [], []
        for q in members:
            others = np.arange(len(labels)) != q
            relevant, scores = labels[others] == g, sims[q, others]
            ap.append(metrics.average_precision(relevant, scores))
            p1.append(metrics.precision_at_k(relevant, scores, 1))
        per_group[g] = {"queries": len(members), "map": float(np.mean(ap)),
                        "p@1": float(np.mean(p1))}
    n = sum(v["queries"] for v in per_group.values())
    return {"queries": n, "gallery": len(labels) - 1,
            "map": sum(v["map"] * v["queries"] for v in per_group.values()) / n,
            "p@1": sum(v["p@1"] * v["queries"] for v in per_group.values()) / n,
            "per_group": per_group}


def two_view_scores(left, right) -> dict:
    a = left / np.linalg.norm(left, axis=1, keepdims=True)
    b = right / np.linalg.norm(right, axis=1, keepdims=True)
    ranks = metrics.fg_ranks(a, b, np.arange(len(a)))
    return {"queries": len(a), **metrics.fg_acc_at_k(ranks, (1, 5)),
            "mean_rank": float(np.mean(ranks))}


def chance(labels, n: int, draws: int = 200) -> dict:
    rng = np.random.default_rng(0)
    runs = [(category_scores(rng.normal(size=(len(labels), 8)), labels),
             two_view_scores(rng.normal(size=(n, 8)), rng.normal(size=(n, 8))))
            for _ in range(draws)]
    return {"categories": {k: float(np.mean([c[k] for c, _ in runs])) for k in ("map", "p@1")},
            "two_views": {k: float(np.mean([t[k] for _, t in runs]))
                          for k in ("acc@1", "acc@5", "mean_rank")}}


def main(argv):
    del argv
    names, labels = photos_and_labels()
    size = _SIZE.value
    images = real_photos.batch(names, size)
    left, right = views(names, size)
    module = efficientnet.EfficientNetLite(_BACKBONE.value, num_classes=0)
    init = jax.jit(module.init)(jax.random.key(0), images[:1])["params"]
    trunks = {"imagenet": efficientnet_weights.load(_BACKBONE.value, init), "random_init": init}
    apply = jax.jit(lambda p, x: module.apply({"params": p}, x)["pooled"])
    embedders = {k: (lambda x, p=p: np.asarray(apply(p, x))) for k, p in trunks.items()}
    embedders["raw_pixels"] = pixels
    results = {}
    for name, embed in embedders.items():
        results[name] = {"categories": category_scores(embed(images), labels),
                         "two_views": two_view_scores(embed(left), embed(right))}
    results["chance"] = chance(labels, len(names))
    common.emit({"benchmark": "photo_retrieval", "not_an_sbir_benchmark": True,
                 "backbone": _BACKBONE.value, "image_size": size, "photos": len(names),
                 "groups": {g: list(m) for g, m in real_photos.GROUPS.items()},
                 "results": results, "machine": common.machine()})


if __name__ == "__main__":
    app.run(main)
