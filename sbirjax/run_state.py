"""The parameters of a finished (or running) run, for tools that inspect it after training.

The config (the run's file with the run's overrides) rebuilds the model; the checkpoint comes from
the workdir: `step`, else the step in selection.json when its checkpoint is kept, else the latest.
A run without checkpoints (0 training steps, e.g. a `:frozen` row) is initialised as that run was.
"""
from __future__ import annotations

import json

import jax
from etils import epath

from sbirjax import checkpoint, compiled, methods, rundir, sharding
from sbirjax.errors import RunDirError, UserError


def define_run_flags():
    """--config, --workdir and --step, the flags every tool on a finished run takes; defined only
    when a tool runs as a command (importing a tool defines none)."""
    from absl import flags
    from ml_collections import config_flags
    config_flags.DEFINE_config_file("config", None, "the run's config file (with the run's "
                                    "overrides)", lock_config=True)
    flags.DEFINE_string("workdir", None, "the run's workdir")
    flags.DEFINE_integer("step", None, "checkpoint step (default: selected, else latest)")
    flags.mark_flags_as_required(["config", "workdir"])


def start_tool(argv) -> None:
    """A tool's main() preamble: no stray arguments, an existing workdir, orbax's INFO lines off
    (--verbosity brings them back)."""
    from absl import flags, logging
    if len(argv) > 1:
        raise UserError(f"unexpected arguments {argv[1:]}: give options as --name=value")
    rundir.require_run(flags.FLAGS.workdir)
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)


def initial_params(config, fns, init_rng, method):
    """The parameters the run started from (its seed; pretrained weights loaded), on the host."""
    return jax.device_get(compiled.initial_state(config, method, fns, init_rng).params)


def restore_params(config, workdir: str, step: int | None = None, *, log=print,
                   with_initial: bool = False):
    """(method, module, params as host arrays, step[, initial params])."""
    rundir.require_run(workdir)
    rundir.check_resume(config, workdir)  # the tool's --config must describe this run
    method = methods.get(config.method)
    module = method.build(config.model)
    mesh = sharding.make_mesh(config.mesh.num_devices, fsdp=config.mesh.fsdp)
    init_rng, _ = jax.random.split(jax.random.key(config.seed))  # as train_and_evaluate
    fns = compiled.compile_fns(config, method, module, mesh, max(int(config.total_steps), 1),
                               init_rng)
    ckpt = checkpoint.Checkpointer(workdir)
    try:
        kept = list(ckpt.manager.all_steps())
        if step is not None and step not in kept:
            raise RunDirError(f"--step={step}: no checkpoint of step {step} in "
                              f"{ckpt.directory}; kept: {kept}")
        if step is None:
            selected = epath.Path(workdir) / rundir.SELECTION
            if selected.exists():
                step = json.loads(selected.read_text())["step"]
                if step not in kept:
                    log(f"selected step {step} has no checkpoint kept; using the latest")
                    step = None
            step = step if step is not None else ckpt.latest_step()
        if step is None:
            log(f"no checkpoint in {ckpt.directory}: initialising as the run did (step 0)")
            params, step = initial_params(config, fns, init_rng, method), 0
        else:
            state = ckpt.restore(fns.abstract_state, fns.state_shardings, step)
            params = jax.device_get(state.params)
    finally:
        ckpt.close()
    if with_initial:
        return method, module, params, step, initial_params(config, fns, init_rng, method)
    return method, module, params, step
