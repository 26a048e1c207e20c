"""Find, build and open the TFDS builders a config names, and the splits a run reads from them.

Datasets are built with `file_format='array_record'` from Python and read with
`builder.as_data_source(split)`: no TensorFlow anywhere. A dataset that is not yet prepared is
built on first use; in a multi-process job by process 0 alone while the others wait
(`prepared_builders`).
"""
from __future__ import annotations

import contextlib
import fcntl
import importlib
import os
import time

import jax
import tensorflow_datasets as tfds
from jax.experimental import multihost_utils

from sbirjax import paths
from sbirjax.data import splits, synthetic

# Real datasets: name -> "module:Class" of a builder following tfds_builders/common.py.
REAL_DATASETS: dict[str, str] = {
    "shoev2": "tfds_builders.qmul_fg:Shoev2",
    "chairv2": "tfds_builders.qmul_fg:Chairv2",
    "sketchy": "tfds_builders.category_sbir:Sketchy",
    "tuberlin": "tfds_builders.category_sbir:Tuberlin",
    "quickdraw": "tfds_builders.category_sbir:Quickdraw",
}
DATASETS = ("synthetic", *REAL_DATASETS)


def resolve_data_dir(path: str) -> str:
    """`path`, else $TFDS_DATA_DIR, else ~/tensorflow_datasets."""
    return os.path.expanduser(path or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets")


def data_dir(data_config) -> str:
    return resolve_data_dir(data_config.data_dir)


def builders(data_config):
    """(sketch builder, photo builder) for `config.data`."""
    name = data_config.name
    if name == "synthetic":
        from tfds_builders import synthetic_sbir
        spec = synthetic.WorldSpec(**dict(data_config.synthetic))
        return tuple(
            synthetic_sbir.builder(kind, spec, data_dir=data_dir(data_config),
                                   file_format="array_record")
            for kind in ("sketches", "photos"))
    if name in REAL_DATASETS:
        # Configs 'sketches' / 'photos', or their '_skipbad' variants (tfds_builders/common.py).
        suffix = "_skipbad" if data_config.skip_bad else ""
        cls = builder_class(name)
        return tuple(cls(config=kind + suffix, data_dir=data_dir(data_config),
                         file_format="array_record") for kind in ("sketches", "photos"))
    raise ValueError(f"config.data.name={name!r} is not a known dataset; known: {DATASETS}")


def builder_class(name: str):
    """The builder class REAL_DATASETS names for `name` ("module:Class")."""
    module, _, cls = REAL_DATASETS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def check_manual_dir(builder, manual_dir: str | None) -> None:
    """Fail before any work when a builder that reads a manual download cannot find it.

    Raises DatasetLayoutError naming the folder or file expected, followed by the dataset's
    download instructions. Builders may define `check_manual_dir(path)` for a closer look.
    """
    from tfds_builders.common import DatasetLayoutError
    instructions = getattr(builder, "MANUAL_DOWNLOAD_INSTRUCTIONS", None)
    if not instructions:
        return
    try:
        if not manual_dir:
            raise DatasetLayoutError(
                "no manual directory given: set --manual_dir (or config.data.manual_dir)")
        manual_dir = os.path.expanduser(str(manual_dir))
        if not os.path.isdir(manual_dir):
            raise DatasetLayoutError(f"manual directory not found: expected {manual_dir}")
        if hasattr(builder, "check_manual_dir"):
            builder.check_manual_dir(manual_dir)
    except DatasetLayoutError as e:
        raise DatasetLayoutError(f"{builder.name}: cannot build the dataset: {e}\n\n"
                                 f"How to get {builder.name}:\n{instructions.strip()}") from None


def prepare(builder, manual_dir: str | None = None, log=print) -> None:
    """Build the dataset if its files are not there yet."""
    if builder.is_prepared():
        return
    check_manual_dir(builder, manual_dir)
    start = time.time()
    tfds.disable_progress_bar()  # its bars flood logs that are not terminals; we print counts
    log(f"building dataset {builder.info.full_name} into {builder.data_dir} ...")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    counts = {k: v.num_examples for k, v in builder.info.splits.items()}
    log(f"built {builder.info.full_name} in {time.time() - start:.1f}s: {counts}")


def prepared_builders(data_config, log=print):
    """(sketch builder, photo builder) for `config.data`, built first where they are missing.

    Process 0 builds while the other processes wait at a barrier, so a data_dir shared by all
    (NFS, GCS) is written once; then every process opens fresh builders, which see the files. A
    process that still finds no dataset has a data_dir on a disk of its own host: it builds its
    copy, one process of the host at a time (a lock file).
    """
    manual_dir = data_config.manual_dir
    if jax.process_index() == 0:
        for b in builders(data_config):
            prepare(b, manual_dir, log=log)
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices("sbirjax: datasets prepared")
        if not all(b.is_prepared() for b in builders(data_config)):
            with _host_lock(data_dir(data_config)):
                for b in builders(data_config):
                    prepare(b, manual_dir, log=log)
    return builders(data_config)


def load_data(config, log=print):
    """Build (if needed) and open the train split and the eval splits the config names."""
    sketch_builder, photo_builder = prepared_builders(config.data, log=log)
    train = splits.load(sketch_builder, photo_builder, config.data.train_sketches,
                        config.data.train_photos)
    evals = {name: splits.load(sketch_builder, photo_builder, s, p)
             for name, (s, p) in config.eval.splits.items()}
    fraction = config.data.holdout_fraction
    if fraction:  # model selection data from the training classes, never from test classes
        if "val" in evals:
            raise ValueError("config.data.holdout_fraction makes an eval split named 'val'; "
                             "rename the 'val' entry of config.eval.splits")
        train, val = splits.holdout(train, fraction, config.seed)
        evals = {"val": val, **evals}
    return train, evals


@contextlib.contextmanager
def _host_lock(directory: str):
    if paths.is_remote(directory):  # an object store is shared by every host: process 0 built it
        yield
        return
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, ".sbirjax-build.lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
