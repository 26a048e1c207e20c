"""Exact t-SNE (van der Maaten and Hinton, 2008) in numpy and JAX, for plots of a few thousand
points.

  y, info = tsne.embed(x, perplexity=30, seed=0)   # x (n, d) -> y (n, 2)

The usual recipe: per-point Gaussian bandwidths found by bisection so that every conditional
distribution P_i has the requested perplexity; symmetric P = (P_i|j + P_j|i) / 2n; a Student-t (one
degree of freedom) kernel in the map; gradient descent with momentum 0.5 then 0.8, per-coordinate
gains, early exaggeration 12 for the first 250 iterations, learning rate max(n / 12 / 4, 50) (the
'auto' rate of Belkina et al., 2019) and a PCA initialisation scaled to standard deviation 1e-4
(deterministic, keeps the global layout). O(n^2) memory and time: meant for n up to ~5,000.
The whole optimisation is one jitted lax.scan.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

EXAGGERATION = 12.0
EXAGGERATION_ITERS = 250
MIN_GAIN = 0.01


def squared_distances(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    sq = np.sum(x * x, axis=1)
    return np.maximum(sq[:, None] + sq[None, :] - 2.0 * x @ x.T, 0.0)


def conditional_probabilities(d2: np.ndarray, perplexity: float, iters: int = 200):
    """P_{j|i} with each row's perplexity exp(H(P_i)) equal to `perplexity` (bisection on the
    precision beta_i = 1 / 2 sigma_i^2, all rows at once). Returns (P, beta)."""
    n = d2.shape[0]
    if not 1.0 <= perplexity < n:
        raise ValueError(f"perplexity {perplexity} must be in [1, n) with n = {n} points")
    target = np.log(perplexity)
    off = ~np.eye(n, dtype=bool)
    # Shift each row so its nearest neighbour is at 0: exp never underflows to an all-zero row.
    d2 = np.where(off, d2 - np.where(off, d2, np.inf).min(axis=1, keepdims=True), 0.0)
    lo, hi = np.zeros(n), np.full(n, np.inf)
    beta = np.ones(n)
    for _ in range(iters):
        w = np.where(off, np.exp(-d2 * beta[:, None]), 0.0)
        z = w.sum(axis=1)
        p = w / z[:, None]
        entropy = np.log(z) + beta * np.sum(p * d2, axis=1)
        too_flat = entropy > target  # too wide a kernel: raise beta
        lo = np.where(too_flat, beta, lo)
        hi = np.where(too_flat, hi, beta)
        beta = np.where(np.isinf(hi), beta * 2.0, (lo + hi) / 2.0)
    return p, beta


def joint_probabilities(x: np.ndarray, perplexity: float) -> np.ndarray:
    p, _ = conditional_probabilities(squared_distances(x), perplexity)
    p = (p + p.T) / (2.0 * p.shape[0])
    return np.maximum(p, 1e-12)


def _q_and_weights(y):
    d2 = jnp.sum((y[:, None, :] - y[None, :, :]) ** 2, axis=-1)
    w = 1.0 / (1.0 + d2)
    w = w * (1.0 - jnp.eye(y.shape[0], dtype=y.dtype))
    return jnp.maximum(w / jnp.sum(w), 1e-12), w


def kl_divergence(p, y) -> jax.Array:
    """KL(P || Q) of the map y, the t-SNE objective."""
    q, _ = _q_and_weights(y)
    off = 1.0 - jnp.eye(y.shape[0], dtype=y.dtype)
    return jnp.sum(off * p * jnp.log(p / q))


def gradient(p, y):
    """dKL/dy_i = 4 sum_j (p_ij - q_ij) (y_i - y_j) / (1 + |y_i - y_j|^2)."""
    q, w = _q_and_weights(y)
    m = (p - q) * w
    return 4.0 * (jnp.sum(m, axis=1, keepdims=True) * y - m @ y)


@functools.partial(jax.jit, static_argnames=("iters",))
def _optimise(p, y0, learning_rate, iters: int):
    def step(carry, i):
        y, update, gains = carry
        exaggerate = i < EXAGGERATION_ITERS
        g = gradient(jnp.where(exaggerate, EXAGGERATION, 1.0) * p, y)
        momentum = jnp.where(exaggerate, 0.5, 0.8)
        same_sign = jnp.sign(g) == jnp.sign(update)
        gains = jnp.maximum(jnp.where(same_sign, gains * 0.8, gains + 0.2), MIN_GAIN)
        update = momentum * update - learning_rate * gains * g
        return (y + update, update, gains), None

    (y, _, _), _ = jax.lax.scan(step, (y0, jnp.zeros_like(y0), jnp.ones_like(y0)),
                                jnp.arange(iters))
    return y


def pca_init(x: np.ndarray, dims: int = 2) -> np.ndarray:
    x = np.asarray(x, np.float64) - np.mean(x, axis=0)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    y = u[:, :dims] * s[:dims]
    y = y * np.sign(y[np.argmax(np.abs(y), axis=0), range(dims)])  # fix the SVD's sign freedom
    return y / np.std(y[:, 0]) * 1e-4


def embed(x, *, perplexity: float = 30.0, iters: int = 1000, dims: int = 2, init: str = "pca",
          seed: int = 0):
    """x (n, d) -> (y (n, dims) float64, {'kl': final KL(P||Q), 'perplexity', 'iters'})."""
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[0] < 3:
        raise ValueError(f"t-SNE needs an (n, d) array with n >= 3, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("t-SNE input holds non-finite values")
    n = x.shape[0]
    perplexity = min(perplexity, (n - 1) / 3.0)  # too large a perplexity makes P uniform
    p = joint_probabilities(x, perplexity)
    if init == "pca":
        y0 = pca_init(x, dims)
    elif init == "random":
        y0 = np.random.default_rng(seed).normal(0.0, 1e-4, (n, dims))
    else:
        raise ValueError(f"init must be 'pca' or 'random', got {init!r}")
    learning_rate = max(n / EXAGGERATION / 4.0, 50.0)
    with jax.enable_x64(True):
        y = _optimise(jnp.asarray(p), jnp.asarray(y0), learning_rate, iters)
        kl = float(kl_divergence(jnp.asarray(p), y))
        y = np.asarray(y)
    return y, {"kl": kl, "perplexity": float(perplexity), "iters": iters}
