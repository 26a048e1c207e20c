"""Pure step functions: no jit, no mesh. compiled.py binds them and jits them once."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from sbirjax.state import TrainState


def train_step(state: TrainState, batch, base_rng, *, method, module, tx, config):
    """One optimisation step. Randomness is folded from the step number, so a resumed run draws
    exactly what an uninterrupted one would have drawn."""
    rng = jax.random.fold_in(base_rng, state.step)

    def loss_fn(params):
        return method.loss(module, params, batch, rng, config)

    (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = dict(metrics, loss=loss, grad_norm=optax.global_norm(grads))
    return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics


def embed_step(params, images, *, method, module, modality):
    return method.embed(module, params, images, modality).astype(jnp.float32)
