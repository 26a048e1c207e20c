"""The index folder: plain files that numpy, FAISS or ScaNN read without sbirjax (docs/search.md).

  embeddings.npy   float32 (N, d), one row per photo, L2-normalised: similarity = dot product
  manifest.jsonl   row i: {"path", "width", "height", "bytes"} of embeddings[i]
  index.json       run, step, method, embedding_dim, similarity, config_hash, image_size,
                   sbirjax_version, count, source; written last, so its presence means complete
  skipped.jsonl    {"path", "reason"} of every file that could not be read
  chunks/          the embeddings as they were computed (NNNNNN.npy + NNNNNN.jsonl, the .jsonl
                   written last) and model.json; a rerun reuses every row whose key (path, size,
                   mtime) is unchanged. Safe to delete once index.json exists (a later run then
                   embeds everything again). With shards: shard_<i>_of_<n>.json, shard i's end.

Shards: `build(..., shard=(i, n))` embeds every n-th photo starting at the i-th, into the same
chunks/ folder (chunk numbers congruent to i mod n, so shards never write the same file). Each
shard then writes chunks/shard_<i>_of_<n>.json: a digest of the photo list it saw and its skipped
files (it deletes its own marker when it starts). Shard 0 waits for all n markers, refuses
markers of another photo list, and writes the index; the others stop after their share. Shards may
run on one machine or on several sharing the folder under the same absolute path, started in any
order, each resumable like a single run.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import hashlib
import os
import time
import uuid

import numpy as np

from sbirjax.search.errors import SearchError

FORMAT_VERSION = 1
INDEX_FILES = ("embeddings.npy", "manifest.jsonl", "index.json")


@dataclasses.dataclass(frozen=True)
class Index:
    path: str
    embeddings: np.ndarray  # float32 (N, d), memory-mapped from embeddings.npy
    rows: list              # manifest rows
    meta: dict              # index.json

    @classmethod
    def load(cls, path: str) -> "Index":
        missing = [f for f in INDEX_FILES if not os.path.isfile(os.path.join(path, f))]
        if missing:
            raise SearchError(f"{path}: not a finished sbirjax index ({', '.join(missing)} "
                              "missing); build it with: python -m sbirjax.search index "
                              f"--workdir=RUN --photos=DIR --out={path}")
        with open(os.path.join(path, "index.json")) as f:
            meta = json.load(f)
        embeddings = np.load(os.path.join(path, "embeddings.npy"), mmap_mode="r",
                             allow_pickle=False)
        rows = read_jsonl(os.path.join(path, "manifest.jsonl"))
        if embeddings.shape[0] != len(rows) or len(rows) != meta.get("count"):
            raise SearchError(f"{path}: embeddings.npy has {embeddings.shape[0]} rows, "
                              f"manifest.jsonl {len(rows)}, index.json says {meta.get('count')}; "
                              "the index is damaged: build it again")
        return cls(path, embeddings, rows, meta)

    @property
    def paths(self) -> list[str]:
        return [r["path"] for r in self.rows]


def read_jsonl(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _write_atomic(path: str, write) -> None:
    tmp = f"{path}.{os.getpid()}.{uuid.uuid4().hex}.tmp"  # shards may write the same file at once
    with open(tmp, "wb") as f:
        write(f)
    os.replace(tmp, path)


def _jsonl_bytes(rows) -> bytes:
    return "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode()


# --------------------------------------------------------------------------- chunks (resume)
def _open_chunks(out: str, model: dict, shard: tuple[int, int] = (0, 1)) -> tuple[str, dict, int]:
    """(chunk folder, {key: (row, embedding)} of every committed chunk, this shard's next chunk
    number: the first above every existing one that is congruent to its index mod the count)."""
    folder = os.path.join(out, "chunks")
    os.makedirs(folder, exist_ok=True)
    model_file = os.path.join(folder, "model.json")
    if os.path.exists(model_file):
        with open(model_file) as f:
            old = json.load(f)
        if (old.get("config_hash"), old.get("step")) != (model["config_hash"], model["step"]):
            raise SearchError(
                f"{out} holds embeddings of another model ({old.get('run')} "
                f"step {old.get('step')}, "
                f"config hash {old.get('config_hash')}); give a new --out or delete {out}")
    else:
        _write_atomic(model_file, lambda f: f.write(json.dumps(model, indent=2).encode()))
    cache, numbers = {}, []
    for name in sorted(os.listdir(folder)):
        stem, ext = os.path.splitext(name)
        if ext != ".jsonl" or not stem.isdigit():
            continue  # .npy without its .jsonl: a chunk cut short, ignored
        rows = read_jsonl(os.path.join(folder, name))
        emb = np.load(os.path.join(folder, stem + ".npy"), allow_pickle=False)
        numbers.append(int(stem))
        for row, e in zip(rows, emb):
            cache[row["key"]] = (row, e)
    first = max(numbers, default=-1) + 1
    index, count = shard
    return folder, cache, first + (index - first) % count


def _write_chunk(folder: str, number: int, rows: list, embeddings: list) -> None:
    stem = os.path.join(folder, f"{number:06d}")
    _write_atomic(stem + ".npy", lambda f: np.save(f, np.stack(embeddings).astype(np.float32)))
    _write_atomic(stem + ".jsonl", lambda f: f.write(_jsonl_bytes(rows)))  # the commit


# --------------------------------------------------------------------------- building
class Progress:
    """'indexed n/N images (new, reused, skipped) | images/s | ETA', at most every `every` s."""

    def __init__(self, total: int, reused: int, log, every: float = 2.0):
        self.total, self.reused, self.log, self.every = total, reused, log, every
        self.start = self.last = time.time()

    def update(self, new: int, skipped: int, final: bool = False) -> None:
        now = time.time()
        if not final and now - self.last < self.every:
            return
        self.last = now
        done = self.reused + new + skipped
        rate = new / max(now - self.start, 1e-9)
        eta = (self.total - done) / rate if rate > 0 else float("inf")
        eta_text = time.strftime("%H:%M:%S", time.gmtime(eta)) if eta < 1e7 else "?"
        self.log(f"indexed {done}/{self.total} images ({new} new, {self.reused} reused, {skipped} "
                 f"skipped) | {rate:.1f} images/s | ETA {eta_text}")


def _decode(item, prepare):
    try:
        image, info = item.load()
        return prepare(image), info, None
    except Exception as e:  # any unreadable file is skipped and listed, never fatal
        return None, None, " ".join(str(e).split()) or type(e).__name__


def build(items, embed, prepare, out: str, meta: dict, *, batch_size: int, chunk_size: int,
          log=print, threads: int = 4, shard: tuple[int, int] = (0, 1),
          wait_s: float = 86400.0, poll_s: float = 2.0) -> dict:
    """Embed every item of this shard not yet in out/chunks, then (shard 0) write the index
    files; returns index.json's content (other shards: the model fields and their own counts).

    embed(uint8 (b, S, S, 3)) -> an array whose first b rows are the embeddings (padding after);
    prepare(uint8 (H, W, 3)) -> the model's input image, as training prepares photos."""
    index, count = shard
    os.makedirs(out, exist_ok=True)
    model = {k: meta[k] for k in ("run", "step", "config_hash")}
    folder, cache, number = _open_chunks(out, model, shard)
    marker = os.path.join(folder, f"shard_{index}_of_{count}.json")
    if count > 1 and os.path.exists(marker):
        os.remove(marker)  # this shard's result from an earlier run is not final until rewritten
    mine = items[index::count]
    todo = [it for it in mine if it.key not in cache]
    progress = Progress(len(mine), len(mine) - len(todo), log)
    skipped, pending_rows, pending_emb, new, attempted = [], [], [], 0, 0
    batches = [todo[i:i + batch_size] for i in range(0, len(todo), batch_size)]
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        # Decoding of batch i + 1 overlaps the device's work on batch i.
        submit = lambda b: [pool.submit(_decode, it, prepare) for it in b]
        futures = submit(batches[0]) if batches else []
        for i, batch in enumerate(batches):
            decoded = [f.result() for f in futures]
            futures = submit(batches[i + 1]) if i + 1 < len(batches) else []
            ok = [(it, d) for it, d in zip(batch, decoded) if d[2] is None]
            skipped += [{"path": it.path, "reason": d[2], "key": it.key}
                        for it, d in zip(batch, decoded) if d[2] is not None]
            if ok:
                emb = np.asarray(embed(np.stack([d[0] for _, d in ok])))[:len(ok)]
                for (it, d), e in zip(ok, emb):
                    pending_rows.append({"key": it.key, "path": it.path, **d[1]})
                    pending_emb.append(e)
                new += len(ok)
            attempted += len(batch)
            if attempted >= chunk_size and pending_rows:
                _write_chunk(folder, number, pending_rows, pending_emb)
                number, pending_rows, pending_emb, attempted = number + count, [], [], 0
            progress.update(new, len(skipped))
    if pending_rows:
        _write_chunk(folder, number, pending_rows, pending_emb)
    progress.update(new, len(skipped), final=True)
    if count == 1:
        _, cache, _ = _open_chunks(out, model)
        return _finish(items, cache, skipped, out, meta)
    digest = _items_digest(items)
    _write_atomic(marker, lambda f: f.write(json.dumps(
        {"digest": digest, "count": len(items), "skipped": skipped}).encode()))
    if index != 0:
        log(f"shard {index}/{count} done: {new} embedded, {len(skipped)} skipped; shard 0 "
            "writes the index")
        return {**meta, "count": new, "skipped": len(skipped), "shard": list(shard)}
    return _finish_shards(items, out, model, meta, count, digest, log, wait_s, poll_s)


def _items_digest(items) -> str:
    """Names the exact photo list (paths, sizes, mtimes, order) a shard was given."""
    h = hashlib.sha256()
    for it in items:
        h.update(it.key.encode() + b"\n")
    return h.hexdigest()


def _finish_shards(items, out, model, meta, count, digest, log, wait_s, poll_s) -> dict:
    """Shard 0: wait until every shard has left a marker for this photo list, then write.

    Polls only the small marker files; the chunks are read once, at the end. A marker of another
    photo list is waited past: it may be a shard's result from before the folder changed, about
    to be replaced; if it stays, the shards see different folders, and the timeout says so."""
    folder = os.path.join(out, "chunks")
    paths = [os.path.join(folder, f"shard_{i}_of_{count}.json") for i in range(count)]
    deadline, last_log = time.time() + wait_s, 0.0
    while True:
        done = {i: json.load(open(p)) for i, p in enumerate(paths) if os.path.exists(p)}
        other = sorted(i for i, d in done.items() if d["digest"] != digest)
        if len(done) == count and not other:
            break
        waiting = sorted(set(range(count)) - set(done))
        if time.time() > deadline:
            raise SearchError(
                f"{out}: after {wait_s:.0f} s, shards {waiting} of --shard=I/{count} have not "
                f"finished and shards {other} indexed another photo list; give every shard the "
                "same --photos folder under the same absolute path, unchanged while they run, "
                "and run them again (every shard resumes)")
        if time.time() - last_log > 30:
            log(f"shard 0/{count}: waiting for shards {waiting}"
                + (f"; shards {other} have results for another photo list" if other else ""))
            last_log = time.time()
        time.sleep(poll_s)
    _, cache, _ = _open_chunks(out, model)
    skipped = {r["key"]: r for d in done.values() for r in d["skipped"]}
    missing = [it.path for it in items if it.key not in cache and it.key not in skipped]
    if missing:
        raise SearchError(f"{out}: {len(missing)} photos (e.g. {missing[0]}) are in no shard's "
                          f"results; run all {count} shards again (every shard resumes)")
    return _finish(items, cache, [skipped[it.key] for it in items if it.key not in cache], out,
                   meta)


def _finish(items, cache, skipped, out, meta) -> dict:
    kept = [cache[it.key] for it in items if it.key in cache]
    rows = [{k: v for k, v in row.items() if k != "key"} for row, _ in kept]
    dim = int(meta["embedding_dim"])
    emb = (np.stack([e for _, e in kept]).astype(np.float32) if kept
           else np.zeros((0, dim), np.float32))
    emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)  # exactly unit rows
    meta = {**meta, "format_version": FORMAT_VERSION, "count": len(rows), "skipped": len(skipped)}
    if os.path.exists(os.path.join(out, "index.json")):
        os.remove(os.path.join(out, "index.json"))  # incomplete until written again, last
    _write_atomic(os.path.join(out, "embeddings.npy"), lambda f: np.save(f, emb))
    _write_atomic(os.path.join(out, "manifest.jsonl"), lambda f: f.write(_jsonl_bytes(rows)))
    skipped = [{k: v for k, v in r.items() if k != "key"} for r in skipped]
    _write_atomic(os.path.join(out, "skipped.jsonl"), lambda f: f.write(_jsonl_bytes(skipped)))
    _write_atomic(os.path.join(out, "index.json"),
                  lambda f: f.write(json.dumps(meta, indent=2, sort_keys=True).encode()))
    return meta
