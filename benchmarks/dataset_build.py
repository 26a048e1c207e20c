"""Dataset build time and read throughput on scaled-up fixture copies, as JSON.

  python -m benchmarks.dataset_build [--datasets=shoev2,chairv2] [--photos=200]
                                     [--sketches_per_photo=3] [--photo_size=256]

For each dataset: writes a fixture in the release layout (FIXTURES below) into a temporary folder,
builds both configs into a temporary TFDS data dir (timed), then reads every train record through
`as_data_source`: sketches rasterised by sbirjax.data.augment.sketch_image, photos decoded and
resized by photo_image (examples/s, one thread). Build messages go to stderr.
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time

from absl import app, flags
import ml_collections

from benchmarks import common
from sbirjax.data import augment, tfds_io
from tests import fixtures_qmul

_DATASETS = flags.DEFINE_list("datasets", ["shoev2", "chairv2"], "datasets to benchmark")
_PHOTOS = flags.DEFINE_integer("photos", 200, "photos in the fixture")
_SKETCHES = flags.DEFINE_integer("sketches_per_photo", 3, "sketches per photo (k = 1..n)")
_PHOTO_SIZE = flags.DEFINE_integer("photo_size", 256, "side of the fixture photos (px)")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 256, "model input size to rasterise/resize to")


def _qmul(folder, chair_ids):
    def write(tmp, photos, sketches_per_photo, photo_size) -> str:
        spec = fixtures_qmul.scaled_spec(photos, sketches_per_photo, chair_ids=chair_ids)
        # About 100 points in about 8 strokes per sketch, as in the real data.
        written = fixtures_qmul.write(tmp, folder, spec, photo_size=photo_size, max_strokes=15,
                                      max_points=24)
        return written.release
    return write


# dataset name -> fixture writer (tmp, photos, sketches_per_photo, photo_size) -> manual_dir
FIXTURES = {"shoev2": _qmul("ShoeV2", chair_ids=False),
            "chairv2": _qmul("ChairV2", chair_ids=True)}


def _dir_mb(path: str) -> float:
    files = (os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs)
    return sum(os.path.getsize(f) for f in files) / 2**20


def _read_rate(builder, split, fn) -> dict:
    src = builder.as_data_source(split=split)
    fn(src[0])  # warm-up
    t = time.perf_counter()
    for i in range(len(src)):
        fn(src[i])
    dt = time.perf_counter() - t
    return {"examples": len(src), "examples_per_s": len(src) / dt, "seconds": dt}


def bench(name: str, tmp: str) -> dict:
    t = time.perf_counter()
    manual_dir = FIXTURES[name](os.path.join(tmp, "manual"), _PHOTOS.value, _SKETCHES.value,
                                _PHOTO_SIZE.value)
    write_s = time.perf_counter() - t
    data_config = ml_collections.ConfigDict({"name": name, "data_dir": os.path.join(tmp, "tfds")})
    sketch_b, photo_b = tfds_io.builders(data_config)
    build = {}
    for b in (sketch_b, photo_b):
        t = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):  # keep stdout for the JSON alone
            tfds_io.prepare(b, manual_dir, log=lambda *_: None)
        build[b.builder_config.name] = {
            "seconds": time.perf_counter() - t, "disk_mb": _dir_mb(str(b.data_dir)),
            "splits": {s: i.num_examples for s, i in sorted(b.info.splits.items())}}
    image = ml_collections.ConfigDict({"size": _IMAGE_SIZE.value, "raster": {
        "canvas": 256, "line_width": 3, "polarity": "black_on_white"}})
    return {"fixture_write_s": write_s, "build": build,
            "build_total_s": sum(v["seconds"] for v in build.values()),
            "read_train_sketches_rasterised": _read_rate(
                sketch_b, "train", lambda r: augment.sketch_image(r, image)),
            "read_train_photos_decoded": _read_rate(
                photo_b, "train", lambda r: augment.photo_image(r, image))}


def main(argv):
    del argv
    unknown = set(_DATASETS.value) - set(FIXTURES)
    if unknown:
        raise app.UsageError(f"no fixture writer for {sorted(unknown)}; known: {sorted(FIXTURES)}")
    results = {}
    for name in _DATASETS.value:
        with tempfile.TemporaryDirectory() as tmp:
            results[name] = bench(name, tmp)
    common.emit({"benchmark": "dataset_build", "photos": _PHOTOS.value,
                 "sketches_per_photo": _SKETCHES.value, "photo_size": _PHOTO_SIZE.value,
                 "image_size": _IMAGE_SIZE.value, "datasets": results,
                 "peak_host_rss_mb": common.peak_host_rss_mb(), "machine": common.machine()})


if __name__ == "__main__":
    app.run(main)
