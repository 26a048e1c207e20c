"""On-the-fly evaluation: the rank of the true photo while a sketch is being drawn.

  python -m sbirjax.search onthefly --workdir=RUN --split=test [--steps=10] [--out=DIR]

For every query sketch of a fine-grained split, the sketch is cut after 1/steps, 2/steps, ...,
steps/steps of its strokes, in drawing order (prefix p keeps the first ceil(p * S / steps) of its S
strokes, at least one); each prefix is rasterised exactly as evaluation rasterises a whole sketch
(augment.sketch_image) and ranked against the split's photos with the evaluation's fine-grained
rank (metrics.fg_ranks, or fg_ranks_within_class under that protocol). The last prefix is the
whole sketch, so its ranks are the evaluation's ranks.

The two early-retrieval measures of Bhunia et al., "Sketch Less for More: On-the-Fly Fine-Grained
Sketch Based Image Retrieval" (CVPR 2020), from the per-prefix ranks r[q, p] (Q sketches, P
prefixes, gallery of G photos):

  m@A = mean over q of (1/P) sum_p (G - r[q, p]) / (G - 1)    area under the ranking-percentile
                                                              curve (1 = always first, 0 = last)
  m@B = mean over q of (1/P) sum_p 1 / r[q, p]                area under the 1/rank curve

Each prefix covers 1/P of the drawing axis (a rectangle rule over the P prefixes, x in (0, 1]), so
both lie in [0, 1]. Written as RUN/eval/onthefly_<split>.json and .png (docs/search.md).
"""
from __future__ import annotations

import json
import os

import numpy as np

from sbirjax.search.errors import SearchError

MAX_STEPS = 100


# ------------------------------------------------------------------------- prefixes of a drawing
def stroke_ends(strokes: np.ndarray) -> np.ndarray:
    """Index (exclusive) of the end of each stroke of a SketchX (N, 3) array: pen = 1 ends one;
    points after the last pen-up form a last stroke."""
    strokes = np.asarray(strokes)
    ends = np.flatnonzero(strokes[:, 2] >= 0.5) + 1
    if len(strokes) and (not len(ends) or ends[-1] != len(strokes)):
        ends = np.append(ends, len(strokes))
    return ends


def prefix_counts(num_strokes: int, steps: int) -> list[int]:
    """Strokes kept by each of the `steps` prefixes: ceil(p * S / steps), at least 1."""
    if steps < 1:
        raise ValueError(f"steps={steps}: at least one prefix")
    return [max(1, -(-p * num_strokes // steps)) for p in range(1, steps + 1)]


def stroke_prefixes(strokes: np.ndarray, steps: int) -> list[np.ndarray]:
    """The `steps` prefixes of a drawing, each the rows of its first strokes (the last: all)."""
    strokes = np.asarray(strokes)
    ends = stroke_ends(strokes)
    if not len(ends):
        raise ValueError("the drawing has no points")
    return [strokes[:ends[n - 1]] for n in prefix_counts(len(ends), steps)]


# ------------------------------------------------------------------------- the two measures
def _ranks(ranks) -> np.ndarray:
    r = np.asarray(ranks, np.float64)
    if r.ndim == 1:
        r = r[None]
    if r.ndim != 2 or r.size == 0:
        raise ValueError(f"ranks must be (queries, prefixes), got shape {np.shape(ranks)}")
    if np.any(r < 1) or not np.all(np.isfinite(r)):
        raise ValueError("ranks must be finite and >= 1")
    return r


def ranking_percentile(ranks, gallery_size: int) -> np.ndarray:
    """(G - rank) / (G - 1): 1 for rank 1, 0 for rank G (a gallery of one photo: 1)."""
    r = _ranks(ranks)
    if np.any(r > gallery_size):
        raise ValueError(f"a rank exceeds the gallery size {gallery_size}")
    if gallery_size == 1:
        return np.ones_like(r)
    return (gallery_size - r) / (gallery_size - 1)


def m_at_a(ranks, gallery_size: int) -> float:
    """m@A: the area under the ranking-percentile curve, mean over queries; in [0, 1]."""
    return float(ranking_percentile(ranks, gallery_size).mean(axis=1).mean())


def m_at_b(ranks) -> float:
    """m@B: the area under the 1/rank curve, mean over queries; in [0, 1]."""
    return float((1.0 / _ranks(ranks)).mean(axis=1).mean())


def curves(ranks, gallery_size: int, ks=(1, 5, 10)) -> dict:
    """Per prefix (columns of `ranks`): mean rank, mean 1/rank, mean ranking percentile, acc@k."""
    r = _ranks(ranks)
    out = {"mean_rank": r.mean(0).tolist(), "mean_reciprocal_rank": (1.0 / r).mean(0).tolist(),
           "mean_ranking_percentile": ranking_percentile(r, gallery_size).mean(0).tolist()}
    for k in ks:
        out[f"acc@{k}"] = (r <= k).mean(0).tolist()
    return out


def summary(ranks, gallery_size: int, steps: int | None = None) -> dict:
    r = _ranks(ranks)
    steps = r.shape[1] if steps is None else steps
    return {"fractions": [p / steps for p in range(1, steps + 1)],
            "m@A": m_at_a(r, gallery_size), "m@B": m_at_b(r),
            "curves": curves(r, gallery_size),
            "num_queries": int(r.shape[0]), "num_gallery": int(gallery_size)}


# ------------------------------------------------------------------------- a run and a split
def load_split(config, name: str, log=print):
    """The eval split `name` of the run's config (config.eval.splits, or 'val' of a hold-out),
    opened as evaluation opens it."""
    from sbirjax.data import splits, tfds_io
    names = sorted(config.eval.splits.keys())
    fraction = config.data.holdout_fraction
    if name not in config.eval.splits and not (name == "val" and fraction):
        raise SearchError(f"--split={name}: the run evaluates the splits {names}"
                          + (" and 'val'" if fraction else "") + "; give one of them")
    sketch_builder, photo_builder = tfds_io.prepared_builders(config.data, log=log)
    if name in config.eval.splits:
        sketch_split, photo_split = config.eval.splits[name]
        return splits.load(sketch_builder, photo_builder, sketch_split, photo_split)
    train = splits.load(sketch_builder, photo_builder, config.data.train_sketches,
                        config.data.train_photos)
    return splits.holdout(train, fraction, config.seed)[1]


def evaluate_run(searcher, split, data_config, eval_config, steps: int = 10, log=print) -> dict:
    """Per-prefix ranks of every query of `split` (searcher: Searcher.from_run of the run)."""
    from sbirjax.evaluation import evaluate, metrics
    from sbirjax.data import augment
    protocol = evaluate.protocol_of(eval_config, split.name)
    if protocol not in ("fine_grained", "fine_grained_within_class"):
        raise SearchError(f"the run's eval protocol is {protocol!r}: on-the-fly ranks need a "
                          "fine-grained split (a sketch paired with its photo)")
    valid = np.flatnonzero(split.sketch_photo >= 0)
    if not len(valid):
        raise SearchError(f"split {split.name}: no sketch has its photo in the gallery")
    first = split.sketches[int(valid[0])]
    if "strokes" not in first:
        raise SearchError(f"split {split.name} stores its sketches as images; on-the-fly "
                          "evaluation needs strokes (SketchX (x, y, pen) records)")
    mesh, nd = searcher.mesh, searcher.num_devices
    bs = -(-int(eval_config.batch_size) // nd) * nd
    embed_photo, embed_sketch = searcher.embed_fn("photo"), searcher.embed_fn("sketch")
    image = data_config.image
    g = evaluate.embed_all(embed_photo, searcher.params,
                           lambda j: augment.photo_image(split.photos[j], image),
                           split.num_photos, bs, mesh)
    # Queries in the evaluation's order: every sketch of the split, each prefix its own pass,
    # so the last pass embeds exactly the evaluation's batches.
    prefixes = []
    for i in range(split.num_sketches):
        record = split.sketches[i]
        if "strokes" not in record:
            raise SearchError(f"split {split.name}: sketch {i} has no strokes")
        prefixes.append(stroke_prefixes(record["strokes"], steps))
    ranks = np.zeros((len(valid), steps), np.int64)
    truth = split.sketch_photo[valid]
    for p in range(steps):
        q = evaluate.embed_all(embed_sketch, searcher.params,
                               lambda i, p=p: augment.sketch_image({"strokes": prefixes[i][p]},
                                                                   image),
                               split.num_sketches, bs, mesh)
        if protocol == "fine_grained":
            ranks[:, p] = metrics.fg_ranks(q[valid], g, truth)
        else:
            ranks[:, p] = metrics.fg_ranks_within_class(q[valid], g, truth,
                                                        split.sketch_category[valid],
                                                        split.photo_category)
        log(f"on-the-fly {split.name}: prefix {p + 1}/{steps}: mean rank "
            f"{ranks[:, p].mean():.2f}, acc@1 {np.mean(ranks[:, p] <= 1):.3f}")
    strokes_per_sketch = [len(stroke_ends(split.sketches[int(i)]["strokes"])) for i in valid]
    return {"ranks": ranks, "query_index": valid, "num_gallery": int(split.num_photos),
            "num_strokes": np.asarray(strokes_per_sketch), "protocol": protocol}


def plot(result: dict, path: str, title: str = "") -> None:
    """Two panels over the fraction of strokes drawn: the ranking percentile and acc@1 (m@A's
    curve), and the mean 1/rank (m@B's curve)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    x = np.asarray(result["fractions"]) * 100
    c = result["curves"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.6))
    a.plot(x, c["mean_ranking_percentile"], "o-", label="ranking percentile")
    a.plot(x, c["acc@1"], "s--", label="acc@1")
    a.plot(x, c["acc@10"], "^:", label="acc@10")
    a.set_title(f"m@A = {result['m@A']:.3f} (area under the percentile)", fontsize=9)
    b.plot(x, c["mean_reciprocal_rank"], "o-", color="C3", label="1/rank")
    b.set_title(f"m@B = {result['m@B']:.3f} (area under 1/rank)", fontsize=9)
    for ax in (a, b):
        ax.set_xlabel("strokes drawn (%)")
        ax.set_ylim(0, 1.02)
        ax.set_xlim(0, 102)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(workdir: str, split: str, *, steps: int = 10, out: str | None = None,
        step: int | None = None, batch_size: int = 64, log=print) -> dict:
    """The command: per-prefix ranks of a split, written as JSON and PNG; returns the JSON."""
    from sbirjax.search.api import Searcher, read_run_config
    if not isinstance(steps, (int, np.integer)) or not 1 <= steps <= MAX_STEPS:
        raise SearchError(f"--steps={steps}: give 1 to {MAX_STEPS} prefixes (e.g. --steps=10)")
    if not workdir or not split:
        raise SearchError("onthefly needs --workdir=RUN and --split=NAME (an eval split of the "
                          "run)")
    config = read_run_config(workdir)
    try:
        data = load_split(config, split, log=log)
    except ValueError as e:
        raise SearchError(f"--split={split}: {e}") from None
    searcher = Searcher.from_run(workdir, step, batch_size=batch_size, log=log)
    result = evaluate_run(searcher, data, config.data, config.eval, steps, log=log)
    ranks = result["ranks"]
    doc = {"run": searcher.run_dir, "step": int(searcher.step), "method": searcher.method.name,
           "split": split, "protocol": result["protocol"], "steps": int(steps),
           "prefix": "ceil(p * S / steps) of the sketch's S strokes, at least 1, in drawing order",
           "measures": {
               "m@A": "mean over queries of the mean over prefixes of (G - rank) / (G - 1)",
               "m@B": "mean over queries of the mean over prefixes of 1 / rank"},
           **summary(ranks, result["num_gallery"], steps),
           "mean_strokes": float(result["num_strokes"].mean()),
           "query_index": result["query_index"].tolist(), "ranks": ranks.tolist()}
    out = out or os.path.join(searcher.run_dir, "eval")
    os.makedirs(out, exist_ok=True)
    base = os.path.join(out, f"onthefly_{split}")
    tmp = base + ".json.tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(tmp, base + ".json")
    plot(doc, base + ".png", title=f"{doc['method']} step {doc['step']} {split}: "
                                   f"{doc['num_queries']} sketches, {doc['num_gallery']} photos")
    log(f"on-the-fly {split}: m@A={doc['m@A']:.4f} m@B={doc['m@B']:.4f} "
        f"(acc@1 at 100%: {doc['curves']['acc@1'][-1]:.3f}); written to {base}.json and .png")
    return doc
