"""nets/ops.py: the gradient barrier is the identity, forward and backward, and survives XLA."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sbirjax.nets import ops


def _net(x, w, barrier):
    for _ in range(3):
        x = ops.gradient_barrier(x) if barrier else x
        x = x + jnp.tanh(x @ w)
    return jnp.sum(x * x)


@pytest.mark.parametrize("first", [0.5, np.nan, np.inf])
def test_gradient_barrier_is_the_identity(first):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(4, 8)), jnp.float32).at[0, 0].set(first)
    w = jnp.asarray(rng.normal(size=(8, 8)) * 0.1, jnp.float32)
    grad = jax.grad(_net, argnums=(0, 1))
    np.testing.assert_array_equal(ops.gradient_barrier(x), x)
    for a, b in zip(grad(x, w, True), grad(x, w, False)):
        np.testing.assert_array_equal(a, b)  # NaN where the plain gradient has NaN


def test_gradient_barrier_survives_compilation():
    x, w = jnp.ones((4, 8)), jnp.ones((8, 8)) * 0.1
    hlo = jax.jit(jax.grad(_net, argnums=(0, 1)), static_argnums=2).lower(x, w, True).compile()
    assert hlo.as_text().count(" conditional(") == 3  # one fusion boundary per barrier
