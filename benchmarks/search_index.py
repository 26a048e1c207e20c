"""Indexing rate of `sbirjax.search` for each method, as JSON.

  python -m benchmarks.search_index [--images=512] [--photo_size=256] [--methods=...]

For each method an untrained run (its config, 0 training steps: same shapes and cost as a trained
one) indexes the same folder of random JPEG photos into a fresh index. Reported per method:
images/s of the whole `Searcher.index` (decoding on 4 threads, resizing, embedding, writing) after a
warm-up index that compiles the embed function, and images/s of the embed function alone on
prepared batches (the model's share), with the batch size and the image size.

Methods: triplet_sn and stylemeup at their synthetic configs (64 px), masbir_tiny (the synthetic
MA-SBIR: a 2-layer ViT at 64 px), masbir_b32 (MA-SBIR at CLIP ViT-B/32 sizes, 224 px, random
weights).
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time

import numpy as np
import PIL.Image
from absl import app, flags

from benchmarks import common
from sbirjax import defaults_masbir
from sbirjax.search.api import Searcher
from tests import helpers

METHODS = ("triplet_sn", "stylemeup", "masbir_tiny", "masbir_b32")
_IMAGES = flags.DEFINE_integer("images", 512, "photos in the timed folder")
_PHOTO_SIZE = flags.DEFINE_integer("photo_size", 256, "side of the JPEG photos written")
_METHODS = flags.DEFINE_list("methods", list(METHODS), "methods to time")
_BATCH = flags.DEFINE_integer("batch", 64, "images per embed call")
_ITERS = flags.DEFINE_integer("iters", 3, "timed repetitions of the embed-only measurement")


def method_config(name: str):
    if name == "triplet_sn":
        return helpers.load_config("configs/synthetic_triplet.py")
    if name == "stylemeup":
        return helpers.load_config("configs/synthetic_stylemeup.py")
    if name == "masbir_tiny":
        return helpers.load_config("configs/synthetic_masbir.py")
    if name == "masbir_b32":
        return defaults_masbir.base(pretrained="", image_size=224)
    raise ValueError(f"unknown method {name!r}; choose from {METHODS}")


def write_photos(folder: str, n: int, size: int, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    for i in range(n):
        image = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        PIL.Image.fromarray(image).save(os.path.join(folder, f"p{i:05d}.jpg"), quality=90)
    return folder


def measure(name: str, root: str, photos: str, warm: str) -> dict:
    config = method_config(name)
    with config.unlocked():
        config.total_steps = 0
    run = os.path.join(root, name)
    os.makedirs(run)
    with open(os.path.join(run, "config.json"), "w") as f:
        f.write(config.to_json_best_effort(indent=2, sort_keys=True))
    s = Searcher.from_run(run, batch_size=_BATCH.value, log=lambda *_: None)
    s.index(warm, os.path.join(root, f"{name}_warm"))       # compiles the embed function
    t = time.perf_counter()
    meta = s.index(photos, os.path.join(root, f"{name}_index"))
    index_s = time.perf_counter() - t
    size = int(config.data.image.size)
    batch = np.random.default_rng(1).integers(0, 255, (s.batch_size, size, size, 3), np.uint8)
    embed = common.time_calls(lambda: s.embed_images(batch, "photo"), warmup=1,
                              iters=_ITERS.value)["median_s"]
    return {"method": name, "image_size": size, "batch": s.batch_size,
            "embedding_dim": int(meta["embedding_dim"]), "images": int(meta["count"]),
            "index_s": round(index_s, 2), "index_images_per_s": round(meta["count"] / index_s, 1),
            "embed_only_images_per_s": round(s.batch_size / embed, 1)}


def main(argv):
    del argv
    root = tempfile.mkdtemp(prefix="sbirjax_index_bench_")
    try:
        photos = write_photos(os.path.join(root, "photos"), _IMAGES.value, _PHOTO_SIZE.value)
        warm = write_photos(os.path.join(root, "warm"), _BATCH.value, _PHOTO_SIZE.value, seed=1)
        results = [measure(m, root, photos, warm) for m in _METHODS.value]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    common.emit({"benchmark": "search_index", "machine": common.machine(),
                 "photos": {"count": _IMAGES.value, "size": _PHOTO_SIZE.value, "format": "jpeg"},
                 "results": results})


if __name__ == "__main__":
    app.run(main)
