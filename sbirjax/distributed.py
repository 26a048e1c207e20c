"""Joining the other processes of a multi-host job (`jax.distributed`).

`initialize` must run before anything asks JAX for devices. It connects the processes when

- the coordinator address, process count or process id is given (GPU clusters, or several
  processes on one machine): `jax.distributed.initialize` with those values (what is not given
  comes from the cluster environment, or the call fails and says which value is missing);
- or the environment is one JAX knows how to read (the same environments `jax.distributed`
  detects by itself): a Cloud TPU VM (one or several workers; a single worker joins a job of one
  process), a Slurm job step of more than one task, or an Open MPI launch (`mpirun`) of more than
  one process.

A plain single process does nothing: no coordinator, no ports.
"""
from __future__ import annotations

import os
import signal
import threading

import jax
from jax.experimental import multihost_utils


def _on_cloud_tpu_vm() -> bool:
    # jax sets this when it is imported on a VM with TPU chips attached (and libtpu installed).
    from jax._src import cloud_tpu_init
    platforms = os.environ.get("JAX_PLATFORMS", "")
    return bool(getattr(cloud_tpu_init, "running_in_cloud_tpu_vm", False)) and (
        not platforms or "tpu" in platforms)


def detected_environment() -> str | None:
    """The name of the multi-process environment this process runs in, or None."""
    env = os.environ
    slurm = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID")
    if all(k in env for k in slurm) and int(env["SLURM_NTASKS"]) > 1:
        return "slurm"
    if "OMPI_MCA_orte_hnp_uri" in env and int(env.get("OMPI_COMM_WORLD_SIZE", "1")) > 1:
        return "openmpi"
    if _on_cloud_tpu_vm():
        return "cloud_tpu"
    return None


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> bool:
    """Connect to the job's other processes when there are any; True if jax.distributed is up."""
    if jax.distributed.is_initialized():
        return True
    explicit = (coordinator_address, num_processes, process_id)
    if all(v is None for v in explicit) and detected_environment() is None:
        return False
    # On CPU, cross-process collectives go through gloo (the JAX default): nothing to choose here.
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id)
    return True


class PreemptionWatch:
    """Context manager over a training loop: has SIGTERM asked the job to stop?

    `reached(step)` is called by every process at every step and is True at the same step on all of
    them, so all of them save that step's checkpoint together.

    - With jax.distributed up (any multi-process job, and a Cloud TPU VM): JAX's preemption service
      catches SIGTERM itself and agrees on a step through the coordinator in the background
      (`multihost_utils.reached_preemption_sync_point`): no collective is added to the steps, and
      the Python handler is left alone, since replacing it would switch that service off.
    - Otherwise (one plain process): a Python SIGTERM handler sets a flag that the next step
      boundary reads. The previous handler is restored on exit, so SIGTERM outside training acts
      as before.
    """

    def __init__(self):
        self.received = False
        self._installed, self._previous = False, None
        self._jax_service = jax.distributed.is_initialized()

    def __enter__(self):
        if not self._jax_service and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)
            self._installed = True
        return self

    def _on_sigterm(self, signum, frame):
        del signum, frame
        self.received = True

    def reached(self, step: int) -> bool:
        if self._jax_service:
            try:
                return multihost_utils.reached_preemption_sync_point(step)
            except RuntimeError:  # jax_enable_preemption_service is off: SIGTERM is not caught
                return False
        return self.received

    def __exit__(self, *exc):
        if self._installed:  # None: the old handler was not set from Python; the default then
            signal.signal(signal.SIGTERM,
                          signal.SIG_DFL if self._previous is None else self._previous)
            self._installed = False
        return False
