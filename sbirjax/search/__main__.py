"""Search your own photos with a sketch (docs/search.md).

  python -m sbirjax.search index --workdir=RUN (--photos=DIR | --split=NAME) --out=INDEX
                                 [--step=N] [--batch_size=64] [--shard=I/N]
  python -m sbirjax.search query --index=INDEX (--sketch=FILE | --sketches=DIR) [--text="a ..."]
                                 [--k=10] [--json] [--grid=OUT.png] [--line=0]
                                 [--modality=sketch]
  python -m sbirjax.search serve --index=INDEX [--host=127.0.0.1] [--port=8000] [--k=10]
  python -m sbirjax.search onthefly --workdir=RUN --split=NAME [--steps=10] [--out=RUN/eval]

index embeds every jpg/jpeg/png/webp under DIR (recursive) with the run's photo embedding and
writes INDEX/{embeddings.npy, manifest.jsonl, index.json, skipped.jsonl}; a rerun reuses what is
done. query prints the top k photos and scores (--json: one JSON object; --sketches: one JSON line
per sketch file). serve opens a drawing page that searches the index as you draw. onthefly
writes the rank of the true photo after 10%, 20%, ... of each sketch's strokes, with m@A and m@B
(sbirjax/search/onthefly.py). Exit status 2 on a bad input, with one line naming the file and the
fix.
"""
from __future__ import annotations

import sys

from absl import flags, logging

from sbirjax import errors

_WORKDIR = flags.DEFINE_string("workdir", None, "index, onthefly: the run's workdir")
_PHOTOS = flags.DEFINE_string("photos", None, "index: the folder of photos (searched recursively)")
_SPLIT = flags.DEFINE_string("split", None, "index: a photo split of the run's dataset instead; "
                             "onthefly: an eval split of the run (config.eval.splits)")
_OUT = flags.DEFINE_string("out", None, "index: the index folder to write; onthefly: the folder "
                           "of its JSON and PNG (default RUN/eval)")
_STEP = flags.DEFINE_integer("step", None, "index, onthefly: checkpoint step (default: selected, "
                             "else latest)")
_SHARD = flags.DEFINE_string("shard", None, "index: I/N, this process's share (every N-th "
                             "photo from the I-th) into the same --out; shard 0 writes the index "
                             "when all are done (default 0/1: everything in this process)")
_BATCH = flags.DEFINE_integer("batch_size", 64, "images per batch (rounded up to the device count)")
_INDEX = flags.DEFINE_string("index", None, "query, serve: the index folder")
_SKETCH = flags.DEFINE_string("sketch", None,
                              "query: a sketch file (png, jpg, svg, ndjson, npy, txt)")
_SKETCHES = flags.DEFINE_string("sketches", None, "query: a folder of sketch files; JSON lines out")
_TEXT = flags.DEFINE_string("text", None, "query (MA-SBIR runs): a text, alone or with the sketch")
_K = flags.DEFINE_integer("k", 10, "query: results per query; serve: the page's default")
_JSON = flags.DEFINE_bool("json", False, "query: print JSON instead of a table")
_GRID = flags.DEFINE_string("grid", None, "query: write the query and its results to this PNG")
_LINE = flags.DEFINE_integer("line", 0, "query: the drawing's line in a QuickDraw ndjson file")
_MODALITY = flags.DEFINE_string("modality", "sketch", "query: the run's query embedding "
                                "('sketch'; MA-SBIR also 'converted')")
_HOST = flags.DEFINE_string("host", "127.0.0.1", "serve: the address to listen on (default: this "
                            "machine only)")
_PORT = flags.DEFINE_integer("port", 8000, "serve: the port (0: any free port)")
_STEPS = flags.DEFINE_integer("steps", 10, "onthefly: prefixes per sketch (10: 10%, 20%, ...)")


def main(argv):
    if len(argv) != 2:
        print("error: give one command: `python -m sbirjax.search index ...`, `... query ...`, "
              "`... serve ...` or `... onthefly ...` (docs/search.md)", file=sys.stderr)
        return 2
    if not flags.FLAGS["verbosity"].present:  # TFDS and orbax notices drown the results
        logging.set_verbosity(logging.ERROR)
    from sbirjax.search import cli
    return cli.run(argv[1], workdir=_WORKDIR.value, photos=_PHOTOS.value, split=_SPLIT.value,
                   out=_OUT.value, step=_STEP.value, batch_size=_BATCH.value, shard=_SHARD.value,
                   index=_INDEX.value,
                   sketch=_SKETCH.value, sketches=_SKETCHES.value, text=_TEXT.value, k=_K.value,
                   json_out=_JSON.value, grid=_GRID.value, line=_LINE.value,
                   modality=_MODALITY.value, host=_HOST.value, port=_PORT.value,
                   steps=_STEPS.value)


if __name__ == "__main__":
    errors.run(main)
