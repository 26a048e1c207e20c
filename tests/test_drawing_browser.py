"""The drawing page in a real browser: headless chromium draws with mouse (then touch) pointer
events on the canvas, and the results grid shows the rows Searcher.search gives for the strokes the
page sent."""
import os
import threading

import numpy as np
import PIL.Image
import pytest

from tests import cdp, helpers

pytestmark = pytest.mark.slow

if cdp.find_browser() is None:
    pytest.skip("chromium is not installed (apt-get install -y chromium chromium-driver; "
                ".ci/run installs it)", allow_module_level=True)
pytest.importorskip("websocket",
                    reason="websocket-client is not installed (pip install -e '.[test]')")

K = 6
READY = "window.sbirjax && window.sbirjax.info && document.body.dataset.state === 'ready'"
SETTLED = ("window.sbirjax.idle() && window.sbirjax.lastResponse !== null && "
           "document.body.dataset.state === 'ready'")
GRID_ROWS = "[...document.querySelectorAll('#results figure')].map(f => Number(f.dataset.row))"


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """The server on a free port, serving an untrained tiny run's index of 12 random photos."""
    from sbirjax.search import Searcher, server
    root = str(tmp_path_factory.mktemp("browser"))
    searcher = Searcher.from_run(helpers.untrained_run(root), batch_size=8, log=lambda *_: None)
    index = os.path.join(root, "index")
    searcher.index(helpers.random_photos(os.path.join(root, "photos"), 12), index)
    srv = server.bind("127.0.0.1", 0, server.Backend(searcher, index, k=K), server.static_files())
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield srv, searcher, index
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def _expected_rows(searcher, index, rows):
    from sbirjax.search import Index
    paths = Index.load(index).paths
    found = searcher.search(searcher.query_vectors([np.asarray(rows, np.float32)]), K, index)[0]
    return [paths.index(p) for p, _, _ in found]


def _strokes():
    t = np.linspace(0, 2 * np.pi, 40)
    ring = np.stack([128 + 80 * np.cos(t), 120 + 60 * np.sin(t)], 1)
    line = np.stack([np.linspace(40, 220, 25), np.linspace(215, 200, 25)], 1)
    return [ring, line]


def test_drawing_with_the_mouse_shows_the_searchers_results(page, tmp_path):
    srv, searcher, index = page
    with cdp.Browser(width=1200, height=820) as browser:
        browser.goto(srv.url)
        browser.wait_for(READY)
        rect = browser.evaluate("(() => { const r = document.getElementById('canvas')"
                                ".getBoundingClientRect(); return [r.left, r.top, r.width]; })()")
        left, top, width = rect
        canvas = browser.evaluate("window.sbirjax.info.canvas")
        planned = _strokes()
        for stroke in planned:  # canvas units -> viewport pixels, then a real mouse drag
            browser.drag([(left + x / canvas * width, top + y / canvas * width) for x, y in stroke])
        browser.wait_for(SETTLED + " && window.sbirjax.strokes().length === 2")
        sent = browser.evaluate("window.sbirjax.lastRequest.strokes")
        shown = browser.evaluate(GRID_ROWS)
        # The page sent SketchX rows: two strokes, each ending with pen 1, along the drags.
        sent = np.asarray(sent, np.float64)
        ends = np.flatnonzero(sent[:, 2] == 1)
        assert len(ends) == 2 and ends[-1] == len(sent) - 1
        for stroke, part in zip(planned, np.split(sent, ends[:-1] + 1)):
            assert len(part) >= len(stroke) // 2
            np.testing.assert_allclose(part[[0, -1], :2], stroke[[0, -1]], atol=1.0)
        # The grid holds the rows Searcher.search returns for those very strokes, in order.
        assert shown == _expected_rows(searcher, index, sent)
        assert len(shown) == K
        ranks = browser.evaluate("[...document.querySelectorAll('#results .rank')]"
                                 ".map(e => e.textContent)")
        assert ranks == [f"#{i}" for i in range(1, K + 1)]
        browser.wait_for("[...document.querySelectorAll('#results img')]"
                         ".every(i => i.complete && i.naturalWidth > 0)")
        assert browser.evaluate("!document.getElementById('model-input').hidden")
        shot = str(tmp_path / "drawing_page.png")
        browser.screenshot(shot)
        with PIL.Image.open(shot) as im:
            assert im.size == (1200, 820)
            assert len(set(im.convert("L").getdata())) > 10  # not a blank page
        # Undo: the first stroke alone, and its results.
        browser.evaluate("document.getElementById('undo').click()")
        browser.wait_for(SETTLED + " && window.sbirjax.strokes().length === 1 && "
                         "window.sbirjax.lastRequest.strokes.length === "
                         "window.sbirjax.strokes()[0].length")
        sent = browser.evaluate("window.sbirjax.lastRequest.strokes")
        assert browser.evaluate(GRID_ROWS) == _expected_rows(searcher, index, sent)
        # Clear: an empty grid, no request.
        browser.evaluate("document.getElementById('clear').click()")
        browser.wait_for("window.sbirjax.idle() && "
                         "document.querySelectorAll('#results figure').length === 0")
        assert browser.evaluate("window.sbirjax.lastError") is None
        # A finger: touch pointer events draw too.
        browser.evaluate("window.kinds = []; document.getElementById('canvas')"
                         ".addEventListener('pointerdown', e => window.kinds.push(e.pointerType))")
        finger = planned[1][::-1]
        browser.touch([(left + x / canvas * width, top + y / canvas * width) for x, y in finger])
        browser.wait_for(SETTLED + " && window.sbirjax.strokes().length === 1")
        assert browser.evaluate("window.kinds") == ["touch"]
        sent = browser.evaluate("window.sbirjax.lastRequest.strokes")
        np.testing.assert_allclose(np.asarray(sent)[[0, -1], :2], finger[[0, -1]], atol=1.0)
        assert browser.evaluate(GRID_ROWS) == _expected_rows(searcher, index, sent)
