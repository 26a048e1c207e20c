"""Conventions every sbirjax TFDS builder follows.

Each dataset has two builder configs, `sketches` and `photos`, with split names per protocol.
Records link by `photo_id` (TFDS shuffles records when it writes them). Feature names:

  sketches: sketch_id (text), photo_id (text; '' when the dataset has no instance pairing),
            category (ClassLabel over normalised class names), user (int64: the style proxy,
            e.g. the sketch index k of QMUL; -1 when unknown), and EITHER
            strokes (float32 (N, 3), SketchX format) OR image (encoded PNG/JPEG bytes)
  photos:   photo_id (text), category (ClassLabel), image (encoded bytes)

Validation while building: counts per split are printed and compared with the documented ones
(a warning naming both numbers when they differ); a missing file or folder is an error that names
the expected path and layout; unreadable records are reported with their paths and are either
fatal (default) or skipped with `skip_bad=True`, never dropped silently.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow_datasets as tfds

from sbirjax.errors import UserError


class DatasetLayoutError(UserError, FileNotFoundError):
    """The manual directory does not hold the dataset in the expected layout."""


@dataclasses.dataclass
class SbirConfig(tfds.core.BuilderConfig):
    kind: str = "sketches"          # 'sketches' | 'photos'
    skip_bad: bool = False          # skip (and report) unreadable records instead of stopping


def standard_configs(version, description: str = "") -> list[SbirConfig]:
    """The four configs of a dataset: 'sketches', 'photos' and their '<kind>_skipbad' variants.

    A `_skipbad` config skips (and lists) unreadable records instead of stopping; it is built into
    its own folder, so a strict build and a skipping build never mix.
    """
    def describe(kind, skip):
        return f"{description} {kind}".strip() + (" (unreadable records skipped)" if skip else "")
    return [SbirConfig(name=kind + ("_skipbad" if skip else ""), version=version, kind=kind,
                       skip_bad=skip, description=describe(kind, skip))
            for skip in (False, True) for kind in ("sketches", "photos")]


def sketch_features(class_names, *, strokes: bool) -> tfds.features.FeaturesDict:
    f = {"sketch_id": tfds.features.Text(), "photo_id": tfds.features.Text(),
         "category": tfds.features.ClassLabel(names=list(class_names)), "user": np.int64}
    if strokes:
        f["strokes"] = tfds.features.Tensor(shape=(None, 3), dtype=np.float32)
    else:
        f["image"] = tfds.features.Image(shape=(None, None, 3))
    return tfds.features.FeaturesDict(f)


def photo_features(class_names) -> tfds.features.FeaturesDict:
    return tfds.features.FeaturesDict({
        "photo_id": tfds.features.Text(),
        "category": tfds.features.ClassLabel(names=list(class_names)),
        "image": tfds.features.Image(shape=(None, None, 3))})


def require(path: str, what: str, layout: str) -> str:
    """Return `path` if it exists, else raise an error naming it and the expected layout."""
    if not os.path.exists(path):
        raise DatasetLayoutError(
            f"{what} not found: expected {path}\nExpected layout under the manual directory:\n"
            f"{layout}\nPoint --manual_dir (or config.data.manual_dir) at the folder that holds "
            "it.")
    return path


class BadRecordError(ValueError):
    """An unreadable input record while building (raised when skipping was not asked for)."""


class BadRecords:
    """Collects unreadable inputs; stops at the first one unless skipping was asked for."""

    def __init__(self, dataset: str, skip: bool, log=print):
        self.dataset, self.skip, self.log, self.items = dataset, skip, log, []

    def report(self, path: str, reason: str) -> None:
        self.items.append((path, reason))
        if not self.skip:
            raise BadRecordError(
                f"{self.dataset}: unreadable input {path}: {reason}. Fix or remove the file, or "
                "build with skip_bad=True (--skip_bad) to skip such records and list them.")
        self.log(f"{self.dataset}: skipping {path}: {reason}")

    def summary(self) -> None:
        if self.items:
            self.log(f"{self.dataset}: skipped {len(self.items)} unreadable records")


def check_counts(dataset: str, counts: dict, expected: dict, log=print) -> list[str]:
    """Compare built counts with documented ones; returns (and logs) one warning per mismatch."""
    warnings = []
    for split, n in sorted(counts.items()):
        log(f"{dataset}: {split}: {n} examples")
        if split in expected and expected[split] != n:
            warnings.append(f"WARNING {dataset}: split {split} has {n} examples; the documented "
                            f"count is {expected[split]}. Check that the download is complete.")
    for w in warnings:
        log(w)
    return warnings
