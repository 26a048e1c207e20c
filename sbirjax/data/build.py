"""Build a dataset's TFDS files (both configs: sketches and photos) and print their counts.

  python -m sbirjax.data.build shoev2 --manual_dir=~/data/SketchX_Shoe_ChairV2 [--data_dir=DIR]
  python -m sbirjax.data.build synthetic            # generated, needs no manual_dir

NAME is 'synthetic' or a real dataset of sbirjax/data/tfds_io.py REAL_DATASETS. Files go to
--data_dir, else $TFDS_DATA_DIR, else ~/tensorflow_datasets; training finds them there. With
--skip_bad, unreadable records are skipped and listed (the '_skipbad' configs); train on such a
build with config.data.skip_bad=True.

Exit codes: 0 built (or already there); 2 the manual download is missing or not in the expected
layout, or NAME is unknown (a message says what was expected and how to get the data); 1 the
files are there but some record is unreadable (the message names it).
"""
from __future__ import annotations

import json
import pickle
import sys

from absl import app, flags
import ml_collections

from sbirjax.data import tfds_io
from tfds_builders.common import BadRecordError, DatasetLayoutError

_MANUAL_DIR = flags.DEFINE_string("manual_dir", "", "folder holding the manual download")
_DATA_DIR = flags.DEFINE_string("data_dir", "", "TFDS data dir ('' -> $TFDS_DATA_DIR or "
                                "~/tensorflow_datasets)")
_SKIP_BAD = flags.DEFINE_bool("skip_bad", False, "skip (and list) unreadable records")


def build(name: str, manual_dir: str, data_dir: str = "", skip_bad: bool = False,
          log=print) -> dict:
    """Build both configs of `name`; returns {config name: {split: count}}."""
    data_config = ml_collections.ConfigDict(
        {"name": name, "data_dir": data_dir, "manual_dir": manual_dir, "skip_bad": skip_bad})
    counts = {}
    for builder in tfds_io.builders(data_config):
        tfds_io.prepare(builder, manual_dir or None, log=log)
        counts[builder.builder_config.name] = {
            split: info.num_examples for split, info in sorted(builder.info.splits.items())}
    return counts


def main(argv):
    if len(argv) != 2:
        print(f"usage: python -m sbirjax.data.build NAME --manual_dir=DIR [--data_dir=DIR] "
              f"[--skip_bad]; NAME in {list(tfds_io.DATASETS)}", file=sys.stderr)
        return 2
    name = argv[1]
    if name not in tfds_io.DATASETS:
        print(f"unknown dataset {name!r}; known: {list(tfds_io.DATASETS)}", file=sys.stderr)
        return 2
    try:
        counts = build(name, _MANUAL_DIR.value, _DATA_DIR.value, _SKIP_BAD.value)
    except DatasetLayoutError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (BadRecordError, pickle.UnpicklingError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps({"dataset": name, "data_dir": tfds_io.data_dir(
        ml_collections.ConfigDict({"data_dir": _DATA_DIR.value})), "counts": counts}, indent=2))
    return 0


if __name__ == "__main__":
    app.run(main)
