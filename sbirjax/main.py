"""sbirjax entry point.

  python -m sbirjax.main --config=configs/synthetic_triplet.py [--workdir=runs/NAME]
                         [--config.total_steps=200 ...]

The config file is an ml_collections file (`get_config(arg)`; `--config=file.py:arg` passes arg).
Overrides are type-checked and unknown keys fail. Without --workdir, runs/<config file name> is
used. A workdir holding a checkpoint is resumed. The workdir may be a gs:// path.

Multi-process: on a Cloud TPU VM, under Slurm (srun) or Open MPI (mpirun) the processes find each
other by themselves: run the same command on every worker. Elsewhere (GPU machines, several
processes on one machine) give every process the same coordinator and process count and its own id:

  python -m sbirjax.main --config=... --workdir=/shared/run \\
      --coordinator_address=10.0.0.1:1234 --num_processes=2 --process_id=0   # 1 on the other

Exit status: 0 done; 2 a dataset download is missing or malformed; 143 stopped by SIGTERM after
saving a checkpoint of the current step (run the same command again to resume).
"""
from __future__ import annotations

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file (configs/*.py).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (checkpoints, logs, plots).")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0, for a multi-process run that the "
    "environment does not describe (TPU VMs, Slurm and Open MPI need none of these three flags).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes of the run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index, 0..num_processes-1.")

EXIT_PREEMPTED = 143  # what a shell reports for a process killed by SIGTERM (128 + 15)


def check(config) -> None:
    """Config choices that the data or the method cannot serve, before any build or compile."""
    if "meta" in config:
        from sbirjax import meta
        from sbirjax.data import episodes
        episodes.check(config.meta.episode, pairing=config.data.pairing,
                       num_users=episodes.training_users(config.data))
        if config.meta.update_rule not in meta.UPDATES:
            raise ValueError(f"config.meta.update_rule={config.meta.update_rule!r}: "
                             f"use one of {meta.UPDATES}")


def run(config, workdir: str) -> int:
    """Train and evaluate; the exit status (see the module doc)."""
    from sbirjax import train
    from tfds_builders.common import DatasetLayoutError
    try:
        check(config)
    except ValueError as e:  # a config choice, not a bug: no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        train.train_and_evaluate(config, workdir)
    except DatasetLayoutError as e:  # a user's download, not a bug: no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    except train.Preempted as e:
        print(str(e), file=sys.stderr)
        return EXIT_PREEMPTED
    return 0


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    # Before anything asks JAX for devices.
    from sbirjax import distributed  # after flag parsing: keeps --help fast
    distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)

    # Library INFO logs (orbax, TFDS) drown the progress lines; --verbosity=0 brings them back.
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)

    config = _CONFIG.value
    workdir = _WORKDIR.value
    if workdir is None:
        path = config_flags.get_config_filename(flags.FLAGS["config"]).split(":")[0]
        workdir = os.path.join("runs", os.path.splitext(os.path.basename(path))[0])
    return run(config, workdir)


if __name__ == "__main__":
    flags.mark_flag_as_required("config")
    app.run(main)
