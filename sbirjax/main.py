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

Exit status: 0 done; 2 a user error (a bad flag or config value, a dataset download that is
missing or malformed, a refused resume: one message naming the key or file and the fix; --debug
shows its traceback); 143 stopped by SIGTERM after saving a checkpoint of the current step (run
the same command again to resume); 1 a bug (with its traceback).
"""
from __future__ import annotations

import os
import sys

from absl import flags, logging
import ml_collections
from ml_collections import config_flags

from sbirjax import allocator, errors
from sbirjax.errors import UserError

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file (configs/*.py).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (checkpoints, logs, plots).")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0, for a multi-process run that the "
    "environment does not describe (TPU VMs, Slurm and Open MPI need none of these three flags).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes of the run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index, 0..num_processes-1.")
_CHECK_ONLY = flags.DEFINE_bool(
    "check_only", False, "Load and check the config (with its overrides), then exit: 0 when it "
    "can run, 2 with the problems. Touches no device, dataset or workdir.")

EXIT_PREEMPTED = 143  # what a shell reports for a process killed by SIGTERM (128 + 15)


def run(config, workdir: str) -> int:
    """Check the config, then train and evaluate; the exit status (see the module doc). A user
    error (errors.UserError: a bad config value, a dataset download that is missing or
    malformed, a refused resume) propagates to the boundary of `errors.run`."""
    import jax

    from sbirjax import config_check, train
    config_check.check(config, jax.device_count())
    try:
        train.train_and_evaluate(config, workdir)
    except train.Preempted as e:
        print(str(e), file=sys.stderr)
        return EXIT_PREEMPTED
    return 0


def _config():
    """The config the flags name, or a UserError when its file does not load."""
    config = _CONFIG.value
    if not isinstance(config, ml_collections.ConfigDict):  # the file did not load
        given = config_flags.get_config_filename(flags.FLAGS["config"])
        path = given.split(":")[0]
        if not os.path.isfile(path):
            raise UserError(f"--config={given}: no such file {os.path.abspath(path)!r}; give a "
                            "config file such as configs/shoev2.py")
        try:
            config.lock()
        except Exception as e:  # noqa: BLE001 - a config file that does not load is the user's
            raise UserError(f"--config={given}: {errors.message(e)}") from e
    return config


def main(argv):
    if len(argv) > 1:
        raise UserError(f"unexpected arguments {argv[1:]}: give options as --config.KEY=VALUE")
    config = _config()
    if _CHECK_ONLY.value:
        from sbirjax import config_check
        config_check.check(config)
        print(f"config ok: method {config.method}, data {config.data.name}, "
              f"{config.total_steps} steps of batch {config.batch_size}")
        return 0
    # Before anything asks JAX for devices.
    from sbirjax import distributed  # after flag parsing: keeps --help fast
    distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)

    # Library INFO logs (orbax, TFDS) drown the progress lines; --verbosity=0 brings them back.
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)

    workdir = _WORKDIR.value
    if workdir is None:
        path = config_flags.get_config_filename(flags.FLAGS["config"]).split(":")[0]
        workdir = os.path.join("runs", os.path.splitext(os.path.basename(path))[0])
    from sbirjax import checkpoint
    try:
        status = run(config, workdir)
    except UserError as e:
        if not checkpoint.reads_abandoned() or errors.debug():
            raise
        status = errors.report(e)
    if checkpoint.reads_abandoned():
        # A checkpoint that could not be read leaves tensorstore reads whose callbacks fail,
        # printing tracebacks, while the interpreter shuts down. Everything is written and
        # closed by now, so the process ends here instead.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


if __name__ == "__main__":
    allocator.keep_freed_memory()  # first, before any thread allocates (allocator.py)
    flags.mark_flag_as_required("config")
    errors.run(main)
