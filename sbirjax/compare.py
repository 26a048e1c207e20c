"""Compare finished runs: a Markdown table of their results and a style-consistency plot.

  python -m sbirjax.compare runs/synthetic_triplet runs/synthetic_stylemeup [--split=test]
                            [--metrics=acc@1,acc@10,rank_avg,v_avg] [--out=compare.png]

Reads <run>/results.json and, for the plot, <run>/eval/<split>_ranks.npz (written by every
fine-grained evaluation). The plot shows, per run, the distribution over test photos of the
spread (standard deviation) of the true photo's rank across the photo's sketches by different
users: a curve further up and left means retrieval depends less on who drew the sketch.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np
from absl import app, flags

_SPLIT = flags.DEFINE_string("split", "test", "eval split to compare")
_METRICS = flags.DEFINE_list("metrics", ["acc@1", "acc@10", "rank_avg", "v_avg"], "columns")
_OUT = flags.DEFINE_string("out", "", "where to write the plot (PNG); empty: no plot")


def table(runs, split: str, metric_names) -> str:
    lines = ["| run | " + " | ".join(metric_names) + " |",
             "|---|" + "---|" * len(metric_names)]
    for run in runs:
        path = os.path.join(run, "results.json")
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path} not found: is {run} a finished sbirjax run?")
        with open(path) as f:
            values = json.load(f).get(split, {})
        cells = [_fmt(m, values.get(m)) for m in metric_names]
        lines.append(f"| {os.path.basename(os.path.normpath(run))} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt(name, v):
    if v is None:
        return "-"
    return f"{100 * v:.1f}%" if name.startswith(("acc@", "map", "p@", "p_minr")) else f"{v:.2f}"


def rank_spread(ranks, photos) -> np.ndarray:
    """Per photo with >= 2 sketches: the standard deviation of its sketches' ranks."""
    return np.array([np.std(ranks[photos == p]) for p in np.unique(photos)
                     if np.sum(photos == p) >= 2])


def plot(runs, split: str, out: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    for run in runs:
        path = os.path.join(run, "eval", f"{split}_ranks.npz")
        if not os.path.exists(path):
            print(f"warning: {path} not found; {run} left out of the plot", file=sys.stderr)
            continue
        d = np.load(path)
        spread = np.sort(rank_spread(d["ranks"], d["photo"]))
        ax.step(spread, np.arange(1, len(spread) + 1) / len(spread), where="post",
                label=f"{os.path.basename(os.path.normpath(run))} (mean {spread.mean():.1f})")
    ax.set_xlabel("std of the true photo's rank across its sketches (users)")
    ax.set_ylabel("fraction of test photos")
    ax.set_xscale("symlog")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"style consistency on '{split}'", fontsize=10)
    fig.tight_layout()
    fig.savefig(out)
    print(f"wrote {out}")


def main(argv):
    runs = argv[1:]
    if not runs:
        raise app.UsageError("give one or more run directories")
    print(table(runs, _SPLIT.value, _METRICS.value))
    if _OUT.value:
        plot(runs, _SPLIT.value, _OUT.value)


if __name__ == "__main__":
    app.run(main)
