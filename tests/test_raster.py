import numpy as np
import pytest

from sbirjax.data import raster


def textbook_bresenham(x0, y0, x1, y1):
    """The integer error-accumulating algorithm, all octants, one pixel at a time."""
    dx, dy = abs(x1 - x0), -abs(y1 - y0)
    sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
    err, out = dx + dy, []
    while True:
        out.append((x0, y0))
        if x0 == x1 and y0 == y1:
            return out
        e2 = 2 * err
        if e2 >= dy:
            err += dy
            x0 += sx
        if e2 <= dx:
            err += dx
            y0 += sy


def test_vectorised_bresenham_equals_textbook_algorithm():
    rng = np.random.default_rng(0)
    a = rng.integers(-5, 40, size=(500, 2))
    b = rng.integers(-5, 40, size=(500, 2))
    pix = raster.bresenham_segments(a, b)
    lengths = np.abs(b - a).max(axis=1) + 1
    chunks = np.split(pix, np.cumsum(lengths)[:-1])
    for p, q, got in zip(a, b, chunks):
        assert [tuple(x) for x in got] == textbook_bresenham(*p, *q)


def test_rasterize_known_answer_line_width_and_polarity():
    # One horizontal stroke from (2, 5) to (6, 5) on a 16 canvas.
    strokes = np.array([[2, 5, 0], [6, 5, 1]], np.float32)
    img = raster.rasterize(strokes, size=16, canvas=16, line_width=1, polarity="white_on_black",
                           channels=1)[:, :, 0]
    assert img.dtype == np.uint8
    assert set(zip(*np.nonzero(img))) == {(5, x) for x in range(2, 7)}
    thick = raster.rasterize(strokes, size=16, canvas=16, line_width=3,
                             polarity="black_on_white")[:, :, 0]
    ink = thick == 0
    # The cross dilation adds the rows above/below and one pixel at each end.
    expected = ({(5, x) for x in range(1, 8)} | {(4, x) for x in range(2, 7)}
                | {(6, x) for x in range(2, 7)})
    assert set(zip(*np.nonzero(ink))) == expected


def test_pen_up_separates_strokes_and_outside_pixels_are_dropped():
    strokes = np.array([[0, 0, 0], [3, 0, 1], [3, 3, 0], [20, 3, 1]], np.float32)
    img = raster.rasterize(strokes, size=8, canvas=8, line_width=1, polarity="white_on_black",
                           channels=1)[:, :, 0]
    ink = set(zip(*np.nonzero(img)))
    assert (1, 3) not in ink and (2, 3) not in ink  # no segment between the two strokes
    assert {(0, x) for x in range(4)} <= ink and {(3, x) for x in range(3, 8)} <= ink
    assert len(ink) == 4 + 5


def test_downsampling_averages_ink():
    strokes = np.array([[0, 0, 0], [255, 0, 1]], np.float32)
    img = raster.rasterize(strokes, size=64, canvas=256, line_width=1, polarity="white_on_black",
                           channels=1)[:, :, 0]
    # Row 0 of each 4x4 block is inked: a quarter of the block.
    assert np.all(img[0] == np.rint(0.25 * 255)) and np.all(img[1:] == 0)


@pytest.mark.parametrize("bad, match", [
    (np.array([[0, 0, 0], [np.nan, 1, 1]], np.float32), "NaN"),
    (np.zeros((4, 2), np.float32), r"\(N, 3\)"),
])
def test_bad_strokes_raise_clear_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        raster.rasterize(bad)


def test_bad_options_raise():
    s = np.array([[0, 0, 1]], np.float32)
    with pytest.raises(ValueError, match="polarity"):
        raster.rasterize(s, polarity="grey")
    with pytest.raises(ValueError, match="odd"):
        raster.rasterize(s, line_width=2)
