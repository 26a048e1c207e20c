"""One process of a test run: trains the tiny shrunk Triplet-SN config and saves its final
parameters.

  python -m tests.multiprocess_worker --workdir=W --data_dir=D [--steps=6] [--out=params.npz]
      [--checkpoint_every=2] [--num_devices=-1] [--fsdp=1]
      [--coordinator_address=localhost:PORT --num_processes=2 --process_id=0]

Run from the repository root, with XLA_FLAGS giving the process its fake CPU devices. Exits like
`python -m sbirjax.main`: 0 done (process 0 then writes --out), 143 stopped by SIGTERM after saving
a checkpoint. The tests start workers with `spawn` and watch them with `wait_for_step`.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def spawn(log_path, *, devices: int, compile_cache: str, **flags) -> subprocess.Popen:
    """Start a worker with `devices` fake CPU devices; flags as in the usage above.

    Workers share a persistent compilation cache, so only the first one of each shape compiles, and
    compile without XLA's backend optimisations (half the time; what is compared is sharding and
    resumption, and a worker's results are compared bit for bit only with other workers')."""
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices} "
                                     "--xla_backend_optimization_level=0",
               JAX_PLATFORMS="cpu", JAX_COMPILATION_CACHE_DIR=compile_cache,
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", TF_CPP_MIN_LOG_LEVEL="3")
    args = [f"--{k}={v}" for k, v in flags.items() if v is not None]
    log = open(log_path, "ab")
    try:
        return subprocess.Popen([sys.executable, "-m", "tests.multiprocess_worker", *args],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    finally:
        log.close()  # the child holds its own descriptor


def metrics(workdir) -> list[dict]:
    """The records of <workdir>/metrics.jsonl so far (a line being written is skipped)."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    rows = []
    with open(path) as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return rows


def wait_for_step(proc, workdir, step: int, *, after: int = 0, timeout: float = 120.0) -> int:
    """Wait until a train record of `step` or later appears among records `after`.. of the log.

    Returns the step seen. Fails if the worker ends or the time runs out first."""
    end = time.time() + timeout
    while time.time() < end:
        seen = [r["step"] for r in metrics(workdir)[after:] if r["kind"] == "train"]
        if seen and max(seen) >= step:
            return max(seen)
        if proc.poll() is not None:
            raise AssertionError(f"worker ended (status {proc.returncode}) before step {step}")
        time.sleep(0.01)
    raise AssertionError(f"no step {step} within {timeout}s")


def parse(argv):
    p = argparse.ArgumentParser()
    p.add_argument("--workdir", required=True)
    p.add_argument("--data_dir", required=True)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--checkpoint_every", type=int, default=2)
    p.add_argument("--num_devices", type=int, default=-1)
    p.add_argument("--fsdp", type=int, default=1)
    p.add_argument("--out", default=None)
    p.add_argument("--coordinator_address", default=None)
    p.add_argument("--num_processes", type=int, default=None)
    p.add_argument("--process_id", type=int, default=None)
    return p.parse_args(argv)


def tiny_config(data_dir, steps, checkpoint_every=2, num_devices=-1, fsdp=1):
    """The shrunk baseline of the tests, with the run-shape options these tests vary."""
    from configs import synthetic_triplet
    from tests import helpers
    config = helpers.shrink(synthetic_triplet.get_config(), data_dir, steps=steps)
    with config.unlocked():
        config.checkpoint_every = checkpoint_every
        config.mesh.num_devices = num_devices
        config.mesh.fsdp = fsdp
    return config


def flat_params(params) -> dict:
    """Parameters gathered onto this host as numpy arrays, keyed by their tree path."""
    import jax
    import numpy as np
    from jax.experimental import multihost_utils
    gathered = multihost_utils.process_allgather(params, tiled=True)
    return {jax.tree_util.keystr(k): np.asarray(v)
            for k, v in jax.tree_util.tree_leaves_with_path(gathered)}


def main(argv) -> int:
    args = parse(argv)
    from sbirjax import distributed
    distributed.initialize(args.coordinator_address, args.num_processes, args.process_id)

    import jax
    import numpy as np

    from sbirjax import main as entry
    from sbirjax import train

    config = tiny_config(args.data_dir, args.steps, args.checkpoint_every, args.num_devices,
                         args.fsdp)
    try:
        state, _ = train.train_and_evaluate(config, args.workdir)
    except train.Preempted as e:
        print(str(e), file=sys.stderr)
        return entry.EXIT_PREEMPTED
    params = flat_params(state.params)  # every process takes part in the gather
    if args.out and jax.process_index() == 0:
        np.savez(args.out, **params)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
