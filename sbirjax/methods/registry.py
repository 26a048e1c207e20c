"""Methods are registered by name; each brings its own module, loss and embed functions.

Everything else (mesh, jit, checkpoints, evaluation, logging) is shared by the training loop. A
method is a frozen record of pure functions:

  build(model_config) -> flax module
  init(module, rng, image_shape) -> params
  loss(module, params, batch, rng, config) -> (scalar loss, dict of scalar metrics)
  embed(module, params, images, modality) -> (B, d) L2-normalised embeddings; modality is
      one of `embed_modalities`
  train_inputs: name of the example builder of the input pipeline (sbirjax/data/examples.py)
  embed_modalities: 'photo' embeds the gallery; every other entry is a query variant, evaluated
      separately ('sketch' reported without prefix, others as '<variant>/<metric>')
  load_pretrained: optional (params, model_config) -> params, applied on the host after a fresh
      init (not on resume) when pretrained_source(model_config) names something, e.g. to load
      CLIP weights or an ImageNet backbone
  pretrained_source: model_config -> what load_pretrained loads ('' nothing), for the log
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

_METHODS: dict[str, "Method"] = {}


@dataclasses.dataclass(frozen=True)
class Method:
    name: str
    build: Callable[[Any], Any]
    init: Callable[..., Any]
    loss: Callable[..., Any]
    embed: Callable[..., Any]
    train_inputs: str
    embed_modalities: tuple = ("sketch", "photo")
    load_pretrained: Callable[..., Any] | None = None
    pretrained_source: Callable[[Any], str] = lambda model_config: ""


def register(method: Method) -> Method:
    if method.name in _METHODS:
        raise ValueError(f"method {method.name!r} is registered twice")
    _METHODS[method.name] = method
    return method


def get(name: str) -> Method:
    if name not in _METHODS:
        raise KeyError(f"unknown method {name!r}; registered methods: {sorted(_METHODS)}. "
                       "Set config.method to one of them.")
    return _METHODS[name]


def names() -> list[str]:
    return sorted(_METHODS)
