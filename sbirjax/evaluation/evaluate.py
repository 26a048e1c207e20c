"""Evaluation: embed queries and gallery with the jitted embed function, then compute metrics.

Images are produced and embedded chunk by chunk, so only embeddings are held in memory. What an
evaluation does comes from the config: each split's protocol (a function registered with
`protocol`), the files it writes (writers registered with `output`, config.eval.outputs) and the
checkpoint selection (config.eval.select). `Evaluation` runs them; the training loop only calls it.
"""
from __future__ import annotations

import json
import time

import jax
import numpy as np
from etils import epath
from jax.experimental import multihost_utils

from sbirjax import rundir, sharding
from sbirjax.data import augment
from sbirjax.evaluation import metrics, plots
from sbirjax.errors import ConfigError


def embed_all(embed_fn, params, make_image, count: int, batch_size: int, mesh) -> np.ndarray:
    """Embed items 0..count-1 (make_image(i) -> uint8 HWC) in padded batches over the mesh."""
    batch_sh = sharding.batch_sharding(mesh)
    out = []
    for start in range(0, count, batch_size):
        idx = np.arange(start, min(start + batch_size, count))
        images = np.stack([make_image(int(i)) for i in idx])
        if len(idx) < batch_size:  # pad so every batch has the same shape (one compilation)
            images = np.concatenate([images, np.repeat(images[-1:], batch_size - len(idx), 0)])
        # Every process holds the whole batch; each device takes its own rows, whatever the
        # order of devices over processes.
        batch = jax.make_array_from_callback(images.shape, batch_sh, lambda idx: images[idx])
        emb = embed_fn(params, batch)
        out.append(np.asarray(multihost_utils.process_allgather(emb, tiled=True))[:len(idx)])
    return np.concatenate(out)


# name -> fn(split, query embeddings, gallery embeddings, eval_config) -> (values, extras). A new
# protocol is one function registered here (`protocol` below); the training loop names none.
_PROTOCOLS: dict = {}


def _registrar(table: dict, name: str):
    """A decorator that enters its function into `table` under `name`."""
    def register(fn):
        table[name] = fn
        return fn
    return register


def protocol(name: str):
    """Register a protocol function under `name` (config.eval.protocol / split_protocols)."""
    return _registrar(_PROTOCOLS, name)


def protocol_of(eval_config, split_name: str) -> str:
    """The split's protocol: config.eval.split_protocols[name], else config.eval.protocol."""
    return dict(eval_config.split_protocols).get(split_name, eval_config.protocol)


def evaluate_split(split, params, embed_fns, data_config, eval_config, mesh, protocol_name=None):
    """Metrics of one eval split under its protocol (`protocol_of`), for every query variant.

    Queries are the split's sketches embedded by every embed function except 'photo' (the
    gallery): 'sketch' is reported unprefixed, another variant v as 'v/<metric>'. The protocols
    are the functions registered below (fine_grained, category, fine_grained_within_class).
    Returns (metrics dict, extras for plotting: embeddings and ranks of the 'sketch' variant)."""
    name = protocol_name or protocol_of(eval_config, split.name)
    if name not in _PROTOCOLS:
        raise ValueError(f"protocol {name!r} (config.eval.protocol / split_protocols): use one "
                         f"of {protocols()}")
    bs = eval_config.batch_size
    g = embed_all(embed_fns["photo"], params,
                  lambda j: augment.photo_image(split.photos[j], data_config.image),
                  split.num_photos, bs, mesh)
    out, extras = {"num_gallery": int(split.num_photos)}, None
    for variant in [m for m in embed_fns if m != "photo"]:
        q = embed_all(embed_fns[variant], params,
                      lambda i: augment.sketch_image(split.sketches[i], data_config.image),
                      split.num_sketches, bs, mesh)
        values, ex = _PROTOCOLS[name](split, q, g, eval_config)
        prefix = "" if variant == "sketch" else f"{variant}/"
        out.update({prefix + k: v for k, v in values.items()})
        extras = extras or ex
    return out, extras


@protocol("category")
def category(split, q, g, eval_config):
    """eval_config.category_metrics (metrics.category_retrieval_metrics names: 'map@all',
    'p@200', 'map_voc@all', 'p_minr@100', ...): any photo of the query's class is relevant."""
    names = tuple(eval_config.category_metrics or ("map@all", "p@200"))
    values = metrics.category_retrieval_metrics(
        q, split.sketch_category, g, split.photo_category, metrics=names,
        similarity=eval_config.similarity)
    values["num_queries"] = int(split.num_sketches)
    return values, {"query_emb": q, "gallery_emb": g, "query_index": np.arange(len(q)),
                    "relevance": "category"}


def _fine_grained(split, q, g, eval_config, *, within_class: bool):
    valid = split.sketch_photo >= 0
    if not valid.any():
        raise ValueError(f"split {split.name}: no sketch has its photo in the gallery, so a "
                         "fine-grained protocol has no queries; use protocol 'category'")
    if within_class:
        ranks = metrics.fg_ranks_within_class(q[valid], g, split.sketch_photo[valid],
                                              split.sketch_category[valid], split.photo_category)
    else:
        ranks = metrics.fg_ranks(q[valid], g, split.sketch_photo[valid])
    values = metrics.fg_acc_at_k(ranks, tuple(eval_config.ks))
    sc = metrics.style_consistency(ranks, split.sketch_photo[valid])
    values.update({"rank_avg": sc["rank_avg"], "v_avg": sc["v_avg"],
                   "num_queries": int(valid.sum())})
    if eval_config.category_metrics:
        values.update(metrics.category_retrieval_metrics(
            q, split.sketch_category, g, split.photo_category,
            metrics=tuple(eval_config.category_metrics),
            similarity=eval_config.similarity))
    return values, {"query_emb": q[valid], "gallery_emb": g, "ranks": ranks,
                    "query_index": np.flatnonzero(valid), "relevance": "photo"}


@protocol("fine_grained")
def fine_grained(split, q, g, eval_config):
    """acc@K (SketchX convention) against the split's photos, plus the style-consistency
    figures rank_avg and v_avg."""
    return _fine_grained(split, q, g, eval_config, within_class=False)


@protocol("fine_grained_within_class")
def fine_grained_within_class(split, q, g, eval_config):
    """acc@K counting only photos of the query's class (fine-grained zero-shot)."""
    return _fine_grained(split, q, g, eval_config, within_class=True)


def protocols() -> tuple:
    """The names of the registered protocols."""
    return tuple(_PROTOCOLS)


def headline(values: dict, protocol: str) -> str:
    """The figure a plot title shows: acc@1 (fine-grained) or the first category metric."""
    if protocol == "category":
        key = next((k for k in values if "@" in k and "/" not in k), None)
    else:
        key = "acc@1"
    return f"{key}={values[key]:.3f}" if key in values else ""


def save_ranks(path, ranks, photo_ids, users) -> None:
    """Per-query fine-grained ranks with the photo and user of each query, for later comparison
    of runs (python -m sbirjax.tools.compare)."""
    path = epath.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        np.savez(f, ranks=np.asarray(ranks), photo=np.asarray(photo_ids), user=np.asarray(users))


def save_grid(split, extras, data_config, path, *, num_queries=8, top_k=5, title=""):
    """Retrieval grid PNG for evenly spaced queries of the split.

    Fine-grained: green = the query's own photo, which is also shown in a last column. Category
    level: green = a photo of the query's class; the rank shown is that of the first such photo."""
    q_emb, g_emb = extras["query_emb"], extras["gallery_emb"]
    pick = np.linspace(0, len(q_emb) - 1, num=min(num_queries, len(q_emb))).astype(int)
    d = ((q_emb[pick, None, :] - g_emb[None, :, :]) ** 2).sum(-1)
    order = np.argsort(d, axis=1, kind="stable")
    top = order[:, :top_k]
    sketch_idx = extras["query_index"][pick]
    queries = np.stack([augment.sketch_image(split.sketches[int(i)], data_config.image)
                        for i in sketch_idx])
    photos = np.stack([[augment.photo_image(split.photos[int(j)], data_config.image) for j in row]
                       for row in top])
    if extras.get("relevance") == "category":
        relevant = split.photo_category[order] == split.sketch_category[sketch_idx][:, None]
        ranks = np.where(relevant.any(1), relevant.argmax(1) + 1, 0)
        plots.retrieval_grid(queries, photos, relevant[:, :top_k], ranks, path, title=title)
        return
    truth = split.sketch_photo[sketch_idx]
    truths = np.stack([augment.photo_image(split.photos[int(j)], data_config.image) for j in truth])
    plots.retrieval_grid(queries, photos, top == truth[:, None], extras["ranks"][pick], path,
                         truth_images=truths, title=title + "  (last column: true photo)")


# name -> fn(ctx) writing one kind of evaluation output (config.eval.outputs). ctx holds: split,
# extras, values, step, name (the split's), protocol, workdir, config, method_name.
_OUTPUTS: dict = {}


def output(name: str):
    """Register an output writer under `name` (config.eval.outputs)."""
    return _registrar(_OUTPUTS, name)


def outputs() -> tuple:
    return tuple(_OUTPUTS)


def _latest_copy(path, workdir, name):
    """plots/<kind>_<split>_<step>.png is kept; <workdir>/<kind>_<split>.png is the latest."""
    path.copy(epath.Path(workdir) / name, overwrite=True)


@output("grid")
def _grid(ctx):
    grid = ctx["config"].eval.grid
    if not grid.num_queries:
        return
    name, step = ctx["name"], ctx["step"]
    path = epath.Path(ctx["workdir"]) / "plots" / f"retrieval_{name}_{step:06d}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_grid(ctx["split"], ctx["extras"], ctx["config"].data, path,
              num_queries=grid.num_queries, top_k=grid.top_k,
              title=f"{ctx['method_name']} step {step} {name}: "
                    f"{headline(ctx['values'], ctx['protocol'])}")
    _latest_copy(path, ctx["workdir"], f"retrieval_{name}.png")


@output("ranks")
def _ranks(ctx):
    extras, split = ctx["extras"], ctx["split"]
    if "ranks" not in extras:  # category protocols rank no true photo
        return
    q = extras["query_index"]
    save_ranks(epath.Path(ctx["workdir"]) / "eval" / f"{ctx['name']}_ranks.npz", extras["ranks"],
               split.sketch_photo[q], split.sketch_user[q])


@output("style_consistency")
def _style_consistency(ctx):
    """How much the rank depends on the sketcher: every photo's ranks over its sketches."""
    extras, split, name, step = ctx["extras"], ctx["split"], ctx["name"], ctx["step"]
    if "ranks" not in extras:
        return
    path = epath.Path(ctx["workdir"]) / "plots" / f"style_consistency_{name}_{step:06d}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    plots.style_consistency(extras["ranks"], split.sketch_photo[extras["query_index"]], path,
                            title=f"{ctx['method_name']} step {step} {name}:")
    _latest_copy(path, ctx["workdir"], f"style_consistency_{name}.png")


class Evaluation:
    """Every eval split of a run, as the config names them: each split's protocol
    (`protocol_of`), its outputs (config.eval.outputs), and the checkpoint selection
    (config.eval.select). Called with (step, params), returns {split: metrics}."""

    def __init__(self, config, splits: dict, embed_fns, mesh, workdir, *, method_name: str,
                 report):
        self.config, self.splits, self.embed_fns, self.mesh = config, splits, embed_fns, mesh
        self.workdir, self.method_name, self.report = workdir, method_name, report
        self.selection = Selection(workdir, config.eval.select)

    def __call__(self, step: int, params) -> dict:
        total, results = int(self.config.total_steps), {}
        for name, split in self.splits.items():
            t = time.time()
            proto = protocol_of(self.config.eval, name)
            values, extras = evaluate_split(split, params, self.embed_fns, self.config.data,
                                            self.config.eval, self.mesh, proto)
            results[name] = values
            self.report.write(step, name, values)
            shown = " ".join(f"{k}={v:.4g}" for k, v in values.items() if isinstance(v, float))
            self.report.log(f"[{step:>6d}/{total}] eval {name}: {shown} ({time.time() - t:.1f}s)")
            if jax.process_index() == 0:
                ctx = {"split": split, "extras": extras, "values": values, "step": step,
                       "name": name, "protocol": proto, "workdir": self.workdir,
                       "config": self.config, "method_name": self.method_name}
                for out in self.config.eval.outputs:
                    _OUTPUTS[out](ctx)
        if self.selection.update(step, results):
            self.report.log(f"[{step:>6d}/{total}] best {self.selection.key} so far: "
                            f"{self.selection.best['value']:.4g}")
        return results


class Selection:
    """Model selection on one eval metric, `config.eval.select` = '<split>/<metric>' (higher is
    better), e.g. 'val/map_voc@all' on held-out seen-class data: never select on test classes.
    The best step and every split's metrics at that step go to <workdir>/selection.json, which a
    resumed run reads back."""

    def __init__(self, workdir: str, key: str):
        self.key, self.path = key, epath.Path(workdir) / rundir.SELECTION
        self.best = json.loads(self.path.read_text()) if key and self.path.exists() else None

    def update(self, step: int, results: dict) -> bool:
        if not self.key:
            return False
        split, _, metric = self.key.partition("/")
        if split not in results or metric not in results[split]:
            raise ConfigError(f"config.eval.select={self.key!r}: eval split {split!r} has no "
                              f"metric {metric!r}; it has {sorted(results.get(split, {}))} "
                              f"(splits: {sorted(results)})")
        value = float(results[split][metric])
        if self.best is not None and not value > self.best["value"]:
            return False
        self.best = {"select": self.key, "step": step, "value": value,
                     "results": {k: {m: float(v) for m, v in r.items()}
                                 for k, r in results.items()}}
        if jax.process_index() == 0:
            rundir.write_text_atomic(self.path, json.dumps(self.best, indent=2))
        return True
