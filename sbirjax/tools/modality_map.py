"""MA-SBIR's modality removal, seen and measured: sketch, photo and caption embeddings before
(z, CLIP's normalised projection) and after (s = z - m[modality]) subtracting the learned modality
vectors, as t-SNE maps and as neighbourhood figures.

  python -m sbirjax.tools.modality_map --config=configs/synthetic_masbir.py
                                       --workdir=runs/synthetic_masbir
                                       [--split=zs] [--per_class=40] [--step=N] [--perplexity=30]

The config (with the same overrides as the run) rebuilds the model and the checkpoint comes from
the workdir (sbirjax/run_state.py): --step, else the step in selection.json when its checkpoint is
kept, else the latest; a run without checkpoints (the `:frozen` row) is re-initialised as that run
was. Points: up to
--per_class sketches and photos of each class of the eval split (seeded pick) and each class's two
captions (its sketch template and its photo template, tokenised with the training vocabulary).

Writes <workdir>/modality_map_<split>.png (left: z, right: s; colour = class, marker = modality)
and <workdir>/modality_map_<split>.json. The numbers are computed in the embedding space itself
(cosine similarity over the images, L2-normalised), never in the 2-D map:
  same_modality@k   mean fraction of an image's k nearest images that share its modality (sketch or
                    photo); the share of that modality in the set is what no modality signal gives
  same_class@k      mean fraction of an image's k nearest images that share its class
  sketch_to_photo_class@k   per sketch, fraction of its k nearest photos of its class (a P@k)
  modality_gap      distance between the mean sketch and the mean photo embedding (Liang et al.,
                    2022), and between the mean image and the mean caption embedding
"""
from __future__ import annotations

import json
import os

import numpy as np
from absl import flags

from sbirjax import errors
from sbirjax.data import splits
from sbirjax.errors import ConfigError

from sbirjax.tools import tsne

FLAGS = flags.FLAGS
K = 10
MARKERS = {"photo": "o", "sketch": "^", "photo caption": "*", "sketch caption": "P"}


def pick(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Up to per_class indices of every class, in index order (the hold-out's seeded pick)."""
    return splits.per_class_pick(labels, seed, lambda n: min(per_class, n))


def remove_modality(z: np.ndarray, table: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """s = z - m[row], L2-normalised (the semantic vectors MA-SBIR compares)."""
    s = z - table[rows]
    return s / np.linalg.norm(s, axis=1, keepdims=True)


def neighbour_stats(emb, modality, label, k: int = K) -> dict:
    """Neighbourhood figures (see the module doc) of image embeddings `emb` (n, d), with
    modality names ('sketch' / 'photo') and class labels per row."""
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    modality, label = np.asarray(modality), np.asarray(label)
    n = len(emb)
    if n <= k:
        raise ValueError(f"{n} images: need more than k = {k}")
    sim = emb @ emb.T
    np.fill_diagonal(sim, -np.inf)
    nn = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    sk, ph = modality == "sketch", modality == "photo"
    sk_to_ph = np.argsort(-sim[np.ix_(sk, ph)], axis=1, kind="stable")[:, :k]
    mean = lambda rows: emb[rows].mean(axis=0)
    return {
        f"same_modality@{k}": float(np.mean(modality[nn] == modality[:, None])),
        "same_modality_chance": float(np.mean(sk) ** 2 + np.mean(ph) ** 2),
        f"same_class@{k}": float(np.mean(label[nn] == label[:, None])),
        f"sketch_to_photo_class@{k}": float(np.mean(label[ph][sk_to_ph] == label[sk][:, None])),
        "modality_gap": float(np.linalg.norm(mean(sk) - mean(ph))),
    }


def caption_gap(img_emb, txt_emb) -> float:
    unit = lambda e: e / np.linalg.norm(e, axis=1, keepdims=True)
    return float(np.linalg.norm(unit(img_emb).mean(0) - unit(txt_emb).mean(0)))


def plot(maps: dict, modality, label, class_names, path: str, *, title: str = "",
         notes: dict | None = None) -> None:
    """maps: {panel title: (n, 2)}; one scatter per panel, colour = class (label indexes
    class_names), marker = modality; notes: {panel title: text} shown under the panel."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modality, label = np.asarray(modality), np.asarray(label)
    colours = plt.get_cmap("tab10" if len(class_names) <= 10 else "tab20")
    fig, axes = plt.subplots(1, len(maps), figsize=(6.2 * len(maps), 6.8), dpi=110, squeeze=False)
    for ax, (name, y) in zip(axes[0], maps.items()):
        for kind, marker in MARKERS.items():
            rows = modality == kind
            if not rows.any():
                continue
            caption = "caption" in kind
            ax.scatter(y[rows, 0], y[rows, 1], c=[colours(int(c) % colours.N) for c in label[rows]],
                       marker=marker, s=170 if caption else 16, alpha=1.0 if caption else 0.7,
                       edgecolors="black" if caption else "none", linewidths=0.8, label=kind,
                       zorder=3 if caption else 2)
        ax.set_title(name, fontsize=10)
        if notes and name in notes:
            ax.set_xlabel(notes[name], fontsize=7, family="monospace", loc="left")
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [plt.Line2D([], [], marker=m, ls="", color="grey", markersize=8, label=kind)
               for kind, m in MARKERS.items() if (modality == kind).any()]
    handles += [plt.Line2D([], [], marker="s", ls="", color=colours(c % colours.N), markersize=8,
                           label=str(name)) for c, name in enumerate(class_names)]
    ncol = 4
    rows = -(-len(handles) // ncol)
    fig.set_size_inches(fig.get_size_inches()[0], 6.8 + 0.22 * rows)
    fig.legend(handles=handles, loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.04 * rows / (1 + 0.04 * rows) + 0.01, 1, 0.96))
    from etils import epath
    with epath.Path(path).open("wb") as f:
        fig.savefig(f, format="png")
    plt.close(fig)


def compute(config, workdir, *, split_name="", per_class=40, step=None, perplexity=30.0,
            log=print) -> dict:
    """Embed, measure, map and plot; returns what goes into the JSON file."""
    import jax
    from sbirjax import run_state
    from sbirjax.data import augment, captions, clip_tokenizer, tfds_io
    from sbirjax.methods import masbir

    train_split, evals = tfds_io.load_data(config, log=log)
    names = [n for n in evals if n != "val"] or list(evals)
    split_name = split_name or ("zs" if "zs" in evals else names[0])
    if split_name not in evals:
        raise ConfigError(f"--split={split_name!r}: the config's eval splits are {sorted(evals)}")
    split = evals[split_name]
    method, module, params, step = run_state.restore_params(config, workdir, step, log=log)
    if method.name != "masbir":
        raise ValueError(f"{workdir}: config.method is {config.method!r}; the modality map is for "
                         "MA-SBIR runs (configs/*masbir*.py)")

    sk = pick(split.sketch_category, per_class, config.seed)
    ph = pick(split.photo_category, per_class, config.seed + 1)
    images = np.stack([augment.sketch_image(split.sketches[int(i)], config.data.image) for i in sk]
                      + [augment.photo_image(split.photos[int(j)], config.data.image) for j in ph])
    img_modality = np.array(["sketch"] * len(sk) + ["photo"] * len(ph))
    # Classes present in the split (a split's category_names may list every class of the dataset),
    # relabelled 0..C-1 in that order.
    present = np.unique(np.concatenate([split.sketch_category[sk], split.photo_category[ph]]))
    class_names = [str(split.category_names[c]) for c in present]
    img_label = np.searchsorted(present, np.concatenate([split.sketch_category[sk],
                                                         split.photo_category[ph]]))
    encode = jax.jit(lambda p, x: module.apply({"params": p}, x,
                                               method=masbir.MaSbir.encode_images))
    z_img = np.concatenate([np.asarray(encode(params, images[i:i + 128]))
                            for i in range(0, len(images), 128)])

    # Captions of the split's classes with the TRAINING vocabulary (a generated tokenizer is a
    # function of the texts it covers; the unseen classes' words all occur in training).
    text = config.data.text
    vocab_texts = [t for caps in captions.captions(train_split.category_names,
                                                   text.templates).values() for t in caps]
    tokenizer = captions.load_tokenizer(text, vocab_texts)  # a snapshot ignores the texts
    caps = captions.captions(class_names, text.templates)
    txt_kind = [m for m in captions.MODALITY_NAMES for _ in caps[m]]
    ids, mask = clip_tokenizer.tokenize(tokenizer, [t for m in captions.MODALITY_NAMES
                                                    for t in caps[m]], text.max_length)
    z_txt = np.asarray(module.apply({"params": params}, ids, mask,
                                    method=masbir.MaSbir.encode_texts))
    txt_label = np.concatenate([np.arange(len(class_names))] * 2)

    table = np.asarray(params["modality"])
    img_rows = np.where(img_modality == "sketch", masbir.SKETCH, masbir.PHOTO)
    txt_rows = np.array([text.modality[m] for m in txt_kind])
    s_img, s_txt = remove_modality(z_img, table, img_rows), remove_modality(z_txt, table, txt_rows)

    result = {"workdir": workdir, "split": split_name, "step": int(step), "k": K,
              "num_sketches": int(len(sk)), "num_photos": int(len(ph)),
              "num_captions": int(len(z_txt)), "class_names": class_names}
    modality = np.concatenate([img_modality, [f"{m} caption" for m in txt_kind]])
    label = np.concatenate([img_label, txt_label])
    maps, notes = {}, {}
    for key, title, e_img, e_txt in (("before", "before: z (CLIP embedding)", z_img, z_txt),
                                     ("after", "after: s = z - m[modality]", s_img, s_txt)):
        stats = neighbour_stats(e_img, img_modality, img_label)
        stats["image_caption_gap"] = caption_gap(e_img, e_txt)
        y, info = tsne.embed(np.concatenate([e_img, e_txt]), perplexity=perplexity,
                             seed=config.seed)
        result[key] = {**stats, "tsne_kl": info["kl"], "tsne_perplexity": info["perplexity"]}
        maps[title] = y
        notes[title] = "\n".join(f"{n} = {v:.3f}" for n, v in stats.items())
        log(f"{key}: " + ", ".join(f"{n}={v:.3f}" for n, v in stats.items()))
    out = os.path.join(workdir, f"modality_map_{split_name}")
    plot(maps, modality, label, class_names, out + ".png", notes=notes,
         title=f"{config.method} {os.path.basename(os.path.normpath(workdir))} step {step}, "
               f"split {split_name}: t-SNE of sketch, photo and caption embeddings")
    with open(out + ".json", "w") as f:
        json.dump(result, f, indent=2)
    log(f"wrote {out}.png and {out}.json")
    return result


def define_flags():
    from sbirjax import run_state
    run_state.define_run_flags()
    flags.DEFINE_string("split", "", "eval split (config.eval.splits); default: 'zs' if there "
                                     "is one, else the first one after 'val'")
    flags.DEFINE_integer("per_class", 40, "sketches and photos drawn per class")
    flags.DEFINE_float("perplexity", 30.0, "t-SNE perplexity")


def main(argv):
    from sbirjax import run_state
    run_state.start_tool(argv)
    compute(FLAGS.config, FLAGS.workdir, split_name=FLAGS.split, per_class=FLAGS.per_class,
            step=FLAGS.step, perplexity=FLAGS.perplexity)


if __name__ == "__main__":
    define_flags()
    errors.run(main)
