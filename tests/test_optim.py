"""The optimiser options: transformers-style AdamW against its formula, the warmup length, and every
config's optimiser builds. (tests/test_masbir_parity.py checks adamw_hf against the official
code.)"""
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sbirjax import defaults, optim
from tests import helpers


def hf_adamw_reference(p, grads, lrs, b1=0.9, b2=0.999, eps=1e-6, wd=0.1):
    """transformers.optimization.AdamW.step, written out in float64."""
    m, v = np.zeros_like(p), np.zeros_like(p)
    for t, (g, lr) in enumerate(zip(grads, lrs), start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        step_size = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        p = p - step_size * m / (np.sqrt(v) + eps)
        p = p - lr * wd * p  # after the step, on the updated weights
    return p


def test_adamw_hf_follows_the_transformers_formula():
    rng = np.random.default_rng(0)
    p0 = rng.normal(size=(3, 5))
    # small gradients, where eps before or after the bias correction matters most
    grads = [1e-6 * rng.normal(size=p0.shape) for _ in range(5)]
    schedule = optax.linear_schedule(0.0, 5e-3, 2)
    tx = optim.adamw_hf(schedule, eps=1e-6, weight_decay=0.1)
    p, state = jnp.asarray(p0, jnp.float32), tx.init(jnp.asarray(p0, jnp.float32))
    for g in grads:
        update, state = tx.update(jnp.asarray(g, jnp.float32), state, p)
        p = optax.apply_updates(p, update)
    want = hf_adamw_reference(p0, grads, [float(schedule(t)) for t in range(5)])
    np.testing.assert_allclose(p, want, rtol=2e-6)
    moved = want - p0
    np.testing.assert_allclose(p - p0.astype(np.float32), moved, rtol=1e-3, atol=1e-6)
    # optax's AdamW (eps after the bias correction, decay before the step) lands elsewhere
    tx = optax.adamw(schedule, eps=1e-6, weight_decay=0.1)
    q, state = jnp.asarray(p0, jnp.float32), tx.init(jnp.asarray(p0, jnp.float32))
    for g in grads:
        update, state = tx.update(jnp.asarray(g, jnp.float32), state, q)
        q = optax.apply_updates(q, update)
    assert np.abs((q - p0) - moved).max() > 0.1 * np.abs(moved).max()


def test_adamw_hf_without_bias_correction_or_decay():
    tx = optim.adamw_hf(1e-2, eps=1e-6, correct_bias=False)
    g = jnp.array([0.5, -2.0])
    update, _ = tx.update(g, tx.init(g), jnp.zeros(2))
    # m = 0.1 g, sqrt(v) = sqrt(0.001) |g|
    np.testing.assert_allclose(update, -1e-2 * 0.1 * g / (np.sqrt(1e-3) * jnp.abs(g) + 1e-6),
                               rtol=1e-6)


def optim_config(**kw):
    """config.optim as the base config declares it, with `kw` set."""
    c = defaults.base().optim
    c.update({**dict(name="adamw_hf", lr=1.0, eps=1e-6), **kw})
    return c


def test_warmup_fraction_is_floored_as_the_official_code():
    schedule = optim.make_schedule(optim_config(warmup_fraction=0.05), 30)  # int(1.5) = 1
    assert [float(schedule(t)) for t in range(3)] == [0.0, 1.0, 1.0]
    schedule = optim.make_schedule(optim_config(warmup_fraction=0.05), 40)  # 2
    assert [float(schedule(t)) for t in range(3)] == [0.0, 0.5, 1.0]


@pytest.mark.parametrize("path", helpers.all_config_files(), ids=os.path.basename)
def test_every_config_builds_its_optimiser(path):
    c = helpers.load_config(path)
    assert "eps" in c.optim
    params = {"w": jnp.ones(3)}
    tx = optim.make_optimizer(c.optim, 10, params)
    update, _ = tx.update(params, tx.init(params), params)
    assert all(np.isfinite(np.asarray(u)).all() for u in jax.tree.leaves(update))


def test_unknown_optimiser_is_named():
    with pytest.raises(ValueError, match="adamw_hf"):
        optim.make_optimizer(optim_config(name="lamb"), 10, {"w": jnp.ones(3)})
