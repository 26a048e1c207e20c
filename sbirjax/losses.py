"""Pure jnp losses shared by the methods."""
from __future__ import annotations

import jax.numpy as jnp


def l2_normalize(x, axis: int = -1, eps: float = 1e-12):
    return x / jnp.sqrt(jnp.maximum(jnp.sum(x * x, axis=axis, keepdims=True), eps * eps))


def euclidean(a, b, eps: float = 1e-12):
    """Row-wise Euclidean distance with a safe gradient at zero distance."""
    return jnp.sqrt(jnp.maximum(jnp.sum((a - b) ** 2, axis=-1), eps))


def triplet_margin(anchor, positive, negative, margin: float = 0.2):
    """Mean of max(0, d(a, p) - d(a, n) + margin), Euclidean distance (as torch's TripletMarginLoss)."""
    return jnp.mean(jnp.maximum(euclidean(anchor, positive) - euclidean(anchor, negative) + margin, 0.0))
