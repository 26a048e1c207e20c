"""Build time and read throughput of the Sketchy / TU-Berlin / QuickDraw builders, as JSON.

  python -m benchmarks.category_build [--classes=20] [--per_class=60] [--size=256]
                                      [--image_size=224] [--datasets=sketchy,tuberlin,quickdraw]

Writes scaled-up copies of the test fixtures (tests/fixtures_category.py: the released folder
layouts, `classes` classes with about `per_class` sketches and `per_class` photos each, images of
`size` x `size` pixels: noise photos as JPEG, sparse-ink sketches as PNG in mixed modes) into a
temporary folder, builds both configs of each dataset (array_record, every split), then reads the
largest sketch and photo split through `builder.as_data_source` and prepares every record with
sbirjax.data.augment.sketch_image (decode + resize to `image_size`, uint8 x 3 channels).

Reported per dataset and config: build seconds, source files, records written over all splits
(a file is written once per split that holds it) and records written per second; read
examples/s. 60 per class by default, so that Sketchy's DSH hold-out of 50 leaves training
sketches. Noise images compress worse than real ones, so files are larger than the releases'.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time

import ml_collections
import tensorflow_datasets as tfds
from absl import app, flags

from benchmarks import common
from sbirjax.data import augment
from tests import fixtures_category as fx
from tfds_builders import category_sbir

_CLASSES = flags.DEFINE_integer("classes", 20, "classes per dataset")
_PER_CLASS = flags.DEFINE_integer("per_class", 60, "sketches and photos per class")
_SIZE = flags.DEFINE_integer("size", 256, "side of the written images, pixels")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 224, "side sketch_image resizes to")
_DATASETS = flags.DEFINE_list("datasets", ["sketchy", "tuberlin", "quickdraw"], "datasets")

BUILDERS = {"sketchy": category_sbir.Sketchy, "tuberlin": category_sbir.Tuberlin,
            "quickdraw": category_sbir.Quickdraw}


def read_rate(builder, split: str, image_config) -> dict:
    source = builder.as_data_source(split=split)
    start = time.perf_counter()
    for i in range(len(source)):
        image = augment.sketch_image(source[i], image_config)
        assert image.shape == (image_config.size, image_config.size, 3)
    seconds = time.perf_counter() - start
    return {"split": split, "examples": len(source), "seconds": seconds,
            "examples_per_s": len(source) / seconds}


def main(_):
    tfds.disable_progress_bar()
    image_config = ml_collections.ConfigDict({"size": _IMAGE_SIZE.value})
    tmp = tempfile.mkdtemp(prefix="category_build_")
    results = []
    try:
        for name in _DATASETS.value:
            spec = fx.scaled_spec(name, _CLASSES.value, _PER_CLASS.value)
            start = time.perf_counter()
            written = fx.WRITERS[name](os.path.join(tmp, "src", name), size=_SIZE.value, spec=spec,
                                       keep_pixels=False)
            write_s = time.perf_counter() - start
            record = {"dataset": name, "classes": len(spec), "write_fixture_s": write_s}
            for kind in ("sketches", "photos"):
                builder = BUILDERS[name](config=kind, data_dir=os.path.join(tmp, "data"),
                                         file_format="array_record")
                start = time.perf_counter()
                with contextlib.redirect_stdout(sys.stderr):   # build logs stay out of the JSON
                    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
                        manual_dir=os.path.join(tmp, "src", name)))
                build_s = time.perf_counter() - start
                counts = {s: v.num_examples for s, v in builder.info.splits.items()}
                files = len(getattr(written, kind)) + (len(written.originals) if kind == "photos"
                                                       else 0)
                largest = max(counts, key=counts.get)
                record[kind] = {"build_s": build_s, "source_files": files,
                                "records_written": sum(counts.values()),
                                "records_written_per_s": sum(counts.values()) / build_s,
                                "splits": counts, "read": read_rate(builder, largest, image_config)}
            results.append(record)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    common.emit({"benchmark": "category_build", "per_class": _PER_CLASS.value,
                 "image_px": _SIZE.value, "image_size": _IMAGE_SIZE.value, "results": results,
                 "peak_host_rss_mb": common.peak_host_rss_mb(), "machine": common.machine()})


if __name__ == "__main__":
    app.run(main)
