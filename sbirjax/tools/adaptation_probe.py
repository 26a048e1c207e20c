"""How much a meta-trained StyleMeUp model relies on its inner step: the outer (held-out style)
losses of training tasks with the model as it is (what a test query gets) and after the inner
step (what the meta-objective scores), which inner-loss term drives the step (gradient norms), and
how far the inner step moves each parameter group.

  python -m sbirjax.tools.adaptation_probe --config=configs/synthetic_stylemeup.py \
      --workdir=runs/NAME [--tasks=48] [--step=N]

A model that is good by itself has similar losses before and after; a model that only works
after adaptation (a degenerate meta-learning solution, since retrieval never adapts) has a
triplet loss near the margin before and near zero after. Tasks come from the training split
(seeded), each with its own inner-step randomness, drawn alike for both evaluations. Prints a
table and writes <workdir>/adaptation_probe.json.
"""
from __future__ import annotations

import json
import os

import numpy as np
from absl import flags

from sbirjax import errors
from sbirjax.tools import param_drift

FLAGS = flags.FLAGS


def probe(config, workdir: str, *, num_tasks: int = 48, step=None, log=print) -> dict:
    import jax
    import jax.numpy as jnp

    from sbirjax import run_state
    from sbirjax.data import examples, tfds_io
    from sbirjax.methods import meta, stylemeup

    if config.method != "stylemeup":
        raise ValueError(f"config.method is {config.method!r}: the probe is for StyleMeUp runs")
    train_split, _ = tfds_io.load_data(config, log=log)
    _, module, params, step = run_state.restore_params(config, workdir, step, log=log)
    builder = examples.make("meta_task", train_split, config.data, config.meta.episode)
    rng = np.random.default_rng(config.seed)
    picked = rng.choice(len(builder), min(num_tasks, len(builder)), replace=False)
    tasks = jax.tree.map(lambda *a: np.stack(a), *[builder(int(i), rng) for i in picked])
    inner, outer = stylemeup.inner_and_outer(module, config)
    mask = stylemeup.inner_mask(params)
    lr_scale = stylemeup.inner_lr_scale(params, config.model)
    steps = max(int(config.meta.inner_steps), 1)

    def one(task, key):
        k_in, k_out = jax.random.split(key)
        adapted, _ = meta.sgd_adapt(params,
                                    lambda p, k: inner(p, task, jax.random.fold_in(k_in, k)),
                                    lr=config.meta.inner_lr, steps=steps, mask=mask,
                                    first_order=True, lr_scale=lr_scale)
        _, before = outer(params, task, k_out)
        _, after = outer(adapted, task, k_out)
        # Which inner-loss term drives the step: the norm of each weighted term's gradient on
        # the adapted (model) leaves, at the first inner step.
        k0 = jax.random.fold_in(k_in, 0)
        names = [n for n, wt in config.loss.weights.items() if wt] + (
            ["reg"] if config.meta.regulariser else [])
        grad_norm = {}
        for name in names:
            wt = 1.0 if name == "reg" else config.loss.weights[name]
            g = jax.grad(lambda p: wt * inner(p, task, k0)[1][name])(params)
            sq = [jnp.sum(x ** 2) for x, m in zip(jax.tree.leaves(g), jax.tree.leaves(mask)) if m]
            grad_norm[name] = jnp.sqrt(sum(sq))
        change = {g: ratio for g, (_, _, ratio) in
                  param_drift.relative_changes(params, adapted, 2, xp=jnp).items()}
        return before, after, change, grad_norm

    keys = jax.random.split(jax.random.key(config.seed), len(picked))
    before, after, change, grad_norm = jax.lax.map(lambda a: jax.jit(one)(*a), (tasks, keys))
    mean = lambda t: {k: float(np.mean(v)) for k, v in jax.device_get(t).items()}
    result = {"workdir": workdir, "step": int(step), "tasks": int(len(picked)),
              "inner_steps": steps, "inner_lr": float(config.meta.inner_lr),
              "outer_before": mean(before), "outer_after": mean(after),
              "inner_grad_norm": mean(grad_norm),
              "relative_change": dict(sorted(mean(change).items(), key=lambda kv: -kv[1]))}
    with open(os.path.join(workdir, "adaptation_probe.json"), "w") as f:
        json.dump(result, f, indent=2)
    return result


def table(result) -> str:
    lines = [f"step {result['step']}, {result['tasks']} training tasks, "
             f"{result['inner_steps']} inner step(s) at lr {result['inner_lr']:g}",
             "| outer term | model as it is | after the inner step |", "|---|---|---|"]
    for k in result["outer_before"]:
        lines.append(f"| {k} | {result['outer_before'][k]:.4f} | {result['outer_after'][k]:.4f} |")
    lines += ["", "| inner-loss term (weighted) | gradient norm on the adapted leaves |",
              "|---|---|"]
    lines += [f"| {k} | {v:.4g} |" for k, v in result["inner_grad_norm"].items()]
    lines += ["", "| parameter group | relative change in the inner step |", "|---|---|"]
    lines += [f"| {g} | {v:.4f} |" for g, v in list(result["relative_change"].items())[:10]]
    return "\n".join(lines)


def define_flags():
    from sbirjax import run_state
    run_state.define_run_flags()
    flags.DEFINE_integer("tasks", 48, "training tasks to probe")


def main(argv):
    from sbirjax import run_state
    run_state.start_tool(argv)
    print(table(probe(FLAGS.config, FLAGS.workdir, num_tasks=FLAGS.tasks, step=FLAGS.step)))


if __name__ == "__main__":
    define_flags()
    errors.run(main)
