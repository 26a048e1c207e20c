"""Input-pipeline throughput (decode + rasterise + augment + batch), as JSON.

  python -m benchmarks.input_pipeline --config=configs/synthetic_triplet.py [--batches=50]

Reads the config's training split through the same grain stream train.py uses, for each number
of read threads in --threads, and reports examples/s and the rasteriser alone (sketches/s).
Builds the dataset first if it is not there.
"""
from __future__ import annotations

import time

from absl import app, flags
from ml_collections import config_flags

from benchmarks import common
from sbirjax import methods
from sbirjax.data import augment, examples, pipeline, tfds_io

_CONFIG = config_flags.DEFINE_config_file("config", "configs/synthetic_triplet.py", "config file")
_BATCHES = flags.DEFINE_integer("batches", 40, "timed batches per thread setting")
_THREADS = flags.DEFINE_list("threads", ["1", "2"], "grain read-thread counts to try")


def main(_):
    config = _CONFIG.value
    split, _ = tfds_io.load_data(config, log=lambda *_: None)
    example_fn = examples.make(methods.get(config.method).train_inputs, split, config.data)
    runs = []
    for threads in map(int, _THREADS.value):
        stream = pipeline.train_stream(len(example_fn), example_fn,
                                       local_batch=config.batch_size, seed=threads)
        it = pipeline.iterate(stream, num_threads=threads, prefetch=4)
        next(it)  # start-up
        t = time.perf_counter()
        for _ in range(_BATCHES.value):
            next(it)
        dt = time.perf_counter() - t
        runs.append({"threads": threads, "batches_per_s": _BATCHES.value / dt,
                     "examples_per_s": _BATCHES.value * config.batch_size / dt})
    n = min(300, split.num_sketches)
    t = time.perf_counter()
    for i in range(n):
        augment.sketch_image(split.sketches[i], config.data.image)
    raster_rate = n / (time.perf_counter() - t)
    common.emit({"benchmark": "input_pipeline", "dataset": config.data.name,
                 "split": split.name, "image_size": config.data.image.size,
                 "batch_size": config.batch_size, "runs": runs,
                 "sketch_read_and_rasterise_per_s_one_thread": raster_rate,
                 "example": methods.get(config.method).train_inputs,
                 "machine": common.machine()})


if __name__ == "__main__":
    app.run(main)
