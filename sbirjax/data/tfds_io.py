"""Find, build and open the TFDS builders a config names.

Datasets are built with `file_format='array_record'` from Python and read with
`builder.as_data_source(split)`: no TensorFlow anywhere. A dataset that is not yet prepared is
built on first use.
"""
from __future__ import annotations

import os
import time

import tensorflow_datasets as tfds

from sbirjax.data import synthetic

DATASETS = ("synthetic",)


def data_dir(data_config) -> str:
    return os.path.expanduser(
        data_config.get("data_dir") or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets")


def builders(data_config):
    """(sketch builder, photo builder) for `config.data`."""
    name = data_config.name
    if name == "synthetic":
        from tfds_builders import synthetic_sbir
        spec = synthetic.WorldSpec(**dict(data_config.get("synthetic", {})))
        return tuple(
            synthetic_sbir.builder(kind, spec, data_dir=data_dir(data_config),
                                   file_format="array_record")
            for kind in ("sketches", "photos"))
    raise ValueError(f"config.data.name={name!r} is not a known dataset; known: {DATASETS}")


def prepare(builder, manual_dir: str | None = None, log=print) -> None:
    """Build the dataset if its files are not there yet."""
    if builder.is_prepared():
        return
    start = time.time()
    log(f"building dataset {builder.info.full_name} into {builder.data_dir} ...")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    counts = {k: v.num_examples for k, v in builder.info.splits.items()}
    log(f"built {builder.info.full_name} in {time.time() - start:.1f}s: {counts}")
