"""Build a dataset's TFDS files (both configs: sketches and photos) and print their counts.

  python -m sbirjax.data.build shoev2 --manual_dir=~/data/SketchX_Shoe_ChairV2 [--data_dir=DIR]
  python -m sbirjax.data.build synthetic            # generated, needs no manual_dir

NAME is 'synthetic' or a real dataset of sbirjax/data/tfds_io.py REAL_DATASETS. Files go to
--data_dir, else $TFDS_DATA_DIR, else ~/tensorflow_datasets; training finds them there. With
--skip_bad, unreadable records are skipped and listed (the '_skipbad' configs); train on such a
build with config.data.skip_bad=True.

Exit codes: 0 built (or already there); 2 the manual download is missing, not in the expected
layout or holds an unreadable record, or NAME is unknown: one message says what was expected and
how to fix it (--debug shows the traceback).
"""
from __future__ import annotations

import json
import pickle

from absl import flags

from sbirjax import errors

from sbirjax import defaults
from sbirjax.data import tfds_io
from sbirjax.errors import UserError
from tfds_builders.common import BadRecordError

_MANUAL_DIR = flags.DEFINE_string("manual_dir", "", "folder holding the manual download")
_DATA_DIR = flags.DEFINE_string("data_dir", "", "TFDS data dir ('' -> $TFDS_DATA_DIR or "
                                "~/tensorflow_datasets)")
_SKIP_BAD = flags.DEFINE_bool("skip_bad", False, "skip (and list) unreadable records")


def build(name: str, manual_dir: str, data_dir: str = "", skip_bad: bool = False,
          log=print) -> dict:
    """Build both configs of `name`; returns {config name: {split: count}}."""
    data_config = defaults.base().data
    data_config.update({"name": name, "data_dir": data_dir, "manual_dir": manual_dir,
                        "skip_bad": skip_bad})
    counts = {}
    for builder in tfds_io.builders(data_config):
        tfds_io.prepare(builder, manual_dir or None, log=log)
        counts[builder.builder_config.name] = {
            split: info.num_examples for split, info in sorted(builder.info.splits.items())}
    return counts


def main(argv):
    if len(argv) != 2:
        raise UserError(f"usage: python -m sbirjax.data.build NAME --manual_dir=DIR "
                        f"[--data_dir=DIR] [--skip_bad]; NAME in {list(tfds_io.DATASETS)}")
    name = argv[1]
    if name not in tfds_io.DATASETS:
        raise UserError(f"unknown dataset {name!r}; known: {list(tfds_io.DATASETS)}")
    try:
        counts = build(name, _MANUAL_DIR.value, _DATA_DIR.value, _SKIP_BAD.value)
    except (BadRecordError, pickle.UnpicklingError) as e:  # a damaged download
        raise UserError(f"{e}\n(--skip_bad builds without the unreadable records and lists "
                        "them)") from e
    print(json.dumps({"dataset": name, "data_dir": tfds_io.resolve_data_dir(
        _DATA_DIR.value), "counts": counts}, indent=2))
    return 0


if __name__ == "__main__":
    errors.run(main)
