"""Sketch rasterisation the way the field does it, with the choices made explicit.

Strokes come in the SketchX format: float (N, 3) rows of absolute (x, y, pen) on a `canvas`-sized
square (256 for QMUL-ShoeV2/ChairV2), pen = 1 on the LAST point of each stroke. Consecutive points
of a stroke are joined by Bresenham lines on the integer canvas, pixels outside it are dropped, the
ink is dilated (a 3x3 cross for the standard ~3 px line), and the canvas is area-averaged down to
the output size. The SketchX code draws white strokes on black; most sketch datasets are black on
white, which is the default here (`polarity`).
"""
from __future__ import annotations

import numpy as np

POLARITIES = ("black_on_white", "white_on_black")


def bresenham_segments(p0: np.ndarray, p1: np.ndarray) -> np.ndarray:
    """All pixels of the Bresenham lines p0[i] -> p1[i] (integer arrays (S, 2)), as (M, 2).

    The major axis advances one pixel at a time; the minor coordinate is the exact rounding of
    the ideal line with halves rounded away from the start point, which is what the integer
    error-accumulating algorithm produces.
    """
    p0 = np.asarray(p0, np.int64).reshape(-1, 2)
    p1 = np.asarray(p1, np.int64).reshape(-1, 2)
    d = p1 - p0
    n = np.abs(d).max(axis=1)  # pixels per segment minus one
    if p0.shape[0] == 0:
        return np.zeros((0, 2), np.int64)
    seg = np.repeat(np.arange(p0.shape[0]), n + 1)
    starts = np.cumsum(n + 1) - (n + 1)
    i = np.arange(seg.shape[0]) - starts[seg]  # step index within its segment
    nn = np.maximum(n[seg], 1)
    # round(i * d / n) with ties away from the start, in integers: floor((2 i |d| + n) / 2n)
    offs = np.sign(d[seg]) * ((2 * i[:, None] * np.abs(d[seg]) + nn[:, None]) // (2 * nn[:, None]))
    return p0[seg] + offs


def stroke_segments(strokes: np.ndarray):
    """Start and end points of the line segments of a SketchX stroke array."""
    strokes = np.asarray(strokes)
    if strokes.ndim != 2 or strokes.shape[1] != 3:
        raise ValueError(f"strokes must have shape (N, 3) of (x, y, pen); got {strokes.shape}")
    if not np.all(np.isfinite(strokes)):
        raise ValueError("strokes contain NaN or infinite coordinates")
    pts = np.rint(strokes[:, :2]).astype(np.int64)
    # A segment joins point j and j+1 unless point j ends its stroke.
    keep = strokes[:-1, 2] < 0.5
    return pts[:-1][keep], pts[1:][keep], pts


def dilate_cross(ink: np.ndarray, times: int) -> np.ndarray:
    """Binary dilation with a 3x3 cross, `times` times (a diamond of radius `times`)."""
    for _ in range(times):
        out = ink.copy()
        out[1:] |= ink[:-1]
        out[:-1] |= ink[1:]
        out[:, 1:] |= ink[:, :-1]
        out[:, :-1] |= ink[:, 1:]
        ink = out
    return ink


def rasterize(strokes: np.ndarray, *, size: int = 256, canvas: int = 256, line_width: int = 3,
              polarity: str = "black_on_white", channels: int = 3) -> np.ndarray:
    """SketchX strokes -> uint8 image (size, size, channels).

    `canvas` is the coordinate frame of the strokes; `size` must divide it or be a multiple of it
    (area averaging down, nearest up). `line_width` is odd: 1 = bare Bresenham, 3 = the standard
    cross dilation, 2k+1 = k cross dilations.
    """
    if polarity not in POLARITIES:
        raise ValueError(f"polarity={polarity!r}; use one of {POLARITIES}")
    if line_width < 1 or line_width % 2 == 0:
        raise ValueError(f"line_width={line_width} must be a positive odd number")
    if canvas % size and size % canvas:
        raise ValueError(f"size={size} must divide canvas={canvas} or be a multiple of it")
    a, b, pts = stroke_segments(strokes)
    pix = np.concatenate([bresenham_segments(a, b), pts])  # lone points (1-point strokes) too
    inside = np.all((pix >= 0) & (pix < canvas), axis=1)
    pix = pix[inside]
    ink = np.zeros((canvas, canvas), bool)
    ink[pix[:, 1], pix[:, 0]] = True  # rows are y, columns are x
    ink = dilate_cross(ink, (line_width - 1) // 2)
    if size < canvas:
        f = canvas // size
        level = ink.reshape(size, f, size, f).mean(axis=(1, 3))
    elif size > canvas:
        f = size // canvas
        level = np.repeat(np.repeat(ink, f, 0), f, 1).astype(np.float32)
    else:
        level = ink.astype(np.float32)
    if polarity == "black_on_white":
        level = 1.0 - level
    img = np.rint(level * 255.0).astype(np.uint8)
    return np.repeat(img[:, :, None], channels, axis=2)
