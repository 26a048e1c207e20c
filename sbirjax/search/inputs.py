"""Query sketches from files: every format becomes the record training uses, {'strokes'} or
{'image'}.

Formats (by file extension):
  .png .jpg .jpeg .webp .bmp .gif   a raster drawing on a white (or transparent) background: an
                                    image record, prepared as the datasets' image sketches are
  .svg                              strokes from <polyline>, <polygon>, <line> and <path> elements
                                    (path commands M L H V Z and the curves C Q, absolute and
                                    relative; curves are flattened into 8 segments)
  .ndjson .json                     QuickDraw: one JSON object per line with "drawing":
                                    [[xs, ys(, ts)], ...] (--line picks the line, default 0)
  .npy .txt                         a SketchX (x, y, pen) float array (N, 3) on the run's canvas,
                                    pen = 1 on the last point of each stroke; used unchanged

Strokes of SVG and QuickDraw live in their own frame; they are scaled into the training canvas:
the frame's longer side maps onto the canvas, centred (SVG frame: the viewBox, else width/height,
else the drawing's bounding box; QuickDraw: the 256 box of the simplified release when every
point lies in it, else the bounding box). Then, as the synthetic builder keeps a drawing on its
page, a drawing larger than the canvas less 4 is shrunk about its centre and moved 2 units inside.
"""
from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET

import numpy as np
import PIL.Image

from sbirjax.search.errors import SearchError

RASTER = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
SVG = (".svg",)
QUICKDRAW = (".ndjson", ".json")
ARRAY = (".npy", ".txt")
FORMATS = RASTER + SVG + QUICKDRAW + ARRAY
QUICKDRAW_BOX = 256.0  # the simplified QuickDraw release scales every drawing into 0..255
MARGIN = 2.0           # the synthetic builder's margin between a drawing and the canvas edge
BEZIER_SEGMENTS = 8


# ------------------------------------------------------------------------- strokes <-> polylines
def to_sketchx(polylines) -> np.ndarray:
    """Polylines (each (n, 2)) -> SketchX float32 (N, 3), pen = 1 on each stroke's last point."""
    polylines = [np.asarray(p, np.float64).reshape(-1, 2) for p in polylines]
    polylines = [p for p in polylines if len(p)]
    if not polylines:
        raise ValueError("the drawing has no points")
    rows = []
    for p in polylines:
        pen = np.zeros((len(p), 1))
        pen[-1] = 1.0
        rows.append(np.concatenate([p, pen], 1))
    return np.concatenate(rows).astype(np.float32)


def fit_frame(strokes: np.ndarray, frame, canvas: float) -> np.ndarray:
    """Map the frame (x0, y0, width, height) onto the canvas: longer side to the canvas, centred."""
    x0, y0, w, h = (float(v) for v in frame)
    side = max(w, h)
    if side <= 0:
        side = 1.0  # a single point: keep its scale, centre it
    scale = canvas / side
    out = strokes.astype(np.float64).copy()
    out[:, 0] = (out[:, 0] - x0 - w / 2) * scale + canvas / 2
    out[:, 1] = (out[:, 1] - y0 - h / 2) * scale + canvas / 2
    return out.astype(np.float32)


def keep_on_page(strokes: np.ndarray, canvas: float) -> np.ndarray:
    """The synthetic builder's rule: shrink a drawing larger than canvas - 2 MARGIN about its
    centre, then move it MARGIN inside the edges; a drawing already inside is unchanged."""
    pts = strokes[:, :2].astype(np.float64)
    lo, hi = pts.min(0), pts.max(0)
    room = canvas - 2 * MARGIN
    shrink = min(1.0, room / max(float((hi - lo).max()), 1e-9))
    pts = (pts - (lo + hi) / 2) * shrink + (lo + hi) / 2
    lo, hi = pts.min(0), pts.max(0)
    pts = pts + np.clip(MARGIN - lo, 0, None) - np.clip(hi - (canvas - MARGIN), 0, None)
    return np.concatenate([pts, strokes[:, 2:3]], 1).astype(np.float32)


def bounding_frame(strokes: np.ndarray):
    lo, hi = strokes[:, :2].min(0), strokes[:, :2].max(0)
    return (lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1])


# ------------------------------------------------------------------------------ SVG
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_TOKEN = re.compile(r"[A-Za-z]|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_PATH_ARGS = {"M": 2, "L": 2, "H": 1, "V": 1, "Z": 0, "C": 6, "Q": 4}


def _numbers(text) -> list[float]:
    return [float(v) for v in _NUMBER.findall(text or "")]


def _bezier(points: np.ndarray) -> np.ndarray:
    """BEZIER_SEGMENTS points along a Bezier curve (control points (k, 2)), start excluded."""
    t = np.linspace(0, 1, BEZIER_SEGMENTS + 1)[1:, None]
    if len(points) == 3:
        a, b, c = points
        return (1 - t) ** 2 * a + 2 * (1 - t) * t * b + t ** 2 * c
    a, b, c, d = points
    return (1 - t) ** 3 * a + 3 * (1 - t) ** 2 * t * b + 3 * (1 - t) * t ** 2 * c + t ** 3 * d


def path_polylines(d: str) -> list[np.ndarray]:
    """The polylines of an SVG path's `d` (commands of _PATH_ARGS, absolute or relative)."""
    tokens = _TOKEN.findall(d or "")
    lines, current, pos, start, cmd, i = [], [], np.zeros(2), np.zeros(2), None, 0
    while i < len(tokens):
        if tokens[i].isalpha():
            cmd = tokens[i]
            i += 1
            if cmd.upper() not in _PATH_ARGS:
                raise ValueError(f"path command {cmd!r} is not supported "
                                 "(supported: M L H V Z C Q, absolute and relative)")
            if cmd.upper() != "Z":
                continue
        elif cmd is None:
            raise ValueError("path data does not start with a command")
        n = _PATH_ARGS[cmd.upper()]
        args = np.array([float(v) for v in tokens[i:i + n]])
        if len(args) < n or any(t.isalpha() for t in tokens[i:i + n]):
            raise ValueError(f"path command {cmd!r} needs {n} numbers")
        i += n
        rel, up = cmd.islower(), cmd.upper()
        if up == "Z":
            if current:
                current.append(start.copy())
            pos = start.copy()
            lines.append(current)
            current = []
            cmd = None
            continue
        if up == "M":
            lines.append(current)
            pos = pos + args if rel else args
            start = pos.copy()
            current = [pos.copy()]
            cmd = "l" if rel else "L"  # further pairs after M are line-tos
            continue
        if not current:
            current = [pos.copy()]
        if up == "H":
            pos = np.array([pos[0] + args[0] if rel else args[0], pos[1]])
        elif up == "V":
            pos = np.array([pos[0], pos[1] + args[0] if rel else args[0]])
        elif up == "L":
            pos = pos + args if rel else args
        else:  # C, Q
            ctrl = args.reshape(-1, 2) + (pos if rel else 0)
            current.extend(_bezier(np.concatenate([pos[None], ctrl])))
            pos = ctrl[-1]
            continue
        current.append(pos.copy())
    lines.append(current)
    return [np.array(p) for p in lines if p]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def svg_strokes(text: str):
    """(SketchX strokes in SVG units, frame (x0, y0, w, h) or None)."""
    root = ET.fromstring(text)
    if _local(root.tag) != "svg":
        raise ValueError("the root element is not <svg>")
    for el in root.iter():
        if el.get("transform"):
            raise ValueError(f"<{_local(el.tag)} transform=...> is not supported: apply the "
                             "transform to the coordinates first (e.g. Inkscape: ungroup, then "
                             "Path > Object to Path)")
    polylines = []
    for el in root.iter():
        tag = _local(el.tag)
        if tag not in ("polyline", "polygon", "line", "path"):
            continue
        if tag in ("polyline", "polygon"):
            p = np.array(_numbers(el.get("points")))
            p = p[:len(p) // 2 * 2].reshape(-1, 2)
            polylines.append(np.concatenate([p, p[:1]]) if tag == "polygon" and len(p) else p)
        elif tag == "line":
            v = [float(el.get(a, 0)) for a in ("x1", "y1", "x2", "y2")]
            polylines.append(np.array(v).reshape(2, 2))
        else:
            polylines.extend(path_polylines(el.get("d")))
    strokes = to_sketchx(polylines)
    box = _numbers(root.get("viewBox"))
    if len(box) == 4:
        return strokes, tuple(box)
    w, h = _numbers(root.get("width")), _numbers(root.get("height"))
    if w and h:
        return strokes, (0.0, 0.0, w[0], h[0])
    return strokes, None


# ------------------------------------------------------------------------------ QuickDraw
def quickdraw_strokes(lines: list[str], line: int):
    """(SketchX strokes, frame) of the QuickDraw drawing on line `line` (0-based, non-empty
    lines)."""
    lines = [ln for ln in lines if ln.strip()]
    if not 0 <= line < len(lines):
        raise ValueError(f"has {len(lines)} drawing line(s); --line={line} is out of range")
    record = json.loads(lines[line])
    drawing = record.get("drawing") if isinstance(record, dict) else None
    if not isinstance(drawing, list):
        raise ValueError('the line has no "drawing": [[xs, ys], ...] list')
    polylines = []
    for stroke in drawing:
        if not isinstance(stroke, list) or len(stroke) < 2 or len(stroke[0]) != len(stroke[1]):
            raise ValueError('a stroke of "drawing" is not [xs, ys(, ts)] of equal lengths')
        polylines.append(np.stack([np.asarray(stroke[0], float), np.asarray(stroke[1], float)], 1))
    strokes = to_sketchx(polylines)
    inside = np.all((strokes[:, :2] >= 0) & (strokes[:, :2] < QUICKDRAW_BOX))
    return strokes, (0.0, 0.0, QUICKDRAW_BOX, QUICKDRAW_BOX) if inside else None


# ------------------------------------------------------------------------------ raster
def read_rgb(path_or_file) -> np.ndarray:
    """uint8 (H, W, 3); transparency composed on white (a drawing's background)."""
    with PIL.Image.open(path_or_file) as im:
        im.load()
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            im = im.convert("RGBA")
            white = PIL.Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = PIL.Image.alpha_composite(white, im)
        return np.asarray(im.convert("RGB"))


# ------------------------------------------------------------------------------ entry points
def fitted(strokes: np.ndarray, frame, canvas: float) -> np.ndarray:
    strokes = fit_frame(strokes, frame if frame is not None else bounding_frame(strokes), canvas)
    return keep_on_page(strokes, canvas)


def check_sketchx(array, source: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 2 or array.shape[1] != 3 or len(array) == 0:
        raise SearchError(f"{source}: a SketchX sketch is a float array (N, 3) of (x, y, pen); "
                          f"got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise SearchError(f"{source}: the (x, y, pen) array holds NaN or infinite values")
    return array.astype(np.float32)


def load_record(path: str, canvas: float, *, line: int = 0) -> dict:
    """The training record of the sketch file at `path`: {'strokes'} or {'image'}."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise SearchError(f"{path}: unknown sketch format {ext or '(no extension)'!r}; use one of "
                          f"{' '.join(FORMATS)} (docs/search.md)")
    if not os.path.isfile(path):
        raise SearchError(f"{path}: no such sketch file; check the path")
    try:
        if ext in RASTER:
            return {"image": read_rgb(path)}
        if ext in ARRAY:
            array = np.load(path, allow_pickle=False) if ext == ".npy" else _load_txt(path)
            return {"strokes": check_sketchx(array, path)}
        with open(path, encoding="utf-8") as f:
            text = f.read()
        if ext in SVG:
            strokes, frame = svg_strokes(text)
        else:
            strokes, frame = quickdraw_strokes(text.splitlines(), line)
        return {"strokes": fitted(strokes, frame, canvas)}
    except SearchError:
        raise
    except (OSError, ValueError, ET.ParseError, PIL.UnidentifiedImageError,
            UnicodeDecodeError) as e:
        raise SearchError(f"{path}: cannot read it as a {ext} sketch: {_one_line(e)}; "
                          "see docs/search.md for the supported formats") from None


def _load_txt(path: str) -> np.ndarray:
    with open(path, encoding="utf-8") as f:
        text = f.read().replace(",", " ")
    rows = [ln.split() for ln in text.splitlines()
            if ln.strip() and not ln.lstrip().startswith("#")]
    return np.array(rows, dtype=np.float64)


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def as_record(sketch, canvas: float, *, line: int = 0) -> dict:
    """A query given as a path, a record, a SketchX array (N, 3) or an image array (H, W[, 3])."""
    if isinstance(sketch, (str, os.PathLike)):
        return load_record(os.fspath(sketch), canvas, line=line)
    if isinstance(sketch, dict) and ("strokes" in sketch or "image" in sketch):
        return sketch
    if isinstance(sketch, PIL.Image.Image):
        return {"image": np.asarray(sketch.convert("RGB"))}
    array = np.asarray(sketch)
    if array.ndim == 2 and array.shape[1] == 3 and array.dtype != np.uint8:
        return {"strokes": check_sketchx(array, "strokes")}
    if array.dtype == np.uint8 and array.ndim in (2, 3):
        return {"image": array}
    raise SearchError(f"a query of type {type(sketch).__name__} and shape {array.shape}: give a "
                      "file path, a SketchX float array (N, 3) or a uint8 image (H, W, 3)")
