"""The training loop: the one place that builds the mesh, jits with shardings, restores and saves.

Cadence (log / eval / checkpoint) counts completed steps and always fires on the last one. Metrics
of step s are fetched after step s+1 is dispatched, so the host never stalls the device; a
non-finite loss stops the run before anything is saved, so the last checkpoint stays good.

Preemption: a SIGTERM during training (a maintenance event, a spot VM reclaimed, a scheduler's
cancel) is noticed at the next step boundary. Every process then saves a checkpoint of that step,
waits until it is written, records {"kind": "preempted"} in metrics.jsonl and raises `Preempted`
(`python -m sbirjax.main` exits with status 143, as a process killed by SIGTERM would). Running the
same command again resumes from that checkpoint exactly. See distributed.PreemptionWatch for how
processes agree on the step.
"""
from __future__ import annotations

import json

import jax
import numpy as np
from etils import epath

from sbirjax import checkpoint, distributed, methods, rundir, sharding
from sbirjax.compiled import compile_fns, initial_state
from sbirjax.data import examples, pipeline, tfds_io
from sbirjax.evaluation import evaluate
from sbirjax.reporting import Reporter


def due(step: int, every: int, total: int) -> bool:
    return step == total or (every > 0 and step % every == 0)


def _check_finite(step: int, values: dict, ckpt: checkpoint.Checkpointer) -> None:
    # A finite loss with non-finite gradients already poisons the parameters of this step.
    loss, gnorm = float(values["loss"]), float(values["grad_norm"])
    if not (np.isfinite(loss) and np.isfinite(gnorm)):
        last = ckpt.latest_step()
        raise FloatingPointError(
            f"loss is {loss} (gradient norm {gnorm}) at step {step}. Training stopped; "
            f"nothing after step {last if last is not None else 0} was saved"
            + (f" and the last good checkpoint (step {last}) is in {ckpt.directory}."
               if last is not None else ".")
            + " Lower config.optim.lr or check the input data, then run again to resume.")


class Preempted(Exception):
    """Training stopped on SIGTERM after saving a checkpoint of `step`; run again to resume."""

    def __init__(self, step: int, directory):
        super().__init__(f"preempted (SIGTERM): stopped after saving the checkpoint of step {step} "
                         f"in {directory}; run the same command again to resume")
        self.step = step


def episode(config) -> str:
    """The meta-learning episode design (sbirjax/data/episodes.py); methods without meta-learning
    have no `meta` block and take the default."""
    return config.meta.episode if "meta" in config else "official"


def train_and_evaluate(config, workdir: str, *, devices=None):
    """Train `config.method` on `config.data`; returns (final state, last eval metrics).

    Process 0 holds the workdir's lock for the whole run (rundir.lock)."""
    epath.Path(workdir).mkdir(parents=True, exist_ok=True)
    if jax.process_index() == 0:
        with rundir.lock(workdir):
            return _train_and_evaluate(config, workdir, devices)
    return _train_and_evaluate(config, workdir, devices)


def _train_and_evaluate(config, workdir: str, devices):
    total = int(config.total_steps)
    method = methods.get(config.method)
    module = method.build(config.model)
    mesh = sharding.make_mesh(config.mesh.num_devices, devices, fsdp=config.mesh.fsdp)
    if rundir.checkpoint_steps(workdir):  # before orbax starts: a refusal leaves no thread behind
        rundir.check_resume(config, workdir)
    ckpt = checkpoint.Checkpointer(workdir, max_to_keep=config.keep_checkpoints)
    try:
        init_rng, step_rng = jax.random.split(jax.random.key(config.seed))
        fns = compile_fns(config, method, module, mesh, total, init_rng)
        # Before anything in the workdir changes: a refused resume leaves it as it was.
        state, start = ckpt.restore_latest(fns.abstract_state, fns.state_shardings)
    except BaseException:
        ckpt.close()
        raise
    if jax.process_index() == 0:
        rundir.save_config(config, workdir)
    report = Reporter(workdir, total, start_step=start)
    try:
        return _run(config, workdir, method, module, mesh, ckpt, report, fns, state, start,
                    step_rng, init_rng)
    finally:  # a crash must not lose a checkpoint that is being written in the background
        ckpt.close()
        report.close()


def _run(config, workdir, method, module, mesh, ckpt, report, fns, state, start, step_rng,
         init_rng):
    total = int(config.total_steps)
    train_split, eval_splits = tfds_io.load_data(config, log=report.log)
    report.log(f"method {method.name}: {train_split.num_sketches} training sketches, "
               f"{train_split.num_photos} photos; mesh {dict(mesh.shape)} over "
               f"{jax.device_count()} {jax.devices()[0].platform} devices in "
               f"{jax.process_count()} process(es)")
    abstract_state, step_fn, embed_fns = fns.abstract_state, fns.step, fns.embed
    if start:
        report.log(f"resuming from the checkpoint of step {start} in {ckpt.directory}")
        report.write(start, "resume", {})  # records after `start` were dropped: they run again
    else:
        state = initial_state(config, method, fns, init_rng, log=report.log)
    n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(abstract_state.params))
    report.log(f"{n_params:,} parameters")

    run_eval = evaluate.Evaluation(config, eval_splits, embed_fns, mesh, workdir,
                                   method_name=method.name, report=report)

    if start >= total:
        report.log(f"already trained to step {start} (total_steps={total}); evaluating only")
        results = run_eval(start, state.params)
    else:
        state, results = _loop(config, state, step_fn, step_rng, train_split, method, mesh,
                               ckpt, report, run_eval, start, total)
    _write_results(workdir, int(state.step), results)
    return state, results


def _loop(config, state, step_fn, step_rng, train_split, method, mesh, ckpt, report, run_eval,
          start, total):
    local_bs = sharding.local_batch_size(config.batch_size, mesh)
    example_fn = examples.make(method.train_inputs, train_split, config.data, episode(config))
    stream = pipeline.train_stream(
        len(example_fn), example_fn, local_batch=local_bs, seed=config.seed,
        start_step=start, process_index=jax.process_index(), process_count=jax.process_count())
    batches = pipeline.iterate(stream, num_threads=config.data.num_threads,
                               prefetch=config.data.prefetch)

    results, pending = {}, None
    report.log(f"training steps {start + 1}..{total}, batch {config.batch_size}")
    with distributed.PreemptionWatch() as preemption:
        for step in range(start + 1, total + 1):
            batch = sharding.to_global(next(batches), mesh)
            state, metrics = step_fn(state, batch, step_rng)
            if pending is not None:  # fetch the previous step's metrics: the device keeps working
                _finish(pending, report, ckpt, total, config)
            pending = (step, metrics)
            preempted = step < total and preemption.reached(step)
            if (preempted or due(step, config.checkpoint_every, total)
                    or due(step, config.eval_every, total)):
                _finish(pending, report, ckpt, total, config)
                pending = None
            if preempted or due(step, config.checkpoint_every, total):
                ckpt.save(step, state)
            if preempted:
                ckpt.wait()
                report.write(step, "preempted", {})
                report.log(f"[{step:>6d}/{total}] SIGTERM: saved the checkpoint of step {step}; "
                           "stopping (run again to resume)")
                raise Preempted(step, ckpt.directory)
            if due(step, config.eval_every, total):
                results = run_eval(step, state.params)
    report.log(f"done: {total} steps; checkpoints in {ckpt.directory}")
    return state, results


def _finish(pending, report, ckpt, total, config):
    step, metrics = pending
    values = jax.device_get(metrics)
    _check_finite(step, values, ckpt)
    if due(step, config.log_every, total):
        report.progress(step, values)


def _write_results(workdir, step, results):
    if jax.process_index() == 0 and results:
        rundir.write_text_atomic(epath.Path(workdir) / rundir.RESULTS, json.dumps(
            {"step": step, **{k: {m: float(v) for m, v in r.items()} for k, r in results.items()}},
            indent=2))
