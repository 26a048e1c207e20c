"""The two commands of `python -m sbirjax.search`, as functions: options in, exit status out.

Exit status: 0 done; 2 a bad input (one line on stderr naming the file and the fix, no traceback).
Results go to stdout, progress lines to stderr.
"""
from __future__ import annotations

import json
import os
import sys

from sbirjax.search.errors import SearchError

COMMANDS = ("index", "query", "serve", "onthefly")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(command: str, **options) -> int:
    """Run `command` (one of COMMANDS) with the options its flags give; the exit status."""
    try:
        if command not in COMMANDS:
            raise SearchError(f"unknown command {command!r}: use `python -m sbirjax.search` "
                              f"{', '.join(COMMANDS)} (docs/search.md)")
        return {"index": index_command, "query": query_command, "serve": serve_command,
                "onthefly": onthefly_command}[command](**options)
    except SearchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def parse_shard(text: str | None) -> tuple[int, int]:
    """'I/N' -> (I, N); None: the whole index in this process (0/1)."""
    if text is None:
        return 0, 1
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise SearchError(f"--shard={text}: give I/N, e.g. --shard=0/2 and --shard=1/2") from None
    if not (n >= 1 and 0 <= i < n):
        raise SearchError(f"--shard={text}: give I/N with 0 <= I < N, e.g. --shard=0/2")
    return i, n


def index_command(*, workdir, out, photos=None, split=None, step=None, batch_size=64,
                  shard=None, **_unused) -> int:
    from sbirjax.search.api import Searcher
    if not workdir or not out:
        raise SearchError("index needs --workdir=RUN and --out=INDEX "
                          "(and --photos=DIR or --split=NAME)")
    if (photos is None) == (split is None):
        raise SearchError("index needs exactly one of --photos=DIR and --split=NAME")
    if photos is not None and not os.path.isdir(photos):
        raise SearchError(f"{photos}: no such folder; give --photos=DIR, a folder of photos")
    shard = parse_shard(shard)
    searcher = Searcher.from_run(workdir, step, batch_size=batch_size, log=_log)
    meta = searcher.index(photos, out, split=split, shard=shard)
    if shard[0] == 0:
        _log(f"index of {meta['count']} photos ({meta['skipped']} skipped) written to {out} "
             f"(step {meta['step']}, {meta['embedding_dim']}-d, {meta['similarity']})")
    return 0


def sketch_files(folder: str) -> list[str]:
    from sbirjax.search import inputs
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        found += [os.path.join(root, f) for f in files
                  if os.path.splitext(f)[1].lower() in inputs.FORMATS]
    return sorted(found)


def query_command(*, index, sketch=None, sketches=None, text=None, k=10, json_out=False,
                  grid=None, line=0, modality="sketch", batch_size=64, stdout=None,
                  **_unused) -> int:
    from sbirjax.search.api import Searcher
    from sbirjax.search.index import Index
    stdout = stdout or sys.stdout
    if k is None or k < 1:
        raise SearchError(f"--k={k}: ask for at least one result (e.g. --k=10)")
    if not index:
        raise SearchError("query needs --index=INDEX (a folder written by `index`)")
    if sketch is not None and sketches is not None:
        raise SearchError("give --sketch=FILE or --sketches=DIR, not both")
    if sketch is None and sketches is None and text is None:
        raise SearchError("query needs --sketch=FILE, --sketches=DIR or --text=\"...\"")
    if sketches is not None and not os.path.isdir(sketches):
        raise SearchError(f"{sketches}: no such folder; --sketches takes a folder of sketch files")
    if sketches is not None and grid:
        raise SearchError("--grid draws one query: use it with --sketch or --text")
    idx = Index.load(index)
    run = idx.meta.get("run", "")
    if not os.path.isdir(run):
        raise SearchError(f"{index}/index.json names the run {run!r}, which is not there; move "
                          "the run back or build the index again with the run's new path")
    searcher = Searcher.from_run(run, idx.meta.get("step"), batch_size=batch_size,
                                 query_modality=modality, log=_log)
    if sketches is not None:
        return _query_folder(searcher, idx, sketches, text, k, line, stdout)
    results = searcher.query(sketch, k, idx, text=text, line=line)
    if json_out:
        print(json.dumps({"sketch": sketch, "text": text, "results": _as_dicts(results)}),
              file=stdout)
    else:
        for path, score, rank in results:
            print(f"{rank:>4}  {score:.4f}  {path}", file=stdout)
    if grid:
        searcher.grid(results, grid, sketch=sketch, text=text, line=line)
        _log(f"grid written to {grid}")
    return 0


def _as_dicts(results) -> list[dict]:
    return [{"path": p, "score": s, "rank": r} for p, s, r in results]


def _query_folder(searcher, idx, folder, text, k, line, stdout) -> int:
    """One JSON line per sketch file of the folder; an unreadable one gets an "error" line."""
    files = sketch_files(folder)
    if not files:
        raise SearchError(f"{folder}: no sketch files (extensions: see docs/search.md)")
    for path in files:
        try:
            results = searcher.query(path, k, idx, text=text, line=line)
            record = {"sketch": path, "text": text, "results": _as_dicts(results)}
        except SearchError as e:
            record = {"sketch": path, "error": str(e)}
        print(json.dumps(record), file=stdout)
    return 0


def serve_command(*, index, host="127.0.0.1", port=8000, k=10, ready=None, **_unused) -> int:
    """The drawing page (sbirjax/search/server.py) until Ctrl-C."""
    from sbirjax.search import server
    return server.serve(index, host=host, port=port, k=k, log=_log, ready=ready)


def onthefly_command(*, workdir, split, steps=10, out=None, step=None, batch_size=64,
                     **_unused) -> int:
    """Per-prefix ranks of an eval split, m@A and m@B (sbirjax/search/onthefly.py)."""
    from sbirjax.search import onthefly
    onthefly.run(workdir, split, steps=steps, out=out, step=step, batch_size=batch_size, log=_log)
    return 0
