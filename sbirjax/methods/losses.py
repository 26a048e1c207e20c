"""Pure jnp losses shared by the methods."""
from __future__ import annotations

import jax.numpy as jnp

from sbirjax.nets import ops


l2_normalize = ops.l2_normalize  # one implementation, shared with the networks


def euclidean(a, b, eps: float = 1e-12):
    """Row-wise Euclidean distance with a safe gradient at zero distance."""
    return jnp.sqrt(jnp.maximum(jnp.sum((a - b) ** 2, axis=-1), eps))


def pairwise_distance(a, b, eps: float = 0.0):
    """Row-wise ||a - b + eps||. eps > 0 is torch's F.pairwise_distance (TripletMarginLoss uses it
    with eps = 1e-6); eps = 0 is the exact distance, `euclidean`."""
    if not eps:
        return euclidean(a, b)
    return euclidean(a - b + eps, 0.0)


def triplet_margin(anchor, positive, negative, margin: float = 0.2, eps: float = 0.0):
    """Mean of max(0, d(a, p) - d(a, n) + margin), d = `pairwise_distance` (torch's
    TripletMarginLoss with eps = 1e-6)."""
    d_pos = pairwise_distance(anchor, positive, eps)
    d_neg = pairwise_distance(anchor, negative, eps)
    return jnp.mean(jnp.maximum(d_pos - d_neg + margin, 0.0))
