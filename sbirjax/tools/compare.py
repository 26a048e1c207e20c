"""Compare finished runs: a Markdown table of their results and a style-consistency plot.

  python -m sbirjax.tools.compare runs/synthetic_triplet runs/synthetic_stylemeup [--split=test]
                                  [--metrics=acc@1,acc@10,rank_avg,v_avg] [--step=200]
                                  [--out=compare.png] [--curves=curves.png --train_metric=loss]
                                  [--bars=bars.png --bar_metric=rank_avg
                                   --bar_splits=test,test_seen_users --chance=100.5]
                                  [--seeds --gap_split=test_seen_users]
                                  [--gap_split=test_seen_users --gap_curves=gap.png
                                   --gap_metric=acc@10]

The table reads <run>/results.json (the last evaluation), or with --step the evaluation at that
step from <run>/metrics.jsonl, so runs of different lengths compare at the same point.
--out plots, from <run>/eval/<split>_ranks.npz (written by every fine-grained evaluation), the
distribution over test photos of the spread (standard deviation) of the true photo's rank across
the photo's sketches by different users: a curve further up and left means retrieval depends less
on who drew the sketch. --curves plots a training metric and the split's mean rank against the
step, one line per run. --bars draws one metric per run as grouped bars, one bar per split, at
--step or the last evaluation, with an optional dashed line at the chance level.
--seeds groups runs whose directory names differ only in a trailing `_s<seed>` into one row of
mean +- standard deviation over seeds (n-1), with --gap_split's values and the gap
(gap_split minus split, computed per seed) beside each metric.
--gap_curves plots, per seed group, --gap_metric on --split (solid) and on --gap_split (dashed)
against the step, mean over seeds with a band of +- one standard deviation; beside it the gap
(gap_split minus split, per seed) against the step, and against the metric reached on --split
(a weaker model has less room for a gap): where a seen/unseen gap opens, and which runs narrow it.
Steps where not every seed of a group has been evaluated are left out of that group's lines.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np
from absl import flags
from etils import epath

from sbirjax import errors, rundir
from sbirjax.evaluation import metrics
from sbirjax.errors import DataError, RunDirError, UserError

_SPLIT = flags.DEFINE_string("split", "test", "eval split to compare")
_METRICS = flags.DEFINE_list("metrics", ["acc@1", "acc@10", "rank_avg", "v_avg"], "columns")
_STEP = flags.DEFINE_integer("step", None, "compare the evaluation at this step (metrics.jsonl)")
_OUT = flags.DEFINE_string("out", "", "where to write the plot (PNG); empty: no plot")
_CURVES = flags.DEFINE_string("curves", "", "where to write the learning curves (PNG)")
_TRAIN_METRIC = flags.DEFINE_list(
    "train_metric", ["loss"],
    "training metric for --curves; a list: each run plots the first it has")
_BARS = flags.DEFINE_string("bars", "", "where to write the bar chart of --bar_metric (PNG)")
_BAR_METRIC = flags.DEFINE_string("bar_metric", "rank_avg", "metric for --bars")
_BAR_SPLITS = flags.DEFINE_list("bar_splits", [], "splits for --bars; empty: --split only")
_CHANCE = flags.DEFINE_float("chance", None, "--bars draws a dashed line at this value")
_SEEDS = flags.DEFINE_bool("seeds", False, "one row per group of seeds (names ending _s<N>)")
_GAP_SPLIT = flags.DEFINE_string("gap_split", "", "with --seeds: a second split and the gap")
_GAP_CURVES = flags.DEFINE_string("gap_curves", "", "where to write the seen/unseen curves (PNG); "
                                  "needs --gap_split")
_GAP_METRIC = flags.DEFINE_string("gap_metric", "acc@10", "metric for --gap_curves")


NOT_SPLITS = ("train", "resume", "preempted")  # record kinds that are not evaluations


def _percent(metric: str) -> bool:
    """Whether a metric is a fraction shown in percent (acc@k, mAP, P@k)."""
    return metric.startswith(("acc@", "map", "p@", "p_minr"))


def records(run: str) -> list[dict]:
    """Every record of <run>/metrics.jsonl (a local or gs:// run)."""
    path = epath.Path(run) / rundir.METRICS
    if not path.exists():
        raise RunDirError(f"{path} not found: is {run} a sbirjax run directory (the --workdir "
                          "of python -m sbirjax.main)?")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def evaluation_at(run: str, split: str, step: int) -> dict:
    """The metrics of `split` evaluated at `step`, from metrics.jsonl."""
    evaluations = {r["step"]: r for r in records(run) if r.get("kind") == split}
    if step not in evaluations:
        raise DataError(f"--step={step}: {run} has no '{split}' evaluation at step {step}; "
                        f"evaluated at {sorted(evaluations)}")
    return evaluations[step]


def last_evaluation(run: str, split: str) -> dict:
    """The metrics of `split` in <run>/results.json (the run's last evaluation)."""
    path = epath.Path(run) / rundir.RESULTS
    if not path.exists():
        raise RunDirError(f"{path} not found: is {run} a finished sbirjax run? (--step=N "
                          "compares an evaluation of an unfinished one)")
    return json.loads(path.read_text()).get(split, {})


def check_names(runs, splits, metric_names) -> None:
    """UserError naming the valid choices when a split or a metric is in none of the runs."""
    have: dict[str, set] = {}
    for run in runs:
        for r in records(run):
            if r.get("kind") not in NOT_SPLITS:
                have.setdefault(r["kind"], set()).update(k for k in r if k not in ("step", "kind"))
    for split in splits:
        if split not in have:
            raise UserError(f"--split={split}: no run has that evaluation split; they have "
                            f"{sorted(have)}")
    known = set().union(*(have[s] for s in splits))
    unknown = [m for m in metric_names if m not in known]
    if unknown:
        raise UserError(f"metrics {unknown}: not in the runs' {list(splits)} evaluations; they "
                        f"have {sorted(known)}")


def evaluation(run: str, split: str, step: int | None = None) -> dict:
    """The split's metrics at `step`, or at the run's last evaluation when `step` is None."""
    return last_evaluation(run, split) if step is None else evaluation_at(run, split, step)


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt
    return plt


def table(runs, split: str, metric_names, step: int | None = None) -> str:
    lines = ["| run | " + " | ".join(metric_names) + " |",
             "|---|" + "---|" * len(metric_names)]
    for run in runs:
        values = evaluation(run, split, step)
        cells = [_fmt(m, values.get(m)) for m in metric_names]
        lines.append(f"| {os.path.basename(os.path.normpath(run))} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def seed_groups(runs) -> dict[str, list[str]]:
    """Runs grouped by their directory name without a trailing '_s<digits>', in first-seen order."""
    groups: dict[str, list[str]] = {}
    for run in runs:
        name = os.path.basename(os.path.normpath(run))
        head, sep, tail = name.rpartition("_s")
        groups.setdefault(head if sep and tail.isdigit() else name, []).append(run)
    return groups


def _mean_sd(name, values) -> str:
    v = np.asarray(values, np.float64)
    scale = 100.0 if _percent(name) else 1.0
    sd = f" +- {scale * np.std(v, ddof=1):.1f}" if len(v) > 1 else ""
    return f"{scale * np.mean(v):.1f}{sd}"


def seed_table(runs, split: str, metric_names, gap_split: str = "", step: int | None = None) -> str:
    """Mean +- sd over seeds per group (seed_groups); with gap_split also its values and the
    per-seed gap (gap_split minus split). Percentages for acc/mAP/P metrics."""
    cols = []
    for m in metric_names:
        cols += [m] + ([f"{m} ({gap_split})", f"{m} gap"] if gap_split else [])
    lines = ["| run | seeds | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for name, group in seed_groups(runs).items():
        a = [evaluation(r, split, step) for r in group]
        b = [evaluation(r, gap_split, step) for r in group] if gap_split else None
        cells = []
        for m in metric_names:
            missing = [r for r, v in zip(group, a) if m not in v]
            if missing:
                raise ValueError(f"{missing[0]}: no '{m}' in split '{split}'")
            cells.append(_mean_sd(m, [v[m] for v in a]))
            if gap_split:
                cells.append(_mean_sd(m, [v[m] for v in b]))
                cells.append(_mean_sd(m, [y[m] - x[m] for x, y in zip(a, b)]))
        lines.append(f"| {name} | {len(group)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt(name, v):
    if v is None:
        return "-"
    return f"{100 * v:.1f}%" if _percent(name) else f"{v:.2f}"


def rank_spread(ranks, photos) -> np.ndarray:
    """Per photo with >= 2 sketches: the standard deviation of its sketches' ranks."""
    return np.array([np.std(g) for g in metrics.ranks_by_photo(ranks, photos)])


def plot(runs, split: str, out: str) -> None:
    plt = _pyplot()
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


def curves(runs, split: str, train_metric, out: str, eval_metric: str = "rank_avg") -> None:
    """Two panels: the training records' `train_metric` (a name, or names of which each run plots
    the first it has: methods name their losses differently) and the split's `eval_metric`,
    against the step. One colour per run in both panels."""
    plt = _pyplot()
    names = [train_metric] if isinstance(train_metric, str) else list(train_metric)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=110)
    for i, run in enumerate(runs):
        name = os.path.basename(os.path.normpath(run))
        rows = records(run)
        train = [r for r in rows if r.get("kind") == "train"]
        metric = next((m for m in names if any(m in r for r in train)), None)
        for ax, kind, m, marker in ((axes[0], "train", metric, None),
                                    (axes[1], split, eval_metric, "o")):
            pts = [(r["step"], r[m]) for r in rows if m and r.get("kind") == kind and m in r]
            if pts:
                x, y = zip(*pts)
                ax.plot(x, y, marker=marker, ms=4, color=colours[i % len(colours)],
                        label=name if kind == "train" else f"{name} ({m})")
    axes[0].set_title(f"training: {' / '.join(names)}", fontsize=10)
    axes[1].set_title(f"'{split}': {eval_metric}", fontsize=10)
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
    axes[1].legend(fontsize=7)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out)
    print(f"wrote {out}")


def group_curves(group, split: str, gap_split: str, metric: str) -> dict[str, np.ndarray]:
    """A seed group's `metric` on both splits at the steps every run of the group evaluated
    both: 'steps' (n,), 'split' and 'gap_split' (seeds, n), 'gap' (seeds, n) = gap_split - split."""
    per_run = []
    for run in group:
        rows = records(run)
        per_run.append({kind: {r["step"]: r[metric] for r in rows
                               if r.get("kind") == kind and metric in r}
                        for kind in (split, gap_split)})
    steps = sorted(set.intersection(*(set(v[split]) & set(v[gap_split]) for v in per_run)))
    a, b = (np.array([[v[kind][t] for t in steps] for v in per_run], np.float64).reshape(
        len(group), len(steps)) for kind in (split, gap_split))
    return {"steps": np.asarray(steps), "split": a, "gap_split": b, "gap": b - a}


def gap_curves(runs, split: str, gap_split: str, metric: str, out: str) -> dict[str, dict]:
    """Per seed group (seed_groups): `metric` on `split` (solid) and `gap_split` (dashed)
    against the step; their per-seed gap against the step; and the gap against the metric on
    `split`. Means over seeds, +- one sd. Returns group_curves() per group."""
    plt = _pyplot()
    scale = 100.0 if _percent(metric) else 1.0
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4), dpi=110)
    result = {}
    for i, (name, group) in enumerate(seed_groups(runs).items()):
        c = result[name] = group_curves(group, split, gap_split, metric)
        if not len(c["steps"]):
            print(f"warning: {name}: no step at which every seed evaluated both '{split}' and "
                  f"'{gap_split}'; left out of the plot", file=sys.stderr)
            continue
        colour = colours[i % len(colours)]
        label = f"{name} ({len(group)} seed{'s' if len(group) > 1 else ''})"
        for ax, key, ls, lab in ((axes[0], "split", "-", f"{label}, {split}"),
                                 (axes[0], "gap_split", "--", f"{label}, {gap_split}"),
                                 (axes[1], "gap", "-", label)):
            v = scale * c[key]
            mean, sd = v.mean(axis=0), (v.std(axis=0, ddof=1) if len(v) > 1 else 0 * v[0])
            ax.plot(c["steps"], mean, ls=ls, marker="o", ms=3, color=colour, label=lab)
            ax.fill_between(c["steps"], mean - sd, mean + sd, color=colour, alpha=0.15, lw=0)
        # the gap against the accuracy reached: a weaker model has less room for a gap
        x, y = scale * c["split"], scale * c["gap"]
        axes[2].errorbar(x.mean(axis=0), y.mean(axis=0), marker="o", ms=3, color=colour,
                         yerr=y.std(axis=0, ddof=1) if len(y) > 1 else None, capsize=2,
                         label=label)
    for ax in axes[1:]:
        ax.axhline(0.0, color="k", lw=0.8)
    axes[0].set_title(f"{metric}: '{split}' (solid), '{gap_split}' (dashed)", fontsize=10)
    axes[1].set_title(f"gap: {metric} on '{gap_split}' minus '{split}'", fontsize=10)
    axes[2].set_title(f"the gap against {metric} on '{split}' (each point a step)", fontsize=10)
    for ax, xlabel in zip(axes, ("step", "step", f"{metric} on '{split}'")):
        ax.set_xlabel(xlabel)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out)
    print(f"wrote {out}")
    return result


def bars(runs, splits, metric: str, out: str, step: int | None = None,
         chance: float | None = None) -> np.ndarray:
    """Horizontal bars of `metric`, one group per run (top to bottom in the order given), one bar
    per split. Returns the plotted values, shape (runs, splits)."""
    plt = _pyplot()
    values = np.array([[evaluation(r, s, step).get(metric, np.nan) for s in splits]
                       for r in runs], dtype=float)
    names = [os.path.basename(os.path.normpath(r)) for r in runs]
    height = 0.8 / len(splits)
    fig, ax = plt.subplots(figsize=(7, 0.9 + 0.32 * len(runs) * max(1, len(splits) * 0.7)), dpi=110)
    y = np.arange(len(runs))[::-1].astype(float)
    for j, split in enumerate(splits):
        offset = (len(splits) - 1) / 2 - j
        ax.barh(y + offset * height, values[:, j], height=height, label=split)
        for yi, v in zip(y + offset * height, values[:, j]):
            if np.isfinite(v):
                ax.text(v, yi, f" {_fmt(metric, v)}", va="center", fontsize=7)
    if chance is not None:
        ax.axvline(chance, color="k", ls="--", lw=1, label=f"chance ({chance:g})")
    ax.set_yticks(y, names, fontsize=8)
    ax.set_xlabel(metric + ("" if step is None else f" at step {step}"))
    right = np.nanmax(np.append(values, chance if chance is not None else np.nan))
    if np.isfinite(right) and right > 0:
        ax.set_xlim(0, 1.12 * right)  # room for the value labels
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(splits) + 1,
              frameon=False)
    fig.tight_layout()
    fig.savefig(out)
    print(f"wrote {out}")
    return values


def main(argv):
    runs = argv[1:]
    if not runs:
        raise UserError("give one or more run directories: "
                        "python -m sbirjax.tools.compare RUN [RUN ...]")
    if _GAP_CURVES.value and not _GAP_SPLIT.value:
        raise UserError("--gap_curves needs --gap_split (e.g. --gap_split=test_seen_users): the "
                        "second split whose gap to --split it plots")
    splits = [_SPLIT.value, *([_GAP_SPLIT.value] if _GAP_SPLIT.value else []), *_BAR_SPLITS.value]
    check_names(runs, splits, list(_METRICS.value) + ([_BAR_METRIC.value] if _BARS.value else [])
                + ([_GAP_METRIC.value] if _GAP_CURVES.value else []))
    if _SEEDS.value:
        print(seed_table(runs, _SPLIT.value, _METRICS.value, _GAP_SPLIT.value, _STEP.value))
    else:
        print(table(runs, _SPLIT.value, _METRICS.value, _STEP.value))
    if _OUT.value:
        plot(runs, _SPLIT.value, _OUT.value)
    if _CURVES.value:
        curves(runs, _SPLIT.value, _TRAIN_METRIC.value, _CURVES.value)
    if _GAP_CURVES.value:
        gap_curves(runs, _SPLIT.value, _GAP_SPLIT.value, _GAP_METRIC.value, _GAP_CURVES.value)
    if _BARS.value:
        bars(runs, _BAR_SPLITS.value or [_SPLIT.value], _BAR_METRIC.value, _BARS.value,
             _STEP.value, _CHANCE.value)


if __name__ == "__main__":
    errors.run(main)
