"""The screenshot of docs/images/drawing_page.png: headless chromium draws a test sketch of the
index's own run, stroke by stroke with the mouse, on the drawing page, and saves the page.

  python -m tests.drawing_screenshot --index=/tmp/draw_index --out=docs/images/drawing_page.png \
      [--split=test] [--sketch=N]

--sketch picks the split's N-th sketch; without it, the first whose true photo the run ranks first
(RUN/eval/onthefly_<split>.json when it is there, else the first sketch). Needs chromium and
websocket-client (the test extra).
"""
from __future__ import annotations

import argparse
import json
import os
import threading

from tests import cdp


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--index", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--sketch", type=int, default=None)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()

    from sbirjax.search import Searcher, onthefly, server
    from sbirjax.search.api import read_run_config
    index = server.open_index(args.index)
    run = index.meta["run"]
    config = read_run_config(run)
    split = onthefly.load_split(config, args.split, log=lambda *_: None)
    pick = args.sketch
    if pick is None:
        pick = 0
        done = os.path.join(run, "eval", f"onthefly_{args.split}.json")
        if os.path.isfile(done):
            with open(done) as f:
                doc = json.load(f)
            pick = next((i for i, r in zip(doc["query_index"], doc["ranks"]) if r[-1] == 1), 0)
    strokes = split.sketches[pick]["strokes"]
    truth = split.photo_ids[split.sketch_photo[pick]]
    truth_row = next((i for i, r in enumerate(index.rows) if r.get("photo_id") == truth), None)

    searcher = Searcher.from_run(run, index.meta.get("step"), batch_size=8, log=lambda *_: None)
    srv = server.bind("127.0.0.1", 0, server.Backend(searcher, index, k=args.k),
                      server.static_files())
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        with cdp.Browser(width=1280, height=860) as browser:
            browser.goto(srv.url)
            browser.wait_for("window.sbirjax && window.sbirjax.info && "
                             "document.body.dataset.state === 'ready'")
            left, top, width = browser.evaluate(
                "(() => { const r = document.getElementById('canvas').getBoundingClientRect();"
                " return [r.left, r.top, r.width]; })()")
            canvas = browser.evaluate("window.sbirjax.info.canvas")
            ends = onthefly.stroke_ends(strokes)
            start = 0
            for end in ends:
                points = [(left + x / canvas * width, top + y / canvas * width)
                          for x, y in strokes[start:end, :2]]
                browser.drag(points)
                start = end
            browser.wait_for(f"window.sbirjax.idle() && window.sbirjax.strokes().length === "
                             f"{len(ends)} && window.sbirjax.lastResponse !== null && "
                             "document.body.dataset.state === 'ready'", timeout=60)
            browser.wait_for("[...document.querySelectorAll('#results img')]"
                             ".every(i => i.complete && i.naturalWidth > 0)")
            rows = browser.evaluate("window.sbirjax.lastResponse.results.map(r => r.row)")
            browser.screenshot(args.out)
    finally:
        srv.shutdown()
        srv.server_close()
    rank = rows.index(truth_row) + 1 if truth_row in rows else None
    print(f"sketch {pick} of {args.split} ({len(ends)} strokes, {len(strokes)} points); its photo "
          f"is row {truth_row}: rank {rank if rank else f'> {args.k}'} on the page; "
          f"saved {args.out}")


if __name__ == "__main__":
    main()
