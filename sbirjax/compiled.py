"""A run's jitted, sharded functions and the state it starts from: shared by the training loop
(train.py), the tools on finished runs (run_state.py), the benchmarks and the tests."""
from __future__ import annotations

import dataclasses
import functools

import jax

from sbirjax import optim, sharding, state as state_lib, steps

# Number of times each jitted function was traced in this process (a guard against recompiling).
TRACE_COUNTS: dict[str, int] = {}


def _counted(name, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        TRACE_COUNTS[name] = TRACE_COUNTS.get(name, 0) + 1
        return fn(*args, **kwargs)
    return wrapper


@dataclasses.dataclass(frozen=True)
class CompiledFns:
    abstract_state: object   # TrainState of jax.ShapeDtypeStruct: the restore target
    state_shardings: object
    init: object             # rng -> sharded TrainState
    step: object             # (state, global batch, rng) -> (state, metrics); state donated
    embed: dict              # modality -> (params, images) -> embeddings


def compile_fns(config, method, module, mesh, total_steps: int, init_rng) -> CompiledFns:
    """The jitted, sharded functions of a run: shared by the loop, the benchmarks and the tests."""
    image_shape = (config.data.image.size, config.data.image.size, 3)
    abstract_params = jax.eval_shape(lambda r: method.init(module, r, image_shape), init_rng)
    tx = optim.make_optimizer(config.optim, total_steps, abstract_params, config.model)

    def init_state(rng):
        return state_lib.create(method.init(module, rng, image_shape), tx)

    abstract_state = jax.eval_shape(init_state, init_rng)
    state_sh = sharding.state_shardings(abstract_state, mesh)
    repl, batch_sh = sharding.replicated(mesh), sharding.batch_sharding(mesh)
    step = jax.jit(
        _counted("train_step", functools.partial(
            steps.train_step, method=method, module=module, tx=tx, config=config)),
        in_shardings=(state_sh, batch_sh, repl), out_shardings=(state_sh, repl), donate_argnums=0)
    embed = {m: jax.jit(_counted(f"embed_{m}", functools.partial(
        steps.embed_step, method=method, module=module, modality=m)),
        in_shardings=(state_sh.params, batch_sh), out_shardings=batch_sh)
        for m in method.embed_modalities}
    return CompiledFns(abstract_state, state_sh, jax.jit(init_state, out_shardings=state_sh),
                       step, embed)


def initial_state(config, method, fns: CompiledFns, init_rng, log=None):
    """The sharded TrainState a run starts from: `fns.init(init_rng)`, then the method's pretrained
    weights (loaded on the host, put back with the state's shardings) when it names a source."""
    state = fns.init(init_rng)
    source = method.pretrained_source(config.model)
    if method.load_pretrained is not None and source:
        if log is not None:
            log(f"loading pretrained weights: {source}")
        params = method.load_pretrained(jax.device_get(state.params), config.model)
        state = state.replace(params=jax.device_put(params, fns.state_shardings.params))
    return state
