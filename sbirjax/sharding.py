"""Device mesh and shardings.

One mesh for the whole run, described in the config (`config.mesh`). Batches are split over the
'data' axis; parameters and optimiser state are replicated (an fsdp axis can shard them later).
Axis types are Auto: with Explicit axes (the JAX 0.10 default of `jax.make_mesh`) a contrastive
`a @ b.T` on batch-sharded inputs raises a ShardingTypeError.
"""
from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

DATA = "data"


def make_mesh(num_devices: int = -1, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D data-parallel mesh over `num_devices` devices (-1: all of them)."""
    devices = list(jax.devices() if devices is None else devices)
    if num_devices not in (-1, None):
        if num_devices > len(devices):
            raise ValueError(
                f"config.mesh.num_devices={num_devices} but only {len(devices)} devices are visible; "
                "set --config.mesh.num_devices=-1 to use all of them.")
        devices = devices[:num_devices]
    return Mesh(np.asarray(devices), (DATA,), axis_types=(AxisType.Auto,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over 'data', everything else whole."""
    return NamedSharding(mesh, P(DATA))


def state_shardings(abstract_state, mesh: Mesh):
    """Shardings for the train state: replicated everywhere for pure data parallelism."""
    return jax.tree.map(lambda _: replicated(mesh), abstract_state)


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
    return global_batch_size // jax.process_count()
