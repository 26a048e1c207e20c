"""Small array operations the networks and the losses share."""
import jax.numpy as jnp


def l2_normalize(x, axis: int = -1, eps: float = 1e-12):
    """x / ||x|| along `axis`; a norm below eps counts as eps (a zero vector stays finite)."""
    return x / jnp.sqrt(jnp.maximum(jnp.sum(x * x, axis=axis, keepdims=True), eps * eps))
