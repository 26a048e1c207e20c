"""The drawing page's server (sbirjax/search/server.py): request validation, the limits, photos by
row only, start-up errors; and, on an untrained tiny run, the JSON answer equals Searcher.search."""
import http.client
import json
import os
import re
import socket
import threading

import numpy as np
import PIL.Image
import pytest

from sbirjax.search import cli, server
from sbirjax.search.errors import SearchError


class FakeIndex:
    rows = [{"path": f"/photos/p{i}.png"} for i in range(3)]


class FakeBackend:
    """The server's view of a model, without one: fixed answers, records what it was asked."""
    canvas, has_text, k = 256.0, False, 5
    index = FakeIndex()

    def __init__(self):
        self.asked = []

    def info(self):
        return {"canvas": self.canvas, "text": self.has_text, "count": 3}

    def search(self, strokes, text, k):
        self.asked.append((strokes, text, k))
        return {"results": [{"row": 2, "rank": 1, "score": 0.5, "name": "p2.png"}]}

    def photo(self, row):
        if not 0 <= row < 3:
            raise KeyError(row)
        return b"\xff\xd8jpeg" + bytes([row])


def _serve(backend, host="127.0.0.1"):
    srv = server.bind(host, 0, backend, server.static_files(), log=None)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    return srv, thread


@pytest.fixture(scope="module")
def fake():
    backend = FakeBackend()
    srv, thread = _serve(backend)
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def _request(srv, method, path, body=None, headers=None):
    port = srv.server_address[1]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest(method, path, skip_host="Host" in (headers or {}),
                        skip_accept_encoding=True)
        for key, value in (headers or {}).items():
            conn.putheader(key, value)
        if body is not None and "Content-Length" not in (headers or {}):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        if body is not None:
            conn.send(body)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def _post(srv, value, headers=None):
    body = value if isinstance(value, bytes) else json.dumps(value).encode()
    return _request(srv, "POST", "/api/search", body,
                    {"Content-Type": "application/json", **(headers or {})})


STROKE = [[10, 10, 0], [100, 120.5, 0], [200, 30, 1], [40, 200, 0], [60, 220, 1]]


def test_parse_query_accepts_sketchx_rows_and_names_what_is_wrong():
    ok = server.parse_query(json.dumps({"strokes": STROKE, "k": 3}).encode(), canvas=256,
                            has_text=False)
    assert ok["k"] == 3 and ok["text"] is None and ok["strokes"].dtype == np.float32
    np.testing.assert_array_equal(ok["strokes"], np.array(STROKE, np.float32))
    with_text = server.parse_query(b'{"strokes": [], "text": "  a  chair "}', canvas=256,
                                   has_text=True)
    assert with_text["strokes"] is None and with_text["text"] == "a chair" and with_text["k"] == 10
    bad = [
        (b"{not json", "not valid JSON"),
        (b'{"strokes": [[1, 2, NaN]]}', "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2, 3]", "JSON object"),
        (b'{"strokes": [[1, 2, 1]], "path": "/etc/passwd"}', "unknown field"),
        (b'{"strokes": "1 2 1"}', "list of [x, y, pen]"),
        (b'{"strokes": [[1, 2]]}', "strokes[0]"),
        (b'{"strokes": [[1, 2, 1], [1, "2", 1]]}', "strokes[1]"),
        (b'{"strokes": [[true, 2, 1]]}', "strokes[0]"),
        (b'{"strokes": [[1, 2, 0.5]]}', "pen"),
        (b'{"strokes": [[-1, 2, 1]]}', "outside the canvas"),
        (b'{"strokes": [[1, 257, 1]]}', "outside the canvas"),
        (b'{"strokes": [[1e400, 2, 1]]}', "non-finite"),
        (b'{"strokes": [[1, 2, 1]], "k": 0}', "k must be"),
        (b'{"strokes": [[1, 2, 1]], "k": 101}', "k must be"),
        (b'{"strokes": [[1, 2, 1]], "k": true}', "k must be"),
        (b'{"strokes": [[1, 2, 1]], "text": 5}', "text must be"),
        (b'{"strokes": [[1, 2, 1]], "text": "a chair"}', "no text tower"),
        (b'{"strokes": []}', "nothing to search with"),
        (b"{}", "nothing to search with"),
        (json.dumps({"strokes": [[1, 2, 1]] * (server.MAX_POINTS + 1)}).encode(), "at most"),
        (json.dumps({"strokes": [[1, 2, 1]] * (server.MAX_STROKES + 1)}).encode(),
         f"at most {server.MAX_STROKES}"),
        (b"[" * 100000 + b"]" * 100000, "not valid JSON"),
    ]
    for body, message in bad:
        with pytest.raises(server.RequestError, match=re.escape(message)) as e:
            server.parse_query(body, canvas=256, has_text=False)
        assert e.value.status == 400
    with pytest.raises(server.RequestError, match="at most 300"):
        server.parse_query(json.dumps({"text": "x" * 301}).encode(), canvas=256, has_text=True)


def test_page_info_and_search_routes(fake):
    status, headers, body = _request(fake, "GET", "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'src="/static/draw.js"' in body and b"<canvas" in body
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    for path, kind in (("/static/draw.js", "text/javascript"), ("/static/draw.css", "text/css")):
        status, headers, body = _request(fake, "GET", path)
        assert status == 200 and headers["Content-Type"].startswith(kind) and body
    status, _, body = _request(fake, "GET", "/api/info")
    assert status == 200 and json.loads(body)["canvas"] == 256
    status, _, body = _post(fake, {"strokes": STROKE, "k": 4})
    assert status == 200 and json.loads(body)["results"][0]["row"] == 2
    strokes, text, k = fake.backend.asked[-1]
    np.testing.assert_array_equal(strokes, np.array(STROKE, np.float32))
    assert (text, k) == (None, 4)
    status, headers, body = _request(fake, "GET", "/photo/1")
    assert status == 200 and headers["Content-Type"] == "image/jpeg" and body.endswith(b"\x01")


def test_text_reaches_the_model_only_on_a_run_with_a_text_tower():
    class TextBackend(FakeBackend):
        has_text = True
    backend = TextBackend()
    srv, thread = _serve(backend)
    try:
        status, _, _ = _post(srv, {"strokes": [], "text": " a  chair ", "k": 2})
        assert status == 200 and backend.asked[-1] == (None, "a chair", 2)
        status, _, _ = _post(srv, {"strokes": STROKE, "text": "a chair"})
        assert status == 200 and backend.asked[-1][1:] == ("a chair", 5)
        status, _, body = _post(srv, {"text": "x" * 301})
        assert status == 400 and "at most 300" in json.loads(body)["error"]
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


def test_bad_requests_get_a_json_message_and_never_reach_the_model(fake):
    asked = len(fake.backend.asked)
    cases = [
        (_post(fake, b"{oops"), 400, "not valid JSON"),
        (_post(fake, {"strokes": [[1, 2]]}), 400, "strokes[0]"),
        (_post(fake, {"strokes": [[1, 2, 1]] * (server.MAX_POINTS + 1)}), 400, "at most"),
        (_post(fake, {"strokes": [[1, 2, 1]]}, {"Content-Length": str(server.MAX_BODY + 1)}),
         413, "at most"),
        (_request(fake, "POST", "/api/search", b'{"strokes": [[1, 2, 1]]}',
                  {"Content-Type": "text/plain"}), 415, "application/json"),
        (_request(fake, "POST", "/api/search", None, {"Content-Type": "application/json"}),
         411, "Content-Length"),
        (_post(fake, {"strokes": [[1, 2, 1]]}, {"Content-Length": "-5"}), 400, "Content-Length"),
        (_request(fake, "POST", "/nowhere", b"{}", {"Content-Type": "application/json"}),
         404, "no such page"),
        (_request(fake, "POST", "/api/info", b"{}", {"Content-Type": "application/json"}),
         405, "GET"),
        (_request(fake, "PUT", "/api/search", b"{}"), 405, "not served"),
        (_request(fake, "DELETE", "/photo/1"), 405, "not served"),
        (_request(fake, "OPTIONS", "/"), 405, "not served"),
        (_request(fake, "GET", "/", headers={"Host": "evil.example:80"}), 403, "Host"),
        (_post(fake, {"strokes": [[1, 2, 1]]}, {"Host": "rebound.example"}), 403, "Host"),
    ]
    for (status, headers, body), want, message in cases:
        assert status == want, (want, body)
        assert headers["Content-Type"] == "application/json"
        assert message in json.loads(body)["error"], body
    assert len(fake.backend.asked) == asked


def _raw_post(fake, tail: bytes) -> bytes:
    """POST /api/search with a JSON content type, the rest of the request (`tail`: its length
    header, the blank line, a body) sent as given; the whole answer, read until the server
    closes (the headers and the body may arrive apart)."""
    sock = socket.create_connection(("127.0.0.1", fake.server_address[1]), timeout=10)
    try:
        sock.sendall(b"POST /api/search HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                     b"Content-Type: application/json\r\n" % fake.server_address[1] + tail)
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    finally:
        sock.close()
    return answer


def test_a_big_body_is_refused_before_it_is_read(fake):
    """413 from the headers alone: the server does not wait for a 2 MB body."""
    answer = _raw_post(fake, b"Content-Length: 2000000\r\n\r\n{")
    assert answer.startswith(b"HTTP/1.0 413")


def test_a_body_that_stops_arriving_times_out(fake, monkeypatch):
    monkeypatch.setattr(server.Handler, "timeout", 0.3)
    answer = _raw_post(fake, b"Content-Length: 50\r\n\r\n{\"str")
    assert answer.startswith(b"HTTP/1.0 408") and b"did not arrive" in answer


def test_photos_only_by_row_never_by_path(fake):
    for path in ("/photo/../../etc/passwd", "/photo/..%2F..%2Fetc%2Fpasswd", "/photo//etc/passwd",
                 "/photo/%2Fetc%2Fpasswd", "/photo/p0.png", "/photo/photos/p0.png", "/photo/-1",
                 "/photo/01", "/photo/1.0", "/photo/3", "/photo/99999999999", "/photo/",
                 "/../etc/passwd", "/static/../server.py", "/static/index.html/..",
                 "/etc/passwd", "//etc/passwd", "/photo/1/../../../etc/passwd"):
        status, headers, body = _request(fake, "GET", path)
        assert status in (400, 404), path
        assert b"root:" not in body and b"import" not in body, path
    status, _, body = _request(fake, "GET", "/photo/3")
    assert "3 rows" in json.loads(body)["error"]


# ----------------------------------------------------------------------------- start-up errors
def _fake_index(folder, run):
    os.makedirs(folder, exist_ok=True)
    np.save(os.path.join(folder, "embeddings.npy"), np.eye(2, 8, dtype=np.float32))
    with open(os.path.join(folder, "manifest.jsonl"), "w") as f:
        f.write('{"path": "/a.png"}\n{"path": "/b.png"}\n')
    with open(os.path.join(folder, "index.json"), "w") as f:
        json.dump({"run": run, "step": 0, "count": 2}, f)
    return folder


def test_serve_stops_at_start_on_a_bad_index_or_a_busy_port(tmp_path, capsys):
    run = str(tmp_path / "run")
    os.makedirs(run)
    good = _fake_index(str(tmp_path / "good"), run)
    broken = _fake_index(str(tmp_path / "broken"), run)
    with open(os.path.join(broken, "index.json"), "w") as f:
        f.write("{truncated")
    garbled = _fake_index(str(tmp_path / "garbled"), run)
    with open(os.path.join(garbled, "embeddings.npy"), "wb") as f:
        f.write(b"not numpy")
    moved = _fake_index(str(tmp_path / "moved"), str(tmp_path / "gone"))
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        cases = [(dict(index=str(tmp_path / "missing")), "not a finished sbirjax index"),
                 (dict(index=broken), "cannot read the index"),
                 (dict(index=garbled), "cannot read the index"),
                 (dict(index=moved), "which is not there"),
                 (dict(index=good, port=port), f"port {port} on 127.0.0.1 is in use"),
                 (dict(index=good, port=70000), "--port=70000"),
                 (dict(index=good, k=0), "--k=0")]
        for options, message in cases:
            assert cli.run("serve", **options) == 2, options
            err = capsys.readouterr().err
            assert message in err and err.startswith("error: ") and err.count("\n") == 1, err
        assert cli.run("serve", index=good, port=port) == 2
        assert f"--port={port + 1}" in capsys.readouterr().err
    finally:
        busy.close()
    with pytest.raises(SearchError, match="in use"):
        a = server.bind("127.0.0.1", 0)
        try:
            server.bind("127.0.0.1", a.server_address[1])
        finally:
            a.server_close()


def test_loopback_hosts_and_the_host_check():
    assert server.is_loopback("127.0.0.1") and server.is_loopback("::1")
    assert server.is_loopback("localhost") and not server.is_loopback("0.0.0.0")
    assert server.allowed_hosts("127.0.0.1", 8000) == {"127.0.0.1:8000", "localhost:8000",
                                                       "[::1]:8000"}
    assert server.allowed_hosts("0.0.0.0", 8000) is None


def test_the_page_ships_inside_the_package():
    import importlib.resources
    root = importlib.resources.files("sbirjax.search").joinpath("static")
    names = {name for name, _ in server.STATIC.values()}
    assert names == {"index.html", "draw.js", "draw.css"}
    for name in names:
        text = root.joinpath(name).read_text()
        assert "http://" not in text and "https://" not in text, name  # nothing from a CDN
    js = root.joinpath("draw.js").read_text()
    for event in ("pointerdown", "pointermove", "pointerup", "pointercancel"):
        assert event in js


# ----------------------------------------------------------------------------- a real model
@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    """An untrained tiny Triplet-SN run (config.json only: no dataset, no training) and an index
    of 12 random photos."""
    from sbirjax.search import Searcher
    from tests import helpers
    root = str(tmp_path_factory.mktemp("drawing"))
    searcher = Searcher.from_run(helpers.untrained_run(root), batch_size=8, log=lambda *_: None)
    searcher.index(helpers.random_photos(os.path.join(root, "photos"), 12),
                   os.path.join(root, "index"))
    return searcher, os.path.join(root, "index")


def test_json_answer_equals_searcher_search(untrained):
    searcher, index = untrained
    backend = server.Backend(searcher, index, k=5)
    srv, thread = _serve(backend)
    try:
        t = np.linspace(0, 2 * np.pi, 25)
        ring = [[float(128 + 90 * np.cos(a)), float(128 + 70 * np.sin(a)), 0] for a in t]
        ring[-1][2] = 1
        for rows, k in ((STROKE, 5), (ring + STROKE, 12), (STROKE[:1], 1)):
            status, _, body = _post(srv, {"strokes": rows, "k": k})
            assert status == 200, body
            answer = json.loads(body)
            expected = searcher.search(searcher.query_vectors([np.array(rows, np.float32)]), k,
                                       index)[0]
            paths = backend.index.paths
            assert [paths[r["row"]] for r in answer["results"]] == [p for p, _, _ in expected]
            assert [r["rank"] for r in answer["results"]] == list(range(1, min(k, 12) + 1))
            np.testing.assert_allclose([r["score"] for r in answer["results"]],
                                       [s for _, s, _ in expected], atol=1e-5)
            assert answer["query_image"].startswith("data:image/png;base64,")
        status, headers, body = _request(srv, "GET", "/photo/11")
        assert status == 200 and headers["Content-Type"] == "image/jpeg"
        with PIL.Image.open(__import__("io").BytesIO(body)) as im:
            assert im.size == (24, 20)
        status, _, body = _request(srv, "GET", "/photo/12")
        assert status == 404
        status, _, body = _post(srv, {"strokes": STROKE, "text": "a chair"})
        assert status == 400 and "no text tower" in json.loads(body)["error"]
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


@pytest.mark.slow
def test_masbir_text_joins_the_strokes(tmp_path):
    """An untrained MA-SBIR run on the committed tiny CLIP: the page's text and strokes give the
    answer of Searcher.search on query_vectors([strokes], [text])."""
    from sbirjax import defaults_masbir
    from sbirjax.search import Searcher
    from tests import helpers
    config = defaults_masbir.base(pretrained=helpers.CLIP_FIXTURE, image_size=32)
    with config.unlocked():
        config.total_steps = 0
        config.data.text.max_length = 16
    run = tmp_path / "masbir"
    os.makedirs(run)
    (run / "config.json").write_text(config.to_json_best_effort(indent=2, sort_keys=True))
    searcher = Searcher.from_run(str(run), batch_size=8, log=lambda *_: None)
    index = str(tmp_path / "index")
    searcher.index(helpers.random_photos(str(tmp_path / "photos"), 10), index)
    backend = server.Backend(searcher, index, k=4)
    assert backend.info()["text"] is True
    srv, thread = _serve(backend)
    try:
        rows = np.array(STROKE, np.float32)
        for body, sketches, texts in (({"strokes": STROKE, "text": "a chair"}, [rows], ["a chair"]),
                                      ({"text": "a shoe"}, [], ["a shoe"])):
            status, _, answer = _post(srv, body)
            assert status == 200, answer
            expected = searcher.search(searcher.query_vectors(sketches, texts), 4, index)[0]
            assert [backend.index.paths[r["row"]] for r in json.loads(answer)["results"]] == \
                [p for p, _, _ in expected]
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)
