"""Hugging Face CLIP checkpoints for the Flax CLIP, without torch or TensorFlow.

A checkpoint is a directory (or a Hub id such as "openai/clip-vit-base-patch32") holding
config.json, model.safetensors (float32, float16 or bfloat16) and the tokenizer files. Weights come
back as a pytree of float32 numpy arrays shaped for `clip.CLIP`; the mapping is checked in both
directions, so a checkpoint of another architecture fails loudly instead of loading half its
tensors. The tokenizer of a checkpoint is read by sbirjax/data/clip_tokenizer.py.
"""
from __future__ import annotations

import json
import os

import flax.traverse_util
import jax
import jax.numpy as jnp
import numpy as np
from safetensors import safe_open

from sbirjax.hub import resolve
from sbirjax.nets.clip import CLIP, ClipConfig

# Non-persistent buffers that older checkpoints still carry; they hold no learned values.
IGNORED_KEYS = {"text_model.embeddings.position_ids", "vision_model.embeddings.position_ids"}


def read_safetensors(file: str) -> dict[str, np.ndarray]:
    """All tensors as float32 numpy. The numpy reader cannot hold bfloat16, the flax one can; it is
    kept on the host CPU so nothing is staged through an accelerator."""
    with jax.default_device(jax.devices("cpu")[0]), safe_open(file, framework="flax") as f:
        return {k: np.asarray(f.get_tensor(k).astype(jnp.float32)) for k in f.keys()}


def hf_key(path: tuple[str, ...]) -> str:
    """Flax parameter path -> Hugging Face state-dict key."""
    parts = []
    for p in path:
        if p.startswith("layers_"):
            parts += ["encoder", "layers", p.removeprefix("layers_")]
        elif p in ("patch_embedding", "class_embedding", "position_embedding", "token_embedding"):
            parts += ["embeddings", p]
        elif p == "pre_layernorm":
            parts.append("pre_layrnorm")  # sic: Hugging Face's spelling
        elif p in ("kernel", "scale", "embedding"):
            parts.append("weight")
        else:
            parts.append(p)
    return ".".join(parts)


def to_flax_layout(path: tuple[str, ...], array: np.ndarray) -> np.ndarray:
    """PyTorch layouts -> Flax: Linear (out, in) -> (in, out); Conv OIHW -> HWIO."""
    if path[-1] == "kernel" and array.ndim == 2:
        return np.ascontiguousarray(array.T)
    if path[-1] == "kernel" and array.ndim == 4:
        return np.ascontiguousarray(array.transpose(2, 3, 1, 0))
    return array


def param_shapes(config: ClipConfig) -> dict[tuple[str, ...], tuple[int, ...]]:
    """Flat {path: shape} of the Flax CLIP's parameters, without allocating them."""
    size = config.vision.image_size
    abstract = jax.eval_shape(
        CLIP(config).init, jax.random.key(0), jnp.zeros((1, size, size, 3), jnp.float32),
        jnp.zeros((1, 1), jnp.int32), jnp.ones((1, 1), jnp.int32))
    return {p: s.shape for p, s in flax.traverse_util.flatten_dict(abstract["params"]).items()}


def load_pretrained(path_or_hub_id: str, variant: str | None = None) -> tuple[ClipConfig, dict]:
    """(config, params) from config.json and model.safetensors (or model.{variant}.safetensors, the
    Hugging Face naming of e.g. float16 copies). Params: nested dict of float32 numpy arrays."""
    directory = resolve(path_or_hub_id)
    config_file = os.path.join(directory, "config.json")
    weights_file = os.path.join(directory,
                                f"model.{variant}.safetensors" if variant else "model.safetensors")
    for f in (config_file, weights_file):
        if not os.path.isfile(f):
            raise FileNotFoundError(f"{f} not found (a CLIP checkpoint needs config.json and a "
                                    "safetensors file; sharded checkpoints are not supported)")
    with open(config_file) as f:
        config = ClipConfig.from_hf_dict(json.load(f))
    tensors = read_safetensors(weights_file)
    shapes = param_shapes(config)
    wanted = {hf_key(p): p for p in shapes}
    missing = sorted(set(wanted) - set(tensors))
    unexpected = sorted(set(tensors) - set(wanted) - IGNORED_KEYS)
    if missing or unexpected:
        raise ValueError(f"{weights_file} does not match the CLIP described by {config_file}: "
                         f"missing keys {missing}; unexpected keys {unexpected}")
    flat = {}
    for key, path in wanted.items():
        array = to_flax_layout(path, tensors[key])
        if array.shape != shapes[path]:
            raise ValueError(f"{weights_file}: {key} has shape {tensors[key].shape}, which gives "
                             f"{array.shape} for {'/'.join(path)}; the config implies "
                             f"{shapes[path]}")
        flat[path] = array
    return config, flax.traverse_util.unflatten_dict(flat)
