"""sbirjax entry point.

  python -m sbirjax.main --config=configs/synthetic_triplet.py [--workdir=runs/NAME]
                         [--config.total_steps=200 ...]

The config file is an ml_collections file (`get_config(arg)`; `--config=file.py:arg` passes arg).
Overrides are type-checked and unknown keys fail. Without --workdir, runs/<config file name> is
used. A workdir holding a checkpoint is resumed.
"""
from __future__ import annotations

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file (configs/*.py).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (checkpoints, logs, plots).")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from sbirjax import train  # after flag parsing: keeps --help fast
    from tfds_builders.common import DatasetLayoutError

    # Library INFO logs (orbax, TFDS) drown the progress lines; --verbosity=0 brings them back.
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)

    config = _CONFIG.value
    workdir = _WORKDIR.value
    if workdir is None:
        path = config_flags.get_config_filename(flags.FLAGS["config"]).split(":")[0]
        workdir = os.path.join("runs", os.path.splitext(os.path.basename(path))[0])
    try:
        train.train_and_evaluate(config, workdir)
    except DatasetLayoutError as e:  # a user's download, not a bug: no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    flags.mark_flag_as_required("config")
    app.run(main)
