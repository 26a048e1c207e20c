"""A drawing page that searches an index while you sketch: `python -m sbirjax.search serve`.

  python -m sbirjax.search serve --index=INDEX [--host=127.0.0.1] [--port=8000] [--k=10]

One page (sbirjax/search/static/: HTML, JS and CSS, no build step, nothing from the network): a
canvas for mouse, pen and touch (Pointer Events), undo, clear and a stroke width, and a grid of the
top-k photos that follows the drawing. The page sends the strokes as SketchX (x, y, pen) rows on the
run's canvas, never a bitmap, and the server prepares them exactly as a `.npy` query is prepared
(Searcher.query_vectors: augment.sketch_image, the training rasterisation). MA-SBIR runs get a text
box whose words join the query.

Routes (anything else: 404; methods other than GET and POST: 405):
  GET  /                 the page; /static/draw.js and /static/draw.css its script and style
  GET  /api/info         the run, the index and the limits below, as JSON
  POST /api/search       {"strokes": [[x, y, pen], ...], "text": "...", "k": 10} -> the top k:
                         {"results": [{"row", "rank", "score", "name"}], ...}
  GET  /photo/<row>      the index's photo of that manifest row, as a JPEG thumbnail; rows only,
                         never a path

Safety: binds to 127.0.0.1 unless told otherwise (then the Host header is checked too, against DNS
rebinding); a body of at most MAX_BODY bytes with a Content-Length and Content-Type
application/json; at most MAX_POINTS points and MAX_STROKES strokes, coordinates on the canvas;
a malformed request gets 400 (413 too large, 415 not JSON, 408 a body that stops arriving) with
{"error": message}; one query at a time reaches the model; a connection idle for TIMEOUT_S seconds
is closed.
"""
from __future__ import annotations

import base64
import errno
import functools
import http.server
import importlib.resources
import io
import ipaddress
import json
import math
import os
import re
import socket
import sys
import threading
import time
import traceback

import numpy as np
import PIL.Image

from sbirjax.search.errors import SearchError

MAX_BODY = 1 << 20     # bytes of a request body
MAX_POINTS = 10_000    # (x, y, pen) rows of one query
MAX_STROKES = 1_000
MAX_K = 100
MAX_TEXT = 300         # characters
TIMEOUT_S = 15         # a connection that sends nothing for this long is closed
THUMBNAIL = 256        # longest side of a served photo
STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
          "/static/draw.js": ("draw.js", "text/javascript; charset=utf-8"),
          "/static/draw.css": ("draw.css", "text/css; charset=utf-8")}
PHOTO_ROUTE = re.compile(r"/photo/(0|[1-9][0-9]{0,8})")
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; "
                                "img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
                                "form-action 'none'; frame-ancestors 'none'"),
}


class RequestError(Exception):
    """A request the server refuses: an HTTP status and a one-line message for the JSON body."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


# ----------------------------------------------------------------------------- validation
def _reject_constant(name):
    raise ValueError(f"{name} is not a number JSON allows")


def parse_query(body: bytes, *, canvas: float, has_text: bool, default_k: int = 10) -> dict:
    """A search request body -> {"strokes": float32 (N, 3) or None, "text": str or None, "k"};
    RequestError(400) naming what is wrong."""
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise RequestError(400, f"the body is not valid JSON: {_one_line(e)}") from None
    if not isinstance(data, dict):
        raise RequestError(400, 'the body must be a JSON object {"strokes": [[x, y, pen], ...]}')
    unknown = sorted(set(data) - {"strokes", "text", "k"})
    if unknown:
        raise RequestError(400, f"unknown field(s) {unknown}: send strokes, text and k")
    strokes = parse_strokes(data.get("strokes", []), canvas)  # not a config: the request
    text = data.get("text")  # not a config
    if text is not None:
        if not isinstance(text, str):
            raise RequestError(400, "text must be a string")
        text = " ".join(text.split())
        if len(text) > MAX_TEXT:
            raise RequestError(400, f"text has {len(text)} characters; at most {MAX_TEXT}")
        if text and not has_text:
            raise RequestError(400, "this run has no text tower (MA-SBIR runs only): draw instead")
        text = text or None
    k = data.get("k", default_k)  # not a config
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise RequestError(400, f"k must be an integer from 1 to {MAX_K}, got {k!r}")
    if strokes is None and text is None:
        raise RequestError(400, "nothing to search with: draw a stroke"
                           + (" or type a text" if has_text else ""))
    return {"strokes": strokes, "text": text, "k": k}


def parse_strokes(rows, canvas: float):
    """[[x, y, pen], ...] on the canvas -> float32 (N, 3), None when empty; RequestError(400)."""
    if not isinstance(rows, list):
        raise RequestError(400, "strokes must be a list of [x, y, pen] rows")
    if not rows:
        return None
    if len(rows) > MAX_POINTS:
        raise RequestError(400, f"{len(rows)} points; at most {MAX_POINTS} per query")
    for i, row in enumerate(rows):
        if (not isinstance(row, list) or len(row) != 3
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in row)):
            raise RequestError(400, f"strokes[{i}] is {_short(row)}: each row is [x, y, pen], "
                               "three numbers")
        try:
            x, y, pen = (float(v) for v in row)
        except OverflowError:
            x = y = pen = math.inf
        if not (math.isfinite(x) and math.isfinite(y)):
            raise RequestError(400, f"strokes[{i}] holds a non-finite coordinate")
        if not (0 <= x <= canvas and 0 <= y <= canvas):
            raise RequestError(400, f"strokes[{i}] = ({x:g}, {y:g}) lies outside the canvas "
                               f"[0, {canvas:g}] x [0, {canvas:g}]")
        if pen not in (0, 1):
            raise RequestError(400, f"strokes[{i}] has pen {pen:g}: 1 on the last point of a "
                               "stroke, else 0")
    array = np.asarray(rows, np.float32)
    strokes = int((array[:-1, 2] == 1).sum()) + 1
    if strokes > MAX_STROKES:
        raise RequestError(400, f"{strokes} strokes; at most {MAX_STROKES} per query")
    return array


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split()) or type(e).__name__


# ----------------------------------------------------------------------------- the model side
class Backend:
    """A Searcher on one index: what the page's requests reach. One query at a time."""

    def __init__(self, searcher, index, *, k: int = 10):
        self.searcher, self.index = searcher, searcher.load_index(index)
        self.k = max(1, min(int(k), MAX_K))
        self.canvas = float(searcher.image_config.raster.canvas)
        self.has_text = searcher.method.name in ("masbir",)
        self.row_of = {path: row for row, path in enumerate(self.index.paths)}
        self._lock, self._photo_lock = threading.Lock(), threading.Lock()
        self._splits = {}

    def info(self) -> dict:
        meta = self.index.meta
        return {"run": os.path.basename(os.path.normpath(meta.get("run", ""))),
                "step": meta.get("step"), "method": meta.get("method"),
                "count": len(self.index.rows), "source": meta.get("source"),
                "canvas": self.canvas, "text": self.has_text, "k": self.k,
                "line_width": int(self.searcher.image_config.raster.line_width),
                "limits": {"body_bytes": MAX_BODY, "points": MAX_POINTS,
                           "strokes": MAX_STROKES, "k": MAX_K, "text": MAX_TEXT}}

    def search(self, strokes, text, k: int) -> dict:
        """The top k rows for the strokes (SketchX (N, 3)) and/or the text, as the page shows
        them."""
        start = time.perf_counter()
        with self._lock:
            vectors = self.searcher.query_vectors([] if strokes is None else [strokes],
                                                  [] if text is None else [text])
            results = self.searcher.search(vectors, k, self.index)[0]
            seen = None if strokes is None else self.searcher.sketch_image(strokes)
        rows = [self.row_of[p] for p, _, _ in results]
        out = [{"row": j, "rank": r, "score": round(s, 6), "name": _name(self.index.rows[j])}
               for j, (_, s, r) in zip(rows, results)]
        return {"results": out, "k": k, "points": 0 if strokes is None else len(strokes),
                "text": text, "query_image": None if seen is None else _data_url(seen),
                "elapsed_ms": round(1000 * (time.perf_counter() - start), 1)}

    @functools.lru_cache(maxsize=512)
    def photo(self, row: int) -> bytes:
        """JPEG thumbnail of manifest row `row` (KeyError: no such row; OSError: unreadable)."""
        from sbirjax.search import gallery
        if not 0 <= row < len(self.index.rows):
            raise KeyError(row)
        path = self.index.rows[row]["path"]
        if path.startswith(gallery.TFDS_PREFIX):
            _, split, i = path[len(gallery.TFDS_PREFIX):].rsplit("/", 2)
            with self._photo_lock:
                if split not in self._splits:
                    self._splits[split] = gallery.split_items(self.searcher.config.data, split,
                                                              log=lambda *_: None)
                image = self._splits[split][int(i)].load()[0]
        else:
            image = gallery.read_photo(path)[0]
        im = PIL.Image.fromarray(np.asarray(image, np.uint8)).convert("RGB")
        im.thumbnail((THUMBNAIL, THUMBNAIL))
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=90)
        return buf.getvalue()


def _name(row: dict) -> str:
    """What the page shows under a photo: a TFDS row's photo id, else the file's name."""
    return str(row.get("photo_id") or row["path"].rsplit("/", 1)[-1])


def _data_url(image: np.ndarray) -> str:
    buf = io.BytesIO()
    PIL.Image.fromarray(np.asarray(image, np.uint8)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def static_files() -> dict:
    """path -> (bytes, content type) of the page; the files ship inside the package."""
    root = importlib.resources.files("sbirjax.search").joinpath("static")
    out = {}
    for route, (name, kind) in STATIC.items():
        try:
            out[route] = (root.joinpath(name).read_bytes(), kind)
        except OSError as e:
            raise SearchError(f"the page's file sbirjax/search/static/{name} is missing from the "
                              f"installed package ({_one_line(e)}); reinstall sbirjax") from None
    return out


# ----------------------------------------------------------------------------- HTTP
class Handler(http.server.BaseHTTPRequestHandler):
    """Routes of the module docstring. `server` carries backend, files and allowed_hosts."""

    server_version = "sbirjax"
    sys_version = ""
    timeout = TIMEOUT_S

    # -------------------------------------------------------------- responses
    def _send(self, status: int, body: bytes, kind: str, extra=None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in {**SECURITY_HEADERS, **(extra or {})}.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, value, extra=None) -> None:
        self._send(status, json.dumps(value).encode(), "application/json", extra)

    def _error(self, status: int, message: str, extra=None) -> None:
        self._json(status, {"error": message}, extra)

    def log_request(self, code="-", size="-"):
        if isinstance(code, int) and code >= 400:  # successes stay quiet
            self.log_message('"%s" %d', self.requestline, int(code))

    def log_message(self, format, *args):
        log = getattr(self.server, "log", None)
        if log is not None:
            log(f"{self.address_string()} {format % args}")

    # -------------------------------------------------------------- routing
    def _host_ok(self) -> bool:
        allowed = getattr(self.server, "allowed_hosts", None)
        return allowed is None or (self.headers.get("Host") or "").lower() in allowed

    def do_GET(self):
        if not self._host_ok():
            return self._error(403, "unexpected Host header: open the page at the address the "
                                    "server printed")
        path = self.path.split("?", 1)[0]
        files = self.server.files
        if path in files:
            body, kind = files[path]
            return self._send(200, body, kind)
        if path == "/api/info":
            return self._json(200, self.server.backend.info())
        match = PHOTO_ROUTE.fullmatch(path)
        if match:
            return self._photo(int(match.group(1)))
        if path.startswith("/photo/"):
            return self._error(404, "photos are addressed by their row number: /photo/<row>")
        return self._error(404, f"no such page: {_short(path)}")

    def _photo(self, row: int):
        try:
            body = self.server.backend.photo(row)
        except KeyError:
            return self._error(404, f"no photo row {row}: the index has "
                                    f"{len(self.server.backend.index.rows)} rows")
        except (OSError, ValueError) as e:
            return self._error(404, f"photo row {row} cannot be read any more: {_one_line(e)}")
        return self._send(200, body, "image/jpeg", {"Cache-Control": "private, max-age=3600"})

    def do_POST(self):
        if not self._host_ok():
            return self._error(403, "unexpected Host header: open the page at the address the "
                                    "server printed")
        path = self.path.split("?", 1)[0]
        if path != "/api/search":
            if path in self.server.files or path == "/api/info" or PHOTO_ROUTE.fullmatch(path):
                return self._error(405, f"{path} takes GET", {"Allow": "GET"})
            return self._error(404, f"no such page: {_short(path)}")
        try:
            body = self._read_body()
            backend = self.server.backend
            query = parse_query(body, canvas=backend.canvas, has_text=backend.has_text,
                                default_k=backend.k)
            answer = backend.search(query["strokes"], query["text"], query["k"])
        except RequestError as e:
            self.close_connection = True
            return self._error(e.status, str(e))
        except SearchError as e:
            return self._error(400, str(e))
        except Exception:  # noqa: BLE001 - a bug: the page gets a message, the log the traceback
            traceback.print_exc(file=sys.stderr)
            return self._error(500, "the search failed (see the server's log)")
        return self._json(200, answer)

    def _read_body(self) -> bytes:
        kind = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if kind != "application/json":
            raise RequestError(415, "send the query as Content-Type: application/json")
        if self.headers.get("Transfer-Encoding"):
            raise RequestError(411, "send a Content-Length, not a chunked body")
        length = self.headers.get("Content-Length")
        if length is None:
            raise RequestError(411, "a Content-Length header is required")
        if not re.fullmatch(r"[0-9]{1,12}", length.strip()):
            raise RequestError(400, f"bad Content-Length {_short(length)}")
        length = int(length)
        if length > MAX_BODY:
            raise RequestError(413, f"the body has {length} bytes; at most {MAX_BODY}")
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            raise RequestError(408, f"the body did not arrive within {self.timeout} s") from None
        if len(body) != length:
            raise RequestError(400, "the body ended before its Content-Length")
        return body

    def _not_allowed(self):
        self._error(405, f"{self.command} is not served: GET the page, POST /api/search",
                    {"Allow": "GET, POST"})

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = do_TRACE = do_CONNECT = _not_allowed


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 16

    def __init__(self, address, backend, files, *, log=None):
        if ":" in address[0]:  # an IPv6 address such as ::1
            self.address_family = socket.AF_INET6
        super().__init__(address, Handler)
        self.backend, self.files, self.log = backend, files, log
        self.allowed_hosts = allowed_hosts(address[0], self.server_address[1])

    def handle_error(self, request, client_address):
        # The page aborts a search that a newer drawing replaces: not an error worth a traceback.
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def allowed_hosts(host: str, port: int):
    """The Host headers a loopback server answers (a DNS-rebinding guard); None: any."""
    if not is_loopback(host):
        return None
    return {f"{h}:{port}" for h in ("127.0.0.1", "localhost", "[::1]")}


def bind(host: str, port: int, backend=None, files=None, log=None) -> Server:
    """The listening server (not yet serving); SearchError when the port cannot be had."""
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise SearchError(f"--port={port}: give a port from 1 to 65535 (e.g. --port=8000)")
    try:
        return Server((host, port), backend, files, log=log)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise SearchError(f"port {port} on {host} is in use (another server?); choose "
                              f"another one: --port={port + 1 if port < 65535 else 8001}") from None
        if e.errno == errno.EACCES:
            raise SearchError(f"port {port} on {host} needs privileges; use a port above 1023 "
                              "(e.g. --port=8000)") from None
        raise SearchError(f"cannot listen on {host}:{port}: {_one_line(e)}; check --host "
                          "(default 127.0.0.1)") from None


def open_index(path: str):
    """Index.load with every way of being unreadable turned into one SearchError."""
    from sbirjax.search.index import Index
    if not path:
        raise SearchError("serve needs --index=INDEX (a folder written by "
                          "`python -m sbirjax.search index`)")
    try:
        index = Index.load(path)
    except SearchError:
        raise
    except (OSError, ValueError) as e:
        raise SearchError(f"{path}: cannot read the index ({_one_line(e)}); build it again: "
                          f"python -m sbirjax.search index --workdir=RUN ... --out={path}"
                          ) from None
    run = index.meta.get("run")
    if not isinstance(run, str) or not os.path.isdir(run):
        raise SearchError(f"{path}/index.json names the run {run!r}, which is not there; move the "
                          "run back or build the index again with the run's new path")
    return index


def serve(index: str, *, host: str = "127.0.0.1", port: int = 8000, k: int = 10,
          batch_size: int = 8, log=None, ready=None) -> int:
    """Check the index, take the port, load the run the index names, then serve until Ctrl-C.
    `ready(server)`, if given, is called once the page answers (tests stop it with shutdown())."""
    from sbirjax.search.api import Searcher
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    if not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise SearchError(f"--k={k}: the page shows 1 to {MAX_K} results (e.g. --k=10)")
    idx = open_index(index)
    files = static_files()
    server = bind(host, port, log=log)
    try:
        searcher = Searcher.from_run(idx.meta["run"], idx.meta.get("step"),
                                     batch_size=batch_size, log=log)
        server.backend, server.files = Backend(searcher, idx, k=k), files
        canvas = server.backend.canvas
        warm = np.array([[canvas / 4, canvas / 4, 0], [canvas / 2, canvas / 2, 1]], np.float32)
        server.backend.search(warm, None, k)  # compile now, not on the first stroke
        log(f"serving {index} ({len(idx.rows)} photos; {idx.meta.get('method')} run "
            f"{idx.meta['run']} step {idx.meta.get('step')}) at {server.url} - Ctrl-C stops")
        if not is_loopback(host):
            log(f"warning: --host={host} makes the page reachable from other machines")
        if ready is not None:
            ready(server)
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        log("stopped")
    finally:
        server.server_close()
    return 0
