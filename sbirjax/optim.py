"""Optimiser from config: schedule, parameter groups by regex, frozen parameters.

config.optim:
  name: 'adam' | 'adamw' | 'sgd'
  lr, weight_decay, b1, b2, grad_clip (0 = off)
  warmup_steps (int) or warmup_fraction (of total steps), schedule: 'constant' | 'cosine'
  groups: list of (regex, lr_multiplier); multiplier 0 freezes the matching parameters.
          First match wins; unmatched parameters get multiplier 1. Patterns are matched with
          re.search against the '/'-joined parameter path, e.g. 'encoder/Conv_0/kernel'.

A pretrained backbone (config.model.backbone other than 'scratch'; its parameters live under
'backbone/') adds two groups around these: its BatchNorm statistics are always frozen (first),
and whatever no configured group caught trains at model.backbone_lr_mult (last).
"""
from __future__ import annotations

import re

import optax
from flax import traverse_util


def param_path_labels(params, groups) -> dict:
    """Label every leaf with the index (as str) of the first matching group, or 'default'."""
    flat = traverse_util.flatten_dict(params, sep="/")
    compiled = [(re.compile(pattern), str(i)) for i, (pattern, _) in enumerate(groups)]

    def label(path):
        for rx, name in compiled:
            if rx.search(path):
                return name
        return "default"

    return traverse_util.unflatten_dict({k: label(k) for k in flat}, sep="/")


BACKBONE = r"(^|/)backbone/"


def param_groups(optim, model=None, params=None) -> list:
    """config.optim.groups plus the pretrained backbone's groups when `model` names one."""
    groups = list(optim.get("groups", ()))
    if model is None or model.get("backbone", "scratch") == "scratch":
        return groups
    if params is not None and not any(re.search(BACKBONE, k) for k in
                                      traverse_util.flatten_dict(params, sep="/")):
        raise ValueError(f"config.model.backbone={model.backbone!r}, but the model has no "
                         "'backbone/' parameters: this method does not take a pretrained "
                         "backbone (Triplet-SN does); leave model.backbone='scratch'.")
    return [(BACKBONE + r".*/(mean|var)$", 0.0), *groups,
            (BACKBONE, float(model.get("backbone_lr_mult", 1.0)))]


def make_schedule(optim, total_steps: int):
    warmup = int(optim.get("warmup_steps", 0) or round(optim.get("warmup_fraction", 0.0) * total_steps))
    warmup = min(warmup, max(total_steps - 1, 0))
    if optim.schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(
            0.0, optim.lr, warmup_steps=max(warmup, 1), decay_steps=max(total_steps, warmup + 1))
    if optim.schedule != "constant":
        raise ValueError(f"config.optim.schedule={optim.schedule!r}: use 'constant' or 'cosine'.")
    if warmup == 0:
        return optax.constant_schedule(optim.lr)
    return optax.join_schedules(
        [optax.linear_schedule(0.0, optim.lr, warmup), optax.constant_schedule(optim.lr)], [warmup])


def _base(optim, schedule):
    if optim.name == "adam":
        return optax.adam(schedule, b1=optim.b1, b2=optim.b2)
    if optim.name == "adamw":
        return optax.adamw(schedule, b1=optim.b1, b2=optim.b2, weight_decay=optim.weight_decay)
    if optim.name == "sgd":
        return optax.sgd(schedule)
    raise ValueError(f"config.optim.name={optim.name!r}: use 'adam', 'adamw' or 'sgd'.")


def make_optimizer(optim, total_steps: int, params, model=None) -> optax.GradientTransformation:
    """Build the optax transformation; `params` (abstract is fine) fixes the group labels;
    `model` (config.model) adds a pretrained backbone's groups (param_groups)."""
    schedule = make_schedule(optim, total_steps)
    groups = param_groups(optim, model, params)
    transforms = {"default": _base(optim, schedule)}
    for i, (_, mult) in enumerate(groups):
        if mult == 0:
            transforms[str(i)] = optax.set_to_zero()
        else:
            transforms[str(i)] = _base(optim, lambda step, m=mult: m * schedule(step))
    tx = optax.multi_transform(transforms, param_path_labels(params, groups))
    if optim.get("grad_clip", 0):
        tx = optax.chain(optax.clip_by_global_norm(optim.grad_clip), tx)
    return tx
