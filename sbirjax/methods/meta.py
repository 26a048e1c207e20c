"""Functional meta-learning: inner SGD steps differentiated through, vmapped over tasks.

    adapted = params - lr * grad(inner_loss)(params)          (K times, on `mask`ed leaves only)
    meta_loss = mean over tasks of outer_loss(adapted)

Differentiating `meta_loss` is second-order MAML: the gradient flows through the inner gradient,
so parameters that appear only in the inner loss (a regulariser, feature-wise transformation
layers) still receive a meta-gradient. `first_order=True` stops the gradient at the inner gradient
(FOMAML): parameters that appear only in the inner loss then get exactly zero.

`model_first_order=True` is the split between the two: the gradient through the inner gradient is
stopped for the ADAPTED leaves only (the model), so they get the first-order meta-gradient while
the leaves that only shape the inner loss (regulariser, FT layers) keep their exact second-order
one (for one inner step; for K steps, the part of it that flows through later steps' model
dependence is dropped). It tests one explanation of the collapse in docs/stylemeup_synthetic.md
(StyleMeUp on the first synthetic world): that second order lets the model learn to be adaptable
instead of good. Plain first order collapses the same way there, so that is not the whole cause.

`unadapted_weight=w > 0` adds w * outer_loss(params) per task, the outer loss of the model as it
is, before any inner step (the meta-train term of MLDG, Li et al. 2018, here on the outer data):
the model that test queries use must then solve each task by itself, not only after adapting.
0 follows the StyleMeUp paper.

`update='tseng'` is the learning-to-learn update of Tseng et al. (ICLR 2020), whose
feature-wise transformation layers StyleMeUp borrows: the model (the `mask`ed leaves) takes the
gradient of its plain inner (meta-train) loss, and only the other leaves (FT layers, regulariser)
take the meta-gradient of the outer loss through the inner step. The objective is
    inner_loss(params | others constant) + outer_loss(adapted(params | model constant)),
so each group sees exactly one of the two terms. 'maml' (default) sends the meta-gradient to all.

`hessian` says how second order differentiates an inner step, not what: through one step the
meta-gradient is ct - H (lr * ct), H the inner loss's Hessian and ct the gradient reaching the
adapted weights. 'forward' (the default) gives each inner step a VJP that computes H v as the
JVP of the inner gradient (forward-over-reverse), from the linearisation it keeps of the inner
pass (or, with remat, by running that pass again). 'reverse' back-propagates through the
inner backward pass (reverse-over-reverse, which needs H's transpose; the two agree where the
Hessian is symmetric, as for any loss without a custom derivative rule that is not a true
derivative). On CPU 'forward' took 0.68x the time of 'reverse' at 256 px, with less memory
(docs/benchmarks.md).
"""
from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


UPDATES = ("maml", "tseng")
HESSIANS = ("reverse", "forward")


def _constant_where(params, mask, value: bool):
    """params with the leaves whose mask equals `value` cut from the gradient."""
    return jax.tree.map(lambda p, m: jax.lax.stop_gradient(p) if m == value else p, params, mask)


def sgd_adapt(params, inner_loss: Callable, *, lr: float, steps: int, mask, first_order: bool,
              model_first_order: bool = False, lr_scale=None):
    """K plain SGD steps on `inner_loss(params, step_index) -> (loss, aux)`, updating only leaves
    where mask is True, each at lr times its `lr_scale` leaf (a float; None = 1 everywhere).
    Returns (adapted params, aux of the last inner step or None)."""
    if lr_scale is None:
        lr_scale = jax.tree.map(lambda _: 1.0, mask)
    aux = None
    for k in range(steps):
        at = params
        if model_first_order:  # the inner gradient sees the model as a constant, the rest not
            at = jax.tree.map(lambda p, m: jax.lax.stop_gradient(p) if m else p, params, mask)
        grads, aux = jax.grad(inner_loss, has_aux=True)(at, k)
        if first_order:
            grads = jax.lax.stop_gradient(grads)
        params = jax.tree.map(lambda p, g, m, s: p - (lr * s) * g if m and s else p,
                              params, grads, mask, lr_scale)
    return params, aux


def hvp_sgd_step(inner_loss: Callable, *, lr: float, mask, lr_scale=None,
                 model_first_order: bool = False, recompute: bool = False):
    """One `sgd_adapt` step as (params, task, key) -> (adapted params, aux), for
    inner_loss(params, task, key) -> (loss, aux), whose VJP takes the Hessian-vector product
    forward-over-reverse (module docstring). The same value and gradient as sgd_adapt with
    first_order=False and the same model_first_order, provided the inner loss's Hessian is
    symmetric (no custom derivative rule inside it that is not a true derivative, such as a
    gradient reversal or a straight-through estimator); aux receives no gradient (in sgd_adapt
    it does, which no caller uses); task and key none.

    The inner gradient is linearised as it is computed and the linearisation kept for the
    VJP; recompute=True keeps only the inputs and runs the inner pass again there (a JVP),
    for less memory and one more inner forward and backward pass."""
    if lr_scale is None:
        lr_scale = jax.tree.map(lambda _: 1.0, mask)
    rates = jax.tree.leaves(jax.tree.map(lambda m, s: lr * s if m and s else 0.0, mask, lr_scale))
    models = jax.tree.leaves(mask)
    adapted = [i for i, r in enumerate(rates) if r]

    def gradient(params, task, key):
        return jax.grad(inner_loss, has_aux=True)(params, task, key)

    # The custom VJP returns the adapted leaves only, each made to depend on this task's inputs
    # (plus an exact 0): under vmap an output that does not depend on them (a leaf passed
    # through, or one whose inner gradient is the same for every task) would be un-batched, and
    # JAX would sum its cotangent over the tasks before this rule sees it, so each task would
    # pass on every task's.
    def update(params, grads, task, key):
        zero = _zero_depending_on(task, key)
        p, g = jax.tree.leaves(params), jax.tree.leaves(grads)
        return [p[i] - rates[i] * g[i] + zero for i in adapted]

    def step(params, task, key):
        grads, aux = gradient(params, task, key)
        return update(params, grads, task, key), aux

    def fwd(params, task, key):
        if recompute:
            return step(params, task, key), (params, task, key)
        grads, hvp, aux = jax.linearize(lambda p: gradient(p, task, key), params, has_aux=True)
        return (update(params, grads, task, key), aux), (params, hvp)

    def bwd(res, cotangent):
        ct, _ = cotangent  # aux is an output only
        leaves, treedef = jax.tree.flatten(res[0])
        v = [jnp.zeros_like(a) for a in leaves]
        for j, i in enumerate(adapted):
            v[i] = rates[i] * ct[j]
        v = treedef.unflatten(v)
        if recompute:
            params, task, key = res
            _, hv = jax.jvp(lambda p: gradient(p, task, key)[0], (params,), (v,))
        else:
            hv = res[1](v)
        out = [jnp.zeros_like(h) if model_first_order and m else -h  # sgd_adapt's split
               for h, m in zip(jax.tree.leaves(hv), models)]
        for j, i in enumerate(adapted):
            out[i] = out[i] + ct[j]
        return treedef.unflatten(out), None, None

    f = jax.custom_vjp(step)
    f.defvjp(fwd, bwd)

    def apply(params, task, key):
        new, aux = f(params, task, key)
        leaves, treedef = jax.tree.flatten(params)
        for j, i in enumerate(adapted):
            leaves[i] = new[j]
        return treedef.unflatten(leaves), aux

    return apply


def _zero_depending_on(*trees):
    """An exact 0 (weakly typed) computed from the first element of every leaf of `trees`
    (PRNG keys included), so it is batched wherever any of them is."""
    zero = 0.0
    for a in jax.tree.leaves(trees):
        if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            a = jax.random.key_data(a)
        first = jnp.ravel(a)[0]
        zero = zero + jnp.where(first == first, 0.0, 0.0)  # 0 for NaN and inf too
    return zero


def maml_loss(params, tasks, rng, *, inner_loss: Callable, outer_loss: Callable, lr: float,
              steps: int, mask, first_order: bool, task_chunk: int = 0, remat: bool = False,
              unroll_chunks: bool = False, model_first_order: bool = False,
              unadapted_weight: float = 0.0, update: str = "maml", lr_scale=None,
              hessian: str = "forward"):
    """Mean outer loss over the leading (task) axis of `tasks`, each task adapted on its own.

    inner_loss(params, task, rng) and outer_loss(params, task, rng) return (loss, metrics dict).
    Returns (loss, metrics averaged over tasks; inner metrics are prefixed 'inner/').

    task_chunk: tasks processed together. 0 vmaps all of them; k runs chunks of k in sequence,
    each chunk's gradient taken inside the loop and summed (`accumulated`), so only one chunk's
    activations are ever live, as when the official code calls backward() task by task.
    unroll_chunks: those chunks as straight-line code, not a loop (`accumulated`).
    After the inner step every task has its own weights, so vmapped convolutions become
    batched-kernel convolutions (unless written as matmuls: nets/patchconv.py).
    lr_scale: per-leaf multipliers of the inner learning rate (sgd_adapt); None = 1 everywhere.
    hessian: 'reverse' or 'forward', how second order differentiates the inner step (module
    docstring); first order ignores it.
    remat: recompute each task's forward pass in the backward pass instead of storing it. With
    all tasks vmapped, the outer gradient otherwise keeps every task's activations alive at once
    (StyleMeUp at 256 px: ~2.6 GB a task); in chunks it saves nothing more and costs about one
    more forward pass. With hessian='forward' it also recomputes each inner step's pass for its
    Hessian-vector product instead of keeping its linearisation.
    """
    if update not in UPDATES:
        raise ValueError(f"config.meta.update_rule={update!r}: use one of {UPDATES}")
    if hessian not in HESSIANS:
        raise ValueError(f"config.meta.hessian={hessian!r}: use one of {HESSIANS}")
    forward = hessian == "forward" and not first_order
    if forward:
        step = hvp_sgd_step(inner_loss, lr=lr, mask=mask, lr_scale=lr_scale,
                            model_first_order=model_first_order, recompute=remat)
    n = jax.tree.leaves(tasks)[0].shape[0]
    tseng = update == "tseng"

    def one(params, task, key):
        k_in, k_out = jax.random.split(key)
        start = _constant_where(params, mask, True) if tseng else params
        # Each inner step draws its own randomness (FT noise, dropout, z_var samples).
        if forward:
            adapted, inner_aux = start, None
            for k in range(steps):
                adapted, inner_aux = step(adapted, task, jax.random.fold_in(k_in, k))
        else:
            adapted, inner_aux = sgd_adapt(
                start, lambda p, k: inner_loss(p, task, jax.random.fold_in(k_in, k)), lr=lr,
                steps=steps, mask=mask, first_order=first_order,
                model_first_order=model_first_order, lr_scale=lr_scale)
        loss, aux = outer_loss(adapted, task, k_out)
        if tseng:  # the model's own gradient: its inner loss, with the first inner step's draws
            plain, _ = inner_loss(_constant_where(params, mask, False), task,
                                  jax.random.fold_in(k_in, 0))
            aux = dict(aux, outer_loss=loss, plain_loss=plain)
            loss = loss + plain
        if unadapted_weight:  # its own key, so w = 0 leaves every other draw as it was
            base, _ = outer_loss(params, task, jax.random.fold_in(k_out, 1))
            loss = loss + unadapted_weight * base
            aux = dict(aux, unadapted_loss=base)
        if inner_aux is not None:
            aux = dict(aux, **{f"inner/{k}": v for k, v in inner_aux.items()})
        return loss, aux

    if remat:
        one = jax.checkpoint(one)
    keys = jax.random.split(rng, n)
    if task_chunk and task_chunk < n:
        return accumulated(one, task_chunk, unroll_chunks)(params, tasks, keys)
    losses, aux = jax.vmap(one, in_axes=(None, 0, 0))(params, tasks, keys)
    return jnp.mean(losses), jax.tree.map(jnp.mean, aux)


def accumulated(one: Callable, chunk: int, unroll: bool = False):
    """(params, tasks, keys) -> (mean loss, mean aux) over the tasks of one(params, task, key),
    run in chunks of `chunk` in sequence. Its gradient is the mean of the chunks' gradients,
    each taken inside the loop and added to a running sum as the forward pass goes, so no
    chunk's activations outlive its iteration (differentiating a `lax.map` instead keeps every
    chunk's). Reverse mode only (a custom VJP); tasks and keys get no gradient.

    unroll: the chunks as straight-line code instead of a `lax.scan` (and a chunk of one task
    without the vmap). XLA:CPU runs a convolution inside a loop body far slower than the same
    convolution outside one (forward and backward about 20x), so lax convolutions need this
    form; XLA may then overlap chunks, which costs memory and compile time (docs/benchmarks.md).
    """

    def sums(params, tasks, keys):
        if unroll and keys.shape[0] == 1:
            return one(params, jax.tree.map(lambda a: a[0], tasks), keys[0])
        losses, aux = jax.vmap(one, in_axes=(None, 0, 0))(params, tasks, keys)
        return jnp.sum(losses), jax.tree.map(lambda a: jnp.sum(a, axis=0), aux)

    def add(a, b):
        return jax.tree.map(jnp.add, a, b)

    def run(params, tasks, keys, with_grad: bool):
        def chunk_sums(xs):  # (loss sum, aux sums, gradient of the loss sum or None)
            if not with_grad:
                return (*sums(params, *xs), None)
            (loss, aux), grad = jax.value_and_grad(sums, has_aux=True)(params, *xs)
            return loss, aux, grad

        def body(acc, xs):
            loss, aux, grad = chunk_sums(xs)
            return (add(acc, grad) if with_grad else acc), (loss, aux)

        n = keys.shape[0]
        full = n - n % chunk
        split = lambda a: a[:full].reshape(full // chunk, chunk, *a.shape[1:])
        init = jax.tree.map(jnp.zeros_like, params) if with_grad else None
        xs = (jax.tree.map(split, tasks), split(keys))
        if unroll:
            acc, outs = init, []
            for i in range(full // chunk):
                acc, out = body(acc, jax.tree.map(lambda a: a[i], xs))
                outs.append(out)
            loss, aux = jax.tree.map(lambda *a: jnp.stack(a), *outs)
        else:
            acc, (loss, aux) = jax.lax.scan(body, init, xs)
        loss, aux = jnp.sum(loss), jax.tree.map(lambda a: jnp.sum(a, axis=0), aux)
        if full < n:  # the remainder, as one smaller chunk
            r_loss, r_aux, r_grad = chunk_sums(jax.tree.map(lambda a: a[full:], (tasks, keys)))
            loss, aux = loss + r_loss, add(aux, r_aux)
            acc = add(acc, r_grad) if with_grad else acc
        mean = lambda t: jax.tree.map(lambda a: a / n, t)
        return (loss / n, mean(aux)), (mean(acc) if with_grad else None)

    @jax.custom_vjp
    def f(params, tasks, keys):
        return run(params, tasks, keys, with_grad=False)[0]

    def fwd(params, tasks, keys):
        return run(params, tasks, keys, with_grad=True)

    def bwd(grad, cotangent):
        ct_loss, _ = cotangent  # the metrics are outputs only
        return jax.tree.map(lambda g: (ct_loss * g).astype(g.dtype), grad), None, None

    f.defvjp(fwd, bwd)
    return f
