"""Orbax checkpoints: save every N steps and at the end, keep the last few, resume automatically.

Resume rule: if `<workdir>/checkpoints` holds a checkpoint, training continues from the latest
one. Restoring always goes into an abstract target carrying shardings (from `jax.eval_shape`), so
optax states come back with their own types and arrays land directly on the right devices.

Every process takes part in saving and restoring (each writes its own shards); the directory may be
local or on GCS (`gs://bucket/run`), so paths go through etils.epath (a gs:// path needs gcsfs).
"""
from __future__ import annotations

import os
import sys
import traceback

import jax
import orbax.checkpoint as ocp
from etils import epath

from sbirjax import paths, rundir
from sbirjax.errors import ResumeError


def checkpoint_dir(workdir) -> epath.Path:
    """`<workdir>/checkpoints`, made absolute when it is a local path (gs://... stays as it is)."""
    path = epath.Path(workdir) / rundir.CHECKPOINTS
    return path if paths.is_remote(workdir) else epath.Path(os.path.abspath(path))


_ABANDONED = []  # set once a restore failed and left reads behind


def reads_abandoned() -> bool:
    """True once a checkpoint failed to restore in this process (see `restore_latest`)."""
    return bool(_ABANDONED)


def _quiet_abandoned_reads() -> None:
    """Silence the leftovers of an orbax read of a checkpoint already reported unreadable: its
    coroutines, collected later ('Exception ignored in <coroutine ...>'), and tensorstore's
    callbacks into the event loop the failed read closed ('Event loop is closed'), which would
    each print a traceback. Every other exception is reported as before. Installed before the
    first restore is tried: such a callback can fire as soon as the read fails, before the
    failure reaches sbirjax."""
    if getattr(sys.unraisablehook, "_sbirjax_quiet", False):
        return
    unraisable_hook, except_hook = sys.unraisablehook, sys.excepthook

    def closed_loop(kind, value, tb) -> bool:
        frames = traceback.extract_tb(tb)
        return (kind is RuntimeError and str(value) == "Event loop is closed"
                and bool(frames) and frames[0].name == "call_soon_threadsafe")

    def unraisable(info):
        if not ("_read_array_index_and_device_put" in repr(info.object)
                or closed_loop(info.exc_type, info.exc_value, info.exc_traceback)):
            unraisable_hook(info)

    def excepthook(kind, value, tb):
        if not closed_loop(kind, value, tb):
            except_hook(kind, value, tb)

    unraisable._sbirjax_quiet = True
    sys.unraisablehook, sys.excepthook = unraisable, excepthook


class Checkpointer:
    def __init__(self, workdir: str, *, max_to_keep: int = 3):
        self.directory = checkpoint_dir(workdir)
        self.max_to_keep = max_to_keep
        self.manager = self._manager()

    def _manager(self):
        return ocp.CheckpointManager(
            self.directory,
            # A save cut short (kill -9) leaves only a temporary folder, never a checkpoint;
            # such leftovers are removed when the next run starts.
            options=ocp.CheckpointManagerOptions(max_to_keep=self.max_to_keep, create=True,
                                                 cleanup_tmp_directories=True),
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state) -> None:
        # force=True: the loop decides the cadence, orbax should not second-guess it.
        self.manager.save(step, args=ocp.args.StandardSave(state), force=True)

    def restore(self, abstract_state, shardings, step: int | None = None):
        step = self.latest_step() if step is None else step
        target = jax.tree.map(
            lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract_state,
            shardings)
        return self.manager.restore(step, args=ocp.args.StandardRestore(target))

    def restore_latest(self, abstract_state, shardings, log=print):
        """(state, step) from the newest checkpoint that reads, or (None, 0) when there is none.

        An unreadable checkpoint (a truncated file, a missing folder) is skipped with a warning
        naming it and the one used instead; the skipped folders are moved to
        `checkpoints/unreadable_<step>` (kept for inspection, out of orbax's way). When none
        reads, ResumeError says so: a damaged directory, or a config whose parameters no longer
        match the checkpoints."""
        steps = sorted(self.manager.all_steps(), reverse=True)
        failed = []
        if steps:
            _quiet_abandoned_reads()
        for step in steps:
            try:
                state = self.restore(abstract_state, shardings, step)
            except Exception as e:  # noqa: BLE001 - orbax and tensorstore raise many kinds
                reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
                failed.append((step, reason))
                log(f"warning: the checkpoint of step {step} in {self.directory} cannot be "
                    f"restored ({type(e).__name__}: {reason})")
                # A failed restore can leave the manager's item handlers guessing at the
                # layout: the next step is tried with a fresh one. Its abandoned reads would
                # print their tracebacks when collected: they are reported above already.
                _ABANDONED.append(True)
                self.manager.close()
                self.manager = self._manager()
                continue
            if failed:
                log(f"warning: resuming from the checkpoint of step {step} instead; the "
                    f"unreadable ones move to {self.directory}/unreadable_<step>")
                if jax.process_index() == 0:
                    for bad, _ in failed:
                        src = self.directory / str(bad)
                        if src.exists():
                            src.rename(self.directory / f"unreadable_{bad}")
                self.manager.reload()
            return state, step
        if failed:
            raise ResumeError(
                f"no checkpoint in {self.directory} can be restored (steps "
                f"{[s for s, _ in failed]}; the newest: {failed[0][1]}). If the config changed "
                "the model, run with the config of the run (its config.json); otherwise the "
                "checkpoints are damaged: use a new --workdir")
        return None, 0

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()
