"""MA-SBIR throughput at ViT-B/32 size (random weights), as JSON.

  python -m benchmarks.masbir_step [--batch=32] [--dtype=bfloat16] [--clip=code]
                                   [--embed_batch=64] [--iters=5] [--warmup=2]

Two figures on random inputs:
  train   the jitted, sharded step train.py runs (state donated): both CLIP towers, every MA-SBIR
          loss, AdamW over the parameter groups of --clip ('code': CLIP at 1e-5 x the base lr,
          'frozen', 'layernorm_only'); images/s = captions/s = batch / step time
  embed   the 'photo' embed function that indexes a gallery (image tower only); images/s
The model is the MA-SBIR configs' (sbirjax/defaults_masbir.py) with pretrained='' : the shapes of
openai/clip-vit-base-patch32, 224 px images, captions of 30 tokens. The input pipeline is not
measured (benchmarks/input_pipeline.py).
"""
from __future__ import annotations

import jax
import numpy as np
from absl import app, flags

from benchmarks import common
from sbirjax import allocator, compiled, defaults_masbir, methods, sharding

_BATCH = flags.DEFINE_integer("batch", 32, "global train batch (images and captions)")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "compute dtype")
_CLIP = flags.DEFINE_enum("clip", "code", ["code", "frozen", "layernorm_only"], "CLIP groups")
_EMBED_BATCH = flags.DEFINE_integer("embed_batch", 64, "images per embed call")
_ITERS = flags.DEFINE_integer("iters", 5, "timed calls")
_WARMUP = flags.DEFINE_integer("warmup", 2, "untimed calls (the first compiles)")


def config(batch: int, dtype: str, clip_mode: str):
    c = defaults_masbir.base(pretrained="")
    c.batch_size = batch
    c.model.dtype = dtype
    c.optim.groups = defaults_masbir.clip_groups(clip_mode)
    return c


def random_batch(c, seed=0):
    rng = np.random.default_rng(seed)
    b, size, length = c.batch_size, c.data.image.size, c.data.text.max_length
    ids = rng.integers(0, c.model.text.vocab_size - 1, (b, length)).astype(np.int32)
    ids[:, -1] = c.model.text.vocab_size - 1  # the end token, where the text tower pools
    return {"image": rng.integers(0, 256, (b, size, size, 3), dtype=np.uint8),
            "modality": rng.integers(0, 2, b).astype(np.int32),
            "text_modality": rng.integers(2, 4, b).astype(np.int32),
            "label": rng.integers(0, 100, b).astype(np.int32),
            "input_ids": ids, "attention_mask": np.ones((b, length), np.int32)}


def main(_):
    c = config(_BATCH.value, _DTYPE.value, _CLIP.value)
    method = methods.get(c.method)
    module = method.build(c.model)
    mesh = sharding.make_mesh(c.mesh.num_devices)
    rng = jax.random.key(0)
    fns = compiled.compile_fns(c, method, module, mesh, 1000, rng)
    holder = {"state": fns.init(rng)}
    batch = sharding.to_global(random_batch(c), mesh)

    step_fn, train_flops = common.compile_with_flops(fns.step, holder["state"], batch, rng)

    def step():
        holder["state"], m = step_fn(holder["state"], batch, rng)
        jax.block_until_ready(m["loss"])

    t_train = common.time_calls(step, warmup=_WARMUP.value, iters=_ITERS.value)
    size = c.data.image.size
    images = np.random.default_rng(1).integers(0, 256, (_EMBED_BATCH.value, size, size, 3),
                                               dtype=np.uint8)
    images = sharding.to_global({"image": images}, mesh)["image"]
    params = holder["state"].params

    embed_fn, embed_flops = common.compile_with_flops(fns.embed["photo"], params, images)

    def embed():
        jax.block_until_ready(embed_fn(params, images))

    t_embed = common.time_calls(embed, warmup=_WARMUP.value, iters=_ITERS.value)
    peak, device = common.matmul_peak_gflops(), common.device_peak_gflops()
    common.emit({
        "benchmark": "masbir_step", "model": "CLIP ViT-B/32 shapes, random weights",
        "dtype": c.model.dtype, "clip_groups": _CLIP.value, "image_size": size,
        "text_length": c.data.text.max_length,
        "params": int(sum(np.prod(x.shape) for x in jax.tree.leaves(fns.abstract_state.params))),
        "train": {"batch_size": c.batch_size, "step_time_s": t_train,
                  "steps_per_s": 1.0 / t_train["median_s"],
                  "images_per_s": c.batch_size / t_train["median_s"],
                  **common.utilisation(train_flops, t_train["median_s"], peak, device)},
        "embed": {"batch_size": _EMBED_BATCH.value, "call_time_s": t_embed,
                  "images_per_s": _EMBED_BATCH.value / t_embed["median_s"],
                  **common.utilisation(embed_flops, t_embed["median_s"], peak, device)},
        "matmul_peak_gflops": peak,
        "peak_host_rss_mb": common.peak_host_rss_mb(), "machine": common.machine()})


if __name__ == "__main__":
    allocator.keep_freed_memory()  # first, as sbirjax.main does
    app.run(main)
