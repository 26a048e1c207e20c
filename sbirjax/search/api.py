"""Searcher: a finished run's embed functions, for indexing photos and querying them with sketches.

  from sbirjax.search import Searcher, Index
  s = Searcher.from_run("runs/synthetic_triplet")          # selected checkpoint, else the latest
  s.index("~/Pictures", "runs/synthetic_triplet/photos")   # resumable; returns index.json
  for path, score, rank in s.query("chair.svg", k=5, index="runs/synthetic_triplet/photos"):
      print(rank, score, path)

Images go through the preparation training uses (sbirjax/data/augment.py: photo_image,
sketch_image with the run's rasterisation), then the run's jitted embed function, batches sharded
along their leading axis over every local device.
"""
from __future__ import annotations

import collections
import functools
import hashlib
import importlib.metadata
import json
import os

import jax
import ml_collections
import numpy as np

from sbirjax import run_state, rundir, sharding, steps
from sbirjax.data import augment
from sbirjax.search import gallery, index as index_lib, inputs, query as query_lib
from sbirjax.search.errors import SearchError

# What makes two runs' embeddings comparable: the model, its input and its initialisation.
HASHED_KEYS = ("method", "seed", "model", "data.name", "data.image", "data.text")
TEXT_METHODS = ("masbir",)


def read_run_config(workdir: str) -> ml_collections.ConfigDict:
    path = os.path.join(workdir, rundir.CONFIG)
    if not os.path.isfile(path):
        raise SearchError(f"{workdir}: not an sbirjax run ({path} not found); give the --workdir "
                          "of a training run (python -m sbirjax.main --config=... --workdir=...)")
    with open(path) as f:
        return ml_collections.ConfigDict(json.load(f))


def config_hash(config) -> str:
    """sha256 (16 hex digits) of the HASHED_KEYS of a run's config."""
    d = config.to_dict()
    picked = {}
    for key in HASHED_KEYS:
        value = d
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        picked[key] = value
    text = json.dumps(picked, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def sbirjax_version() -> str:
    try:
        return importlib.metadata.version("sbirjax")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class Searcher:
    def __init__(self, run_dir, config, method, module, params, step, *, batch_size=64,
                 query_modality="sketch", log=print):
        if query_modality == "photo" or query_modality not in method.embed_modalities:
            raise SearchError(f"query modality {query_modality!r}: {method.name} queries with one "
                              f"of {[m for m in method.embed_modalities if m != 'photo']}")
        self.run_dir, self.config, self.method, self.module = run_dir, config, method, module
        self.step, self.query_modality, self.log = step, query_modality, log
        self.config_hash = config_hash(config)
        # This process's devices only: shards of an index run as independent processes.
        self.mesh = sharding.make_mesh(-1, devices=jax.local_devices())
        self.num_devices = self.mesh.devices.size
        self.batch_size = -(-max(batch_size, 1) // self.num_devices) * self.num_devices
        replicated = sharding.replicated(self.mesh)
        self.batch_sharding = sharding.batch_sharding(self.mesh)
        self.params = jax.device_put(params, replicated)
        self._embed = {m: jax.jit(functools.partial(steps.embed_step, method=method, module=module,
                                                    modality=m),
                                  in_shardings=(replicated, self.batch_sharding),
                                  out_shardings=self.batch_sharding)
                       for m in method.embed_modalities}
        self.embed_calls = collections.Counter()  # modality -> batches embedded
        self._text = None

    @classmethod
    def from_run(cls, workdir: str, step: int | None = None, **kwargs) -> "Searcher":
        """The run's params at `step` (default: the selected checkpoint, else the latest)."""
        workdir = os.path.abspath(os.path.expanduser(workdir))
        config = read_run_config(workdir)
        restore = ml_collections.ConfigDict(config.to_dict())
        restore.mesh.num_devices, restore.mesh.fsdp = -1, 1  # params come back whole, on the host
        log = kwargs.get("log", print)
        try:
            method, module, params, step = run_state.restore_params(restore, workdir, step, log=log)
        except ValueError as e:
            raise SearchError(f"{workdir}: {e}") from None
        return cls(workdir, config, method, module, params, step, **kwargs)

    # ------------------------------------------------------------------ embedding
    @property
    def image_config(self):
        return self.config.data.image

    def embed_images(self, images: np.ndarray, modality: str, *, wait: bool = True):
        """uint8 (n, S, S, 3) -> float32 (n, d); without `wait`, a padded device array."""
        n = len(images)
        size = self.num_devices if n <= self.num_devices else self.batch_size
        if n > size:
            return np.concatenate([self.embed_images(images[i:i + size], modality)
                                   for i in range(0, n, size)])
        if n < size:  # padded to one of two shapes: one compilation each
            images = np.concatenate([images, np.repeat(images[-1:], size - n, 0)])
        self.embed_calls[modality] += 1
        out = self._embed[modality](self.params, jax.device_put(images, self.batch_sharding))
        return np.asarray(out)[:n] if wait else out

    def embed_fn(self, modality: str):
        """The jitted (params, images) -> embeddings of `modality`; images sharded along their
        leading axis over the devices (a multiple of num_devices rows)."""
        return self._embed[modality]

    def prepare_photo(self, image: np.ndarray) -> np.ndarray:
        return augment.photo_image({"image": image}, self.image_config)

    def prepare_sketch(self, record: dict) -> np.ndarray:
        if "image" in record and self.image_config.raster.polarity == "white_on_black":
            record = {"image": 255 - np.asarray(record["image"], np.uint8)}  # drawn black on white
        return augment.sketch_image(record, self.image_config)

    def sketch_image(self, sketch, *, line: int = 0) -> np.ndarray:
        """The model's input image of a query sketch (a path, strokes or an image)."""
        return self.prepare_sketch(inputs.as_record(sketch, self.image_config.raster.canvas,
                                                    line=line))

    def embed_text(self, texts) -> np.ndarray:
        """float32 (n, d): MA-SBIR's text tower on the run's tokenizer."""
        if self.method.name not in TEXT_METHODS:
            raise SearchError(f"--text needs an MA-SBIR run; {self.run_dir} is a "
                              f"{self.method.name} run, which has no text tower: query with a "
                              "sketch only")
        if self._text is None:
            self._text = self._text_encoder()
        tokenizer, encode = self._text
        from sbirjax.data import clip_tokenizer
        ids, mask = clip_tokenizer.tokenize(tokenizer, list(texts),
                                            self.config.data.text.max_length)
        return np.asarray(encode(self.params, ids, mask))

    def _text_encoder(self):
        from sbirjax.data import captions
        from sbirjax.methods import masbir
        text = self.config.data.text
        if text.tokenizer:
            tokenizer = captions.load_tokenizer(text, [])
        else:  # the vocabulary training generated from the captions of every class
            from sbirjax.data import tfds_io
            names = tfds_io.builders(self.config.data)[0].info.features["category"].names
            caps = captions.captions(names, text.templates)
            tokenizer = captions.load_tokenizer(
                text, [t for m in captions.MODALITY_NAMES for t in caps[m]])
        encode = jax.jit(lambda p, ids, mask: self.module.apply(
            {"params": p}, ids, mask, method=masbir.MaSbir.encode_texts))
        return tokenizer, encode

    @property
    def embedding_dim(self) -> int:
        s = self.image_config.size
        shape = jax.ShapeDtypeStruct((self.num_devices, s, s, 3), np.uint8)
        return int(jax.eval_shape(self._embed["photo"], self.params, shape).shape[1])

    # ------------------------------------------------------------------ indexing
    def index(self, photos_dir: str | None, out: str, *, split: str | None = None,
              chunk_size: int = 1024, shard: tuple[int, int] = (0, 1),
              wait_s: float = 86400.0) -> dict:
        """Embed the photos under `photos_dir` (or the run dataset's photo `split`) into `out`;
        `shard=(i, n)`: only every n-th photo from the i-th, shard 0 writing the index once all
        shards are done (search/index.py)."""
        i, n = shard
        if not (isinstance(i, int) and isinstance(n, int) and n >= 1 and 0 <= i < n):
            raise SearchError(f"--shard={i}/{n}: give I/N with 0 <= I < N, e.g. --shard=0/2")
        if (photos_dir is None) == (split is None):
            raise SearchError("give a photo folder (--photos=DIR) or a split (--split=NAME), "
                              "not both")
        if split is not None:
            try:
                items = gallery.split_items(self.config.data, split, log=self.log)
            except ValueError as e:
                raise SearchError(f"--split={split}: {e}") from None
            source = f"{gallery.TFDS_PREFIX}{self.config.data.name}/{split}"
        else:
            if not os.path.isdir(photos_dir):
                raise SearchError(f"{photos_dir}: no such folder; give --photos=DIR, a folder of "
                                  f"{'/'.join(gallery.PHOTO_EXTENSIONS)} images")
            items = gallery.folder_items(photos_dir)
            source = os.path.abspath(photos_dir)
        meta = {"run": self.run_dir, "step": int(self.step), "method": self.method.name,
                "modality": "photo", "embedding_dim": self.embedding_dim, "similarity": "cosine",
                "config_hash": self.config_hash, "image_size": int(self.image_config.size),
                "sbirjax_version": sbirjax_version(), "source": source}
        chunk = max(self.batch_size, chunk_size // self.batch_size * self.batch_size)
        return index_lib.build(items, lambda x: self.embed_images(x, "photo", wait=False),
                               self.prepare_photo, out, meta, batch_size=self.batch_size,
                               chunk_size=chunk, log=self.log, shard=shard, wait_s=wait_s)

    def load_index(self, index) -> index_lib.Index:
        """An Index (or its path) built by this run at this step."""
        if not isinstance(index, index_lib.Index):
            index = index_lib.Index.load(index)
        meta = index.meta
        if (meta.get("config_hash"), meta.get("step")) != (self.config_hash, self.step):
            raise SearchError(
                f"{index.path}: built by another model ({meta.get('run')} step {meta.get('step')}, "
                f"config hash {meta.get('config_hash')}), not {self.run_dir} step {self.step} "
                f"(hash {self.config_hash}); query it with Searcher.from_run({meta.get('run')!r}, "
                f"step={meta.get('step')}) or build a new index with this run")
        return index

    # ------------------------------------------------------------------ querying
    def query_vectors(self, sketches=(), texts=(), *, line: int = 0) -> np.ndarray:
        """(n, d) unit query vectors: one per sketch, one per text, or, given both (equal
        numbers), the mean of each pair's unit vectors renormalised (sbirjax's choice)."""
        sketches, texts = list(sketches), list(texts)
        if not sketches and not texts:
            raise SearchError("nothing to search with: give a sketch or a text")
        if sketches and texts and len(sketches) != len(texts):
            raise SearchError(f"{len(sketches)} sketches and {len(texts)} texts: "
                              "pair them one to one")
        q = t = None
        if texts:  # first: a run without a text tower fails before any sketch work
            t = query_lib.normalize(self.embed_text(texts))
        if sketches:
            images = np.stack([self.sketch_image(s, line=line) for s in sketches])
            q = query_lib.normalize(self.embed_images(images, self.query_modality))
        return t if q is None else q if t is None else query_lib.combine(q, t)

    def search(self, vectors: np.ndarray, k: int, index) -> list[list[tuple[str, float, int]]]:
        """The top k of each query vector: [(path, score, rank from 1)] per query."""
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise SearchError(f"k={k}: ask for at least one result (--k=10)")
        index = self.load_index(index)
        if len(index.rows) == 0:
            raise SearchError(f"{index.path}: the index holds no photos (see its skipped.jsonl)")
        scores, idx = query_lib.top_k(np.asarray(vectors, np.float32), index.embeddings,
                                      k=min(int(k), len(index.rows)), mesh=self.mesh)
        scores, idx = np.asarray(scores), np.asarray(idx)
        return [[(index.rows[j]["path"], float(s), r + 1)
                 for r, (s, j) in enumerate(zip(srow, jrow))]
                for srow, jrow in zip(scores, idx)]

    def query(self, sketch=None, k: int = 10, index=None, *, text: str | None = None,
              line: int = 0) -> list[tuple[str, float, int]]:
        """[(path, score, rank)] of the k photos most like the sketch (and/or the text)."""
        if index is None:
            raise SearchError("give index=PATH (an index folder) or an Index")
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise SearchError(f"k={k}: ask for at least one result (--k=10)")
        sketches = [] if sketch is None else [sketch]
        texts = [] if text is None else [text]
        return self.search(self.query_vectors(sketches, texts, line=line), k, index)[0]

    def grid(self, results, out: str, *, sketch=None, text: str | None = None,
             line: int = 0) -> None:
        """A PNG: the query as the model saw it, then each result with its rank and score."""
        if sketch is not None:
            query_image = self.sketch_image(sketch, line=line)
        else:
            query_image = np.full((8, 8, 3), 255, np.uint8)
        title = "query" if text is None else "query + text" if sketch is not None else "text"
        images = gallery.display_images([p for p, _, _ in results], self.config.data)
        query_lib.grid(query_image, results, images, out, title=title)
