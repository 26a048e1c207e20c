"""Device mesh and shardings.

One mesh for the whole run, described in the config (`config.mesh`): a 2-D mesh ('data', 'fsdp')
of `num_devices / fsdp` x `fsdp` devices. Batches are split over both axes (every device gets its
own rows). Parameters and optimiser state are replicated when `fsdp` is 1 (pure data
parallelism); otherwise each leaf of at least FSDP_MIN_SIZE elements is split over 'fsdp' along its
largest axis that the fsdp size divides, and XLA gathers it where a step needs it whole.
Axis types are Auto: with Explicit axes (the JAX 0.10 default of `jax.make_mesh`) a contrastive
`a @ b.T` on batch-sharded inputs raises a ShardingTypeError.
"""
from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

DATA = "data"
FSDP = "fsdp"
AXES = (DATA, FSDP)
# Leaves smaller than this (biases, norm scales, step counters) stay replicated under fsdp:
# splitting them saves no memory worth the extra collectives.
FSDP_MIN_SIZE = 1024


def make_mesh(num_devices: int = -1, devices: Sequence[jax.Device] | None = None,
              fsdp: int = 1) -> Mesh:
    """A ('data', 'fsdp') mesh over `num_devices` devices (-1: all of them), fsdp of them per
    row."""
    devices = list(jax.devices() if devices is None else devices)
    if num_devices not in (-1, None):
        if num_devices > len(devices):
            raise ValueError(
                f"config.mesh.num_devices={num_devices} but only {len(devices)} devices are "
                "visible; set --config.mesh.num_devices=-1 to use all of them.")
        devices = devices[:num_devices]
    if fsdp < 1 or len(devices) % fsdp:
        raise ValueError(f"config.mesh.fsdp={fsdp} must be a positive divisor of the "
                         f"{len(devices)} devices of the mesh.")
    shape = (len(devices) // fsdp, fsdp)
    if devices == list(jax.devices()):
        # The whole machine (or pod): jax.make_mesh lays the axes out along the physical topology.
        return jax.make_mesh(shape, AXES, axis_types=(AxisType.Auto,) * 2, devices=devices)
    return Mesh(np.asarray(devices).reshape(shape), AXES, axis_types=(AxisType.Auto,) * 2)


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over every device ('data' and 'fsdp'), everything else whole."""
    return NamedSharding(mesh, P(AXES))


def leaf_spec(shape: Sequence[int], fsdp: int, min_size: int = FSDP_MIN_SIZE) -> P:
    """P() or the spec splitting the largest axis that `fsdp` divides (the last one among
    equals)."""
    if fsdp == 1 or int(np.prod(shape, dtype=np.int64)) < min_size:
        return P()
    candidates = [i for i, n in enumerate(shape) if n % fsdp == 0]
    if not candidates:
        return P()
    axis = max(candidates, key=lambda i: (shape[i], i))
    return P(*([None] * axis + [FSDP]))


def state_shardings(abstract_state, mesh: Mesh, min_size: int = FSDP_MIN_SIZE):
    """Shardings for the train state (params and optimiser state alike): see the module doc."""
    fsdp = mesh.shape[FSDP]
    return jax.tree.map(
        lambda a: NamedSharding(mesh, leaf_spec(getattr(a, "shape", ()), fsdp, min_size)),
        abstract_state)


def to_global(local_batch, mesh: Mesh):
    """Host-local numpy batch (this process's share) -> globally sharded jax arrays."""
    sharding = batch_sharding(mesh)
    return jax.tree.map(
        lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), local_batch)


def local_batch_size(global_batch_size: int, mesh: Mesh) -> int:
    """This process's share of a global batch; checks that the batch splits evenly."""
    n_dev = mesh.devices.size
    if global_batch_size % n_dev:
        raise ValueError(
            f"batch size {global_batch_size} is not divisible by the {n_dev} devices of the mesh; "
            f"choose a multiple of {n_dev}.")
    n_proc = len({d.process_index for d in mesh.devices.flat})
    return global_batch_size // n_proc
