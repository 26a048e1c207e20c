"""How far each parameter group moved from its initial value: which parts of a model trained.

  python -m sbirjax.tools.param_drift --config=configs/synthetic_stylemeup.py --workdir=runs/NAME
                                      [--depth=2] [--step=N]

Groups are the first --depth parts of each parameter's path (e.g. 'encoder/ft0', 'reg_P'). For
each: the number of values, the norm of the initial values, the norm of the change, their ratio,
and the largest absolute change. Printed as a Markdown table and written to
<workdir>/param_drift.json. Uses: a learned regulariser or FT layers that never move (a first-order
meta-gradient leaves them at their initial values), a frozen group that did move.
"""
from __future__ import annotations

import json
import os

import numpy as np
from absl import flags

from flax import traverse_util

from sbirjax import errors


FLAGS = flags.FLAGS


def group_paths(tree, depth: int) -> tuple[dict, dict]:
    """(flat {path: array}, {group: [paths]}): a group is the first `depth` parts of a path."""
    flat = traverse_util.flatten_dict(tree, sep="/")
    groups: dict[str, list[str]] = {}
    for path in sorted(flat):
        groups.setdefault("/".join(path.split("/")[:depth]), []).append(path)
    return flat, groups


def relative_changes(initial, final, depth: int = 2, xp=np) -> dict:
    """{group: (||initial||, ||final - initial||, their ratio)}, with numpy (xp=np, on the host)
    or jax.numpy (xp=jnp, inside a jitted function). The ratio of a group that starts at zero is
    inf when it moved, 0 when it did not."""
    a, groups = group_paths(initial, depth)
    b, _ = group_paths(final, depth)
    if a.keys() != b.keys():
        raise ValueError(f"parameter trees differ: {sorted(a.keys() ^ b.keys())[:5]}")
    out = {}
    for name, paths in groups.items():
        n0 = xp.sqrt(sum(xp.sum(xp.square(a[p])) for p in paths))
        nd = xp.sqrt(sum(xp.sum(xp.square(b[p] - a[p])) for p in paths))
        ratio = xp.where(n0 > 0, nd / xp.where(n0 > 0, n0, 1.0), xp.where(nd > 0, xp.inf, 0.0))
        out[name] = (n0, nd, ratio)
    return out


def drift(initial, final, depth: int = 2) -> dict:
    """{group: {size, init_norm, change_norm, relative_change, max_abs_change}}."""
    as64 = lambda t: {k: np.asarray(v, np.float64)
                      for k, v in traverse_util.flatten_dict(t, sep="/").items()}
    a, b = as64(initial), as64(final)
    _, groups = group_paths(initial, depth)
    changes = relative_changes(traverse_util.unflatten_dict(a, sep="/"),
                               traverse_util.unflatten_dict(b, sep="/"), depth)
    out = {}
    for name, paths in groups.items():
        n0, nd, ratio = changes[name]
        d = np.concatenate([np.ravel(b[p] - a[p]) for p in paths])
        out[name] = {"size": int(d.size), "init_norm": float(n0), "change_norm": float(nd),
                     "relative_change": float(ratio),
                     "max_abs_change": float(np.max(np.abs(d))) if d.size else 0.0}
    return out


def table(groups: dict) -> str:
    lines = ["| group | values | init norm | change norm | relative | max abs change |",
             "|---|---|---|---|---|---|"]
    for name, g in groups.items():
        lines.append(f"| {name} | {g['size']:,} | {g['init_norm']:.4g} | {g['change_norm']:.4g} | "
                     f"{g['relative_change']:.3g} | {g['max_abs_change']:.3g} |")
    return "\n".join(lines)


def define_flags():
    from sbirjax import run_state
    run_state.define_run_flags()
    flags.DEFINE_integer("depth", 2, "path parts that name a group")


def main(argv):
    from sbirjax import run_state
    run_state.start_tool(argv)
    _, _, params, step, initial = run_state.restore_params(
        FLAGS.config, FLAGS.workdir, FLAGS.step, with_initial=True)
    groups = drift(initial, params, FLAGS.depth)
    print(f"step {step} against the initial parameters (seed {FLAGS.config.seed})")
    print(table(groups))
    with open(os.path.join(FLAGS.workdir, "param_drift.json"), "w") as f:
        json.dump({"step": step, "depth": FLAGS.depth, "groups": groups}, f, indent=2)


if __name__ == "__main__":
    define_flags()
    errors.run(main)
