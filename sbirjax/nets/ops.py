"""Small array operations the networks and the losses share."""
import jax
import jax.numpy as jnp


def l2_normalize(x, axis: int = -1, eps: float = 1e-12):
    """x / ||x|| along `axis`; a norm below eps counts as eps (a zero vector stays finite)."""
    return x / jnp.sqrt(jnp.maximum(jnp.sum(x * x, axis=axis, keepdims=True), eps * eps))


@jax.custom_vjp
def gradient_barrier(x):
    """The identity, forward and backward; on CPU, in the backward pass the incoming gradient is
    materialised here, so XLA cannot fuse across this point (on GPU and TPU it is a no-op: not
    measured there, and a conditional can cost a device-host synchronisation).

    Why: in a deep residual network the gradient of the residual stream is a sum over every later
    block. XLA:CPU fuses that chain of additions into each consumer and recomputes it there, which
    grows with depth: in the MA-SBIR step (12-layer ViT-B/32) such fusions took half the step.
    How: XLA:CPU drops lax.optimization_barrier before fusing, but not a conditional. The gradient
    goes through a `lax.cond` whose two branches are both the identity (the second a
    reduce_precision to the gradient's own precision, so that XLA does not merge them); the
    predicate is data-dependent, so it cannot be folded."""
    return x


def _barrier_fwd(x):
    return x, None


def _same_precision(g):
    info = jnp.finfo(g.dtype)
    return jax.lax.reduce_precision(g, exponent_bits=info.nexp, mantissa_bits=info.nmant)


def _barrier_bwd(_, g):
    # Only XLA:CPU needs it, and only floats can go through it; elsewhere the gradient passes.
    if jax.default_backend() != "cpu" or not jnp.issubdtype(g.dtype, jnp.floating):
        return (g,)
    finite = jnp.isfinite(g.reshape(-1)[0])
    return (jax.lax.cond(finite, lambda t: t, _same_precision, g),)


gradient_barrier.defvjp(_barrier_fwd, _barrier_bwd)
