"""Orbax checkpoints: save every N steps and at the end, keep the last few, resume automatically.

Resume rule: if `<workdir>/checkpoints` holds a checkpoint, training continues from the latest
one. Restoring always goes into an abstract target carrying shardings (from `jax.eval_shape`), so
optax states come back with their own types and arrays land directly on the right devices.

Every process takes part in saving and restoring (each writes its own shards); the directory may be
local or on GCS (`gs://bucket/run`), so paths go through etils.epath (a gs:// path needs gcsfs).
"""
from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp
from etils import epath


def checkpoint_dir(workdir) -> epath.Path:
    """`<workdir>/checkpoints`, made absolute when it is a local path (gs://... stays as it is)."""
    path = epath.Path(workdir) / "checkpoints"
    return path if "://" in str(workdir) else epath.Path(os.path.abspath(path))


class Checkpointer:
    def __init__(self, workdir: str, *, max_to_keep: int = 3):
        self.directory = checkpoint_dir(workdir)
        self.manager = ocp.CheckpointManager(
            self.directory,
            # A save cut short (kill -9) leaves only a temporary folder, never a checkpoint;
            # such leftovers are removed when the next run starts.
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
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
            lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract_state, shardings)
        return self.manager.restore(step, args=ocp.args.StandardRestore(target))

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()
