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

from sbirjax import errors
from flax import traverse_util


FLAGS = flags.FLAGS


def drift(initial, final, depth: int = 2) -> dict:
    """{group: {size, init_norm, change_norm, relative_change, max_abs_change}}."""
    a = traverse_util.flatten_dict(initial, sep="/")
    b = traverse_util.flatten_dict(final, sep="/")
    if a.keys() != b.keys():
        raise ValueError(f"parameter trees differ: {sorted(a.keys() ^ b.keys())[:5]}")
    groups: dict[str, list[str]] = {}
    for path in sorted(a):
        groups.setdefault("/".join(path.split("/")[:depth]), []).append(path)
    out = {}
    for name, paths in groups.items():
        x0 = np.concatenate([np.ravel(np.asarray(a[p], np.float64)) for p in paths])
        d = np.concatenate([np.ravel(np.asarray(b[p], np.float64)) for p in paths]) - x0
        n0, nd = float(np.linalg.norm(x0)), float(np.linalg.norm(d))
        out[name] = {"size": int(x0.size), "init_norm": n0, "change_norm": nd,
                     "relative_change": nd / n0 if n0 > 0 else float("inf") if nd > 0 else 0.0,
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
