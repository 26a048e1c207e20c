"""Train-step throughput against device count, as JSON lines.

  python -m benchmarks.scaling [--config=configs/synthetic_triplet.py] [--devices=1,2,4,8]
                               [--per_device_batch=4] [--fsdp=1] [--iters=10] [--config.KEY=...]

Each device count N runs in its own process and times the jitted, sharded train step that train.py
runs (as benchmarks/train_step.py does: state donated, random uint8 inputs, median over --iters
steps after a warm-up) at a fixed batch per device, global batch = N x --per_device_batch. One JSON
line per count: steps/s, images/s, images/s per device, and what device 0 holds: its rows of the
batch and its bytes of parameters and optimiser state (an fsdp axis divides the latter); a last
line sums up images/s per device relative to the smallest count.

On CPU (--platform=cpu, the default) the N devices are fake
(XLA_FLAGS=--xla_force_host_platform_device_count=N) and share the host's cores: on a 2-core
machine images/s stays flat or drops as N grows. That run checks that the sharding is right (each
device holds 1/N of the batch, and 1/fsdp of the state with --fsdp), not speed.

On real accelerators (one host with 8 GPUs, or a TPU VM such as v4-8 / v5e-8), each count uses the
first N visible devices; images/s per device staying near constant means data parallelism scales:

  python -m benchmarks.scaling --platform=accelerator --devices=1,2,4,8 --per_device_batch=32 \\
      --config.data.image.size=256 [--fsdp=2]
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", "configs/synthetic_triplet.py", "config file")
_DEVICES = flags.DEFINE_list("devices", ["1", "2", "4", "8"], "device counts to time")
_PER_DEVICE_BATCH = flags.DEFINE_integer("per_device_batch", 4, "examples per device per step")
_FSDP = flags.DEFINE_integer("fsdp", 1, "config.mesh.fsdp (counts it does not divide are skipped)")
_ITERS = flags.DEFINE_integer("iters", 10, "timed steps")
_WARMUP = flags.DEFINE_integer("warmup", 2, "untimed steps (the first compiles)")
_PLATFORM = flags.DEFINE_enum("platform", "cpu", ["cpu", "accelerator"],
                              "cpu: N fake CPU devices per run; accelerator: the first N real ones")
_CHILD = flags.DEFINE_integer("child_devices", 0, "internal: time this device count here")


def measure(n: int) -> dict:
    """Time the step on a mesh of the first n devices (runs in the child process)."""
    import jax
    import numpy as np
    from benchmarks import common
    from sbirjax import compiled, methods, sharding

    config = _CONFIG.value
    fsdp = _FSDP.value
    with config.unlocked():
        config.batch_size = n * _PER_DEVICE_BATCH.value
        config.mesh.num_devices, config.mesh.fsdp = n, fsdp
    method = methods.get(config.method)
    module = method.build(config.model)
    mesh = sharding.make_mesh(n, fsdp=fsdp)
    rng = jax.random.key(0)
    fns = compiled.compile_fns(config, method, module, mesh, 1000, rng)
    if method.train_inputs != "triplet":
        raise ValueError(f"{config.method} trains on {method.train_inputs!r} examples; this "
                         "benchmark feeds triplets (see benchmarks/train_step.py for the others)")
    layout = ("sketch", "positive", "negative")
    size = config.data.image.size
    images = np.random.default_rng(0).integers(
        0, 256, (len(layout), config.batch_size, size, size, 3), dtype=np.uint8)
    batch = sharding.to_global(dict(zip(layout, images)), mesh)
    holder = {"state": fns.init(rng)}
    state_bytes = sum(x.addressable_shards[0].data.nbytes for x in jax.tree.leaves(holder["state"]))

    def one():
        holder["state"], m = fns.step(holder["state"], batch, rng)
        jax.block_until_ready(m["loss"])

    t = common.time_calls(one, warmup=_WARMUP.value, iters=_ITERS.value)
    images = config.batch_size * len(layout)
    return {
        "benchmark": "scaling", "method": config.method, "devices": n,
        "mesh": dict(mesh.shape), "per_device_batch": _PER_DEVICE_BATCH.value,
        "global_batch": config.batch_size, "image_size": size, "images_per_step": images,
        "batch_rows_on_device0": int(jax.tree.leaves(batch)[0].addressable_shards[0].data.shape[0]),
        "state_bytes_on_device0": int(state_bytes),
        "state_bytes_logical": int(sum(x.nbytes for x in jax.tree.leaves(holder["state"]))),
        "step_time_median_s": t["median_s"], "steps_per_s": 1.0 / t["median_s"],
        "images_per_s": images / t["median_s"],
        "images_per_s_per_device": images / t["median_s"] / n,
        "trace_count": compiled.TRACE_COUNTS.get("train_step"), "machine": common.machine()}


def run_child(n: int, argv: list[str]) -> dict:
    env = dict(os.environ)
    if _PLATFORM.value == "cpu":
        env.update(JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={n}")
    passed = [a for a in argv[1:] if a.startswith("--config") or a.split("=")[0] in (
        "--per_device_batch", "--fsdp", "--iters", "--warmup", "--platform")]
    out = subprocess.run([sys.executable, "-m", "benchmarks.scaling", f"--child_devices={n}",
                          *passed], env=env, capture_output=True, text=True, check=False)
    if out.returncode:
        raise RuntimeError(f"{n} devices failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv):
    if _CHILD.value:
        print(json.dumps(measure(_CHILD.value), sort_keys=True), flush=True)
        return
    rows = []
    for n in map(int, _DEVICES.value):
        if n % _FSDP.value:
            continue
        rows.append(run_child(n, sys.argv))
        print(json.dumps(rows[-1], sort_keys=True), flush=True)
    base = rows[0]["images_per_s_per_device"]
    print(json.dumps({"benchmark": "scaling_summary", "platform": _PLATFORM.value,
                      "fsdp": _FSDP.value, "devices": [r["devices"] for r in rows],
                      "images_per_s": [round(r["images_per_s"], 2) for r in rows],
                      "per_device_efficiency": [round(r["images_per_s_per_device"] / base, 3)
                                                for r in rows],
                      "batch_rows_on_device0": [r["batch_rows_on_device0"] for r in rows],
                      "state_bytes_on_device0": [r["state_bytes_on_device0"] for r in rows]},
                     sort_keys=True), flush=True)


if __name__ == "__main__":
    app.run(main)
