"""Optimiser from config: schedule, parameter groups by regex, frozen parameters.

config.optim:
  name: 'adam' | 'adamw' | 'adamw_hf' | 'sgd'
        adam, adamw: optax's (eps added to the bias-corrected sqrt(v); adamw decays the weights
        before the step, scaled by the scheduled lr)
        adamw_hf: the AdamW of transformers.optimization (4.x), which the official MA-SBIR code
        trains with: eps added to sqrt(v) before the bias correction, and the decay applied after
        the step, to the updated weights (adamw_hf below)
  lr, weight_decay, b1, b2, eps, grad_clip (0 = off)
  warmup_steps (int) or warmup_fraction (of total steps), schedule: 'constant' | 'cosine'
  groups: list of (regex, lr_multiplier); multiplier 0 freezes the matching parameters.
          First match wins; unmatched parameters get multiplier 1. Patterns are matched with
          re.search against the '/'-joined parameter path, e.g. 'encoder/Conv_0/kernel'.

A pretrained backbone (config.model.backbone other than 'scratch'; its parameters live under
'backbone/') adds two groups around these: its BatchNorm statistics are always frozen (first),
and whatever no configured group caught trains at model.backbone_lr_mult (last).
"""
from __future__ import annotations

import math
import re
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import traverse_util


class AdamWHFState(NamedTuple):
    count: jax.Array  # steps taken
    mu: optax.Updates
    nu: optax.Updates


def adamw_hf(learning_rate, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-6,
             weight_decay: float = 0.0, correct_bias: bool = True) -> optax.GradientTransformation:
    """transformers.optimization.AdamW (4.x) as an optax transformation. At step t (from 1), with
    lr the schedule at t - 1:
        m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
        p' = p - lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)
        p'' = p' - lr * weight_decay * p'
    eps sits inside the bias correction, so it acts as eps / sqrt(1 - b2^t) in optax's terms,
    and the decay scales the already updated weights. Returns the update p'' - p."""
    schedule = learning_rate if callable(learning_rate) else (lambda _: learning_rate)
    # 1 - b^t as -expm1(t log b): accurate in float32, where 1 - 0.999^t loses ~4 digits at t = 1
    log_b1, log_b2 = math.log(b1), math.log(b2)

    def init_fn(params):
        return AdamWHFState(count=jnp.zeros((), jnp.int32), mu=jax.tree.map(jnp.zeros_like, params),
                            nu=jax.tree.map(jnp.zeros_like, params))

    def update_fn(grads, state, params=None):
        lr = schedule(state.count)
        count = optax.safe_int32_increment(state.count)
        mu = jax.tree.map(lambda m, g: b1 * m + (1.0 - b1) * g, state.mu, grads)
        nu = jax.tree.map(lambda v, g: b2 * v + (1.0 - b2) * g * g, state.nu, grads)
        step_size = lr
        if correct_bias:
            t = count.astype(jnp.float32)
            step_size = lr * jnp.sqrt(-jnp.expm1(t * log_b2)) / -jnp.expm1(t * log_b1)
        adam = jax.tree.map(lambda m, v: -step_size * m / (jnp.sqrt(v) + eps), mu, nu)
        if weight_decay:
            if params is None:
                raise ValueError("adamw_hf with weight decay needs the parameters")
            adam = jax.tree.map(lambda a, p: a - lr * weight_decay * (p + a), adam, params)
        return adam, AdamWHFState(count=count, mu=mu, nu=nu)

    return optax.GradientTransformation(init_fn, update_fn)


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
    groups = list(optim.groups)
    if model is None or model.backbone == "scratch":
        return groups
    if params is not None and not any(re.search(BACKBONE, k) for k in
                                      traverse_util.flatten_dict(params, sep="/")):
        raise ValueError(f"config.model.backbone={model.backbone!r}, but the model has no "
                         "'backbone/' parameters: this method does not take a pretrained "
                         "backbone (Triplet-SN does); leave model.backbone='scratch'.")
    # FT layers inside the trunk (StyleMeUp) are new, not pretrained: the base learning rate.
    return [(BACKBONE + r".*/(mean|var)$", 0.0), *groups,
            (BACKBONE + r"(?!(?:.*/)?ft/)", float(model.backbone_lr_mult))]


NAMES = ("adam", "adamw", "adamw_hf", "sgd")
SCHEDULES = ("constant", "cosine")


def make_schedule(optim, total_steps: int):
    # A fraction is floored, as int(t_total * warmup_ratio) in the official MA-SBIR code.
    warmup = int(optim.warmup_steps or optim.warmup_fraction * total_steps)
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
        return optax.adam(schedule, b1=optim.b1, b2=optim.b2, eps=optim.eps)
    if optim.name == "adamw":
        return optax.adamw(schedule, b1=optim.b1, b2=optim.b2, eps=optim.eps,
                           weight_decay=optim.weight_decay)
    if optim.name == "adamw_hf":
        return adamw_hf(schedule, b1=optim.b1, b2=optim.b2, eps=optim.eps,
                        weight_decay=optim.weight_decay)
    if optim.name == "sgd":
        return optax.sgd(schedule)
    raise ValueError(f"config.optim.name={optim.name!r}: use 'adam', 'adamw', 'adamw_hf' or 'sgd'.")


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
    if optim.grad_clip:
        tx = optax.chain(optax.clip_by_global_norm(optim.grad_clip), tx)
    return tx
