"""Train-step throughput of a config's method on random inputs, as JSON.

  python -m benchmarks.train_step --config=configs/synthetic_triplet.py [--iters=20]
                                  [--config.batch_size=64 --config.data.image.size=256]

StyleMeUp at the paper's sizes (12 tasks, 256 x 256, d = 128), second and first order:
  python -m benchmarks.train_step --config=configs/synthetic_stylemeup.py --iters=3 \
      --config.data.image.size=256 --config.model.embed_dim=128 [--config.meta.first_order=True]

Times the same jitted, sharded step train.py runs (state donated), median over `iters` steps
after a warm-up, and reports steps/s and images/s (images = every sketch and photo the step
encodes). Random uint8 inputs: this measures the model, not the input pipeline
(see benchmarks/input_pipeline.py).
"""
from __future__ import annotations

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from benchmarks import common
from sbirjax import allocator, methods, sharding
from sbirjax.compiled import compile_fns

_CONFIG = config_flags.DEFINE_config_file("config", "configs/synthetic_triplet.py", "config file")
_ITERS = flags.DEFINE_integer("iters", 20, "timed steps")
_WARMUP = flags.DEFINE_integer("warmup", 3, "untimed steps (the first compiles)")


def main(_):
    config = _CONFIG.value
    method = methods.get(config.method)
    module = method.build(config.model)
    mesh = sharding.make_mesh(config.mesh.num_devices, fsdp=config.mesh.get("fsdp", 1))
    size = config.data.image.size
    rng = jax.random.key(0)
    fns = compile_fns(config, method, module, mesh, 1000, rng)
    state = fns.init(rng)
    layout = common.BATCH_LAYOUT[method.train_inputs]
    batch = sharding.to_global(common.random_batch(layout, config.batch_size, size), mesh)
    holder = {"state": state}
    compiled, flops = common.compile_with_flops(fns.step, state, batch, rng)
    if config.get("meta", {}).get("task_chunk", 0):
        flops = common.unrolled_flops(config, method, module, mesh, state, batch, rng)
    mem = compiled.memory_analysis()  # XLA's own accounting of the step's buffers

    def one():
        holder["state"], m = compiled(holder["state"], batch, rng)
        jax.block_until_ready(m["loss"])

    t = common.time_calls(one, warmup=_WARMUP.value, iters=_ITERS.value)
    images = config.batch_size * sum(layout.values())
    peak = common.matmul_peak_gflops()
    extra = {"utilisation": {**common.utilisation(flops, t["median_s"], peak,
                                                  common.device_peak_gflops()),
                             "matmul_peak_gflops": peak,
                             # the step's floor on this device if every FLOP ran at the matmul rate
                             "seconds_at_matmul_peak": flops / peak / 1e9 if flops else None}}
    if method.train_inputs == "meta_task":
        extra["tasks_per_s"] = config.batch_size / t["median_s"]
    if mem is not None:
        extra["xla_memory_mb"] = {k: getattr(mem, f"{k}_size_in_bytes") / 2**20
                                  for k in ("argument", "output", "temp", "generated_code")}
    common.emit({**extra,
        "benchmark": "train_step", "method": config.method, "batch_size": config.batch_size,
        "method_options": {**{k: v for k, v in config.get("meta", {}).items()},
                           "conv_impl": config.model.get("conv_impl", "xla")},
        "image_size": size, "images_per_step": images,
        "params": int(sum(np.prod(x.shape) for x in jax.tree.leaves(fns.abstract_state.params))),
        "step_time_s": t, "steps_per_s": 1.0 / t["median_s"],
        "images_per_s": images / t["median_s"], "peak_host_rss_mb": common.peak_host_rss_mb(),
        "machine": common.machine()})


if __name__ == "__main__":
    allocator.keep_freed_memory()  # first, as sbirjax.main does
    app.run(main)
