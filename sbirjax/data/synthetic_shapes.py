"""Parametric object families of the synthetic sketch-photo world (see `synthetic.py`).

An object is a body (one of five shape families) carrying a distinguishing part (one of four part
families), an interior pattern and a small emblem. `sample_instance` draws the fine-grained
parameters of one instance, `build_geometry` turns them into polygons to paint and polylines to
trace, in object coordinates (y points down, the object is centred and fits in [-0.9, 0.9]^2), and
`render_photo` paints the polygons in colour with shading, a shadow and a textured background.
"""
from __future__ import annotations

import colorsys
import math

import numpy as np
from PIL import Image, ImageDraw

BODY_WORDS = ("round", "square", "triangular", "hexagonal", "diamond")
PART_WORDS = ("handle", "legs", "antenna", "wheels")
PATTERNS = ("stripes", "dots", "windows", "zigzag")
PATTERN_COUNTS = {"stripes": (1, 3), "dots": (2, 5), "windows": (1, 3), "zigzag": (3, 7)}
EMBLEMS = ("star", "cross", "triangle", "disc", "diamond")

# Layers of painted polygons: behind the body, the body, on the body, in front of it.
BEHIND, BODY, ON, FRONT = 0, 1, 2, 3


# ----------------------------------------------------------------------------- primitives
def _ellipse(c, rx, ry, n=40, expo=2.0):
    t = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    ct, st = np.cos(t), np.sin(t)
    e = 2.0 / expo
    return np.stack([c[0] + rx * np.sign(ct) * np.abs(ct) ** e,
                     c[1] + ry * np.sign(st) * np.abs(st) ** e], 1)


def _rounded_polygon(verts, rho, m=8):
    """Closed ring: each corner replaced by a quadratic Bezier cutting `rho` of both edges."""
    v = np.asarray(verts, np.float64)
    a = v + rho * (np.roll(v, 1, 0) - v)
    b = v + rho * (np.roll(v, -1, 0) - v)
    t = np.linspace(0.0, 1.0, m)[None, :, None]
    q = (1 - t) ** 2 * a[:, None] + 2 * t * (1 - t) * v[:, None] + t ** 2 * b[:, None]
    return q.reshape(-1, 2)


def _star(c, r, points=5, inner=0.45, angle=0.0):
    k = np.arange(2 * points)
    rad = np.where(k % 2 == 0, r, r * inner)
    a = angle - np.pi / 2 + k * np.pi / points
    return np.stack([c[0] + rad * np.cos(a), c[1] + rad * np.sin(a)], 1)


def _regular(c, r, sides, angle=0.0):
    a = angle - np.pi / 2 + np.arange(sides) * 2 * np.pi / sides
    return np.stack([c[0] + r * np.cos(a), c[1] + r * np.sin(a)], 1)


def _cross(c, r, angle=0.0):
    w = 0.36 * r
    p = np.array([[-w, -r], [w, -r], [w, -w], [r, -w], [r, w], [w, w], [w, r], [-w, r],
                  [-w, w], [-r, w], [-r, -w], [-w, -w]])
    return _rotate(p, angle) + c


def _rotate(p, angle):
    ca, sa = math.cos(angle), math.sin(angle)
    return p @ np.array([[ca, sa], [-sa, ca]])


def _band(poly, width):
    """Polygon of a thick open polyline."""
    p = np.asarray(poly, np.float64)
    d = np.gradient(p, axis=0)
    d /= np.linalg.norm(d, axis=1, keepdims=True) + 1e-9
    n = np.stack([-d[:, 1], d[:, 0]], 1) * (width / 2)
    return np.concatenate([p + n, (p - n)[::-1]])


def _arch(pa, pb, height, expo, outward, n=24):
    """Open arch from pa to pb bulging by `height` along `outward` (superellipse profile)."""
    th = np.linspace(0.0, np.pi, n)
    c, s = np.cos(th), np.sin(th)
    e = 2.0 / expo
    along = 0.5 - 0.5 * np.sign(c) * np.abs(c) ** e
    out = np.abs(s) ** e
    pa, pb = np.asarray(pa, np.float64), np.asarray(pb, np.float64)
    return pa + along[:, None] * (pb - pa) + out[:, None] * height * np.asarray(outward)


def _crossings(ring, axis, value):
    """Sorted coordinates (other axis) where the closed ring crosses coordinate[axis] == value."""
    p, q = ring, np.roll(ring, -1, 0)
    a, b = p[:, axis] - value, q[:, axis] - value
    hit = (a <= 0) != (b <= 0)
    t = a[hit] / (a[hit] - b[hit])
    o = 1 - axis
    return np.sort(p[hit, o] + t * (q[hit, o] - p[hit, o]))


def _chord(ring, axis, value, fallback):
    x = _crossings(ring, axis, value)
    return (x[0], x[-1]) if len(x) >= 2 else fallback


# ----------------------------------------------------------------------------- sampling
def _hsv(h, s, v):
    return tuple(int(round(255 * x)) for x in colorsys.hsv_to_rgb(h % 1.0, s, v))


def _colours(rng):
    u = rng.uniform
    h = u()
    body_v = u(0.6, 0.95)
    body = _hsv(h, u(0.45, 0.85), body_v)
    if rng.random() < 0.5:
        part = _hsv(h + u(-0.05, 0.05), u(0.1, 0.5), u(0.15, 0.35))
    else:
        part = _hsv(h + u(0.3, 0.7), u(0.5, 0.8), u(0.5, 0.85))
    if rng.random() < 0.5:
        pattern = _hsv(h + u(-0.1, 0.1), u(0.05, 0.2), u(0.9, 1.0))
    else:
        pattern = _hsv(h + u(-0.2, 0.2), u(0.5, 0.9), body_v * u(0.35, 0.55))
    return dict(body=body, part=part, pattern=pattern, emblem=_hsv(u(), u(0.6, 0.95), u(0.85, 1.0)),
                tyre=_hsv(0, 0, u(0.1, 0.25)), rim=_hsv(h, u(0.0, 0.15), u(0.7, 0.9)),
                bg0=_hsv(u(), u(0.05, 0.3), u(0.75, 0.98)),
                bg1=_hsv(u(), u(0.05, 0.35), u(0.45, 0.8)))


def sample_instance(rng: np.random.Generator, body: str, part: str) -> dict:
    """Fine-grained parameters of one instance of the family (body, part)."""
    if body not in BODY_WORDS or part not in PART_WORDS:
        raise ValueError(f"unknown family ({body!r}, {part!r})")
    u = rng.uniform
    # the most corner rounding that keeps the body family recognisable
    max_round = {"square": 0.4, "triangular": 0.3, "hexagonal": 0.22, "diamond": 0.28}.get(body,
                                                                                           0.3)
    p = dict(body=body, part=part, aspect=float(np.exp(u(np.log(0.7), np.log(1.45)))),
             rounding=u(0.03, max_round), squareness=u(2.0, 2.7), taper=u(-0.2, 0.2),
             skew=u(-0.35, 0.35), waist=u(0.4, 0.68), kite=u(-0.25, 0.25))
    pattern = PATTERNS[rng.integers(len(PATTERNS))]
    lo, hi = PATTERN_COUNTS[pattern]
    p.update(pattern=pattern, pattern_count=int(rng.integers(lo, hi + 1)), pattern_y=u(0.6, 0.72),
             pattern_size=u(), panes=bool(rng.random() < 0.5),
             emblem=EMBLEMS[rng.integers(len(EMBLEMS))], emblem_x=u(-1, 1), emblem_y=u(0.3, 0.4),
             emblem_size=u(0.075, 0.12), emblem_angle=u(-0.35, 0.35))
    if part == "handle":
        side = ("top", "top", "left", "right")[rng.integers(4)]
        p.update(side=side, pos=u(-0.35, 0.35), width=u(0.35, 0.7), height=u(0.18, 0.38),
                 thick=u(0.05, 0.085), expo=u(2.0, 6.0))
    elif part == "legs":
        p.update(count=int(rng.integers(2, 5)), spread=u(0.45, 0.85), length=u(0.22, 0.45),
                 splay=u(0.0, 0.45), foot=("none", "flat", "ball")[rng.integers(3)],
                 foot_size=u(0.07, 0.12), thick=u(0.04, 0.06))
    elif part == "antenna":
        p.update(count=int(rng.integers(1, 4)), spread=u(0.3, 0.7), pos=u(-0.4, 0.4),
                 length=u(0.22, 0.42), tilt=u(-0.45, 0.45),
                 kink=u(-0.6, 0.6) if rng.random() < 0.5 else 0.0,
                 tip=("ball", "star", "bar")[rng.integers(3)], tip_size=u(0.045, 0.075))
    else:
        p.update(count=int(rng.integers(2, 4)), spread=u(0.5, 0.85), radius=u(0.13, 0.22),
                 spokes=(0, 2, 3)[rng.integers(3)], hub=bool(rng.random() < 0.6),
                 lift=u(0.2, 0.5), spoke_angle=u(0, np.pi))
    p["colours"] = _colours(rng)
    return p


# ----------------------------------------------------------------------------- geometry
def _body_ring(p):
    s = 0.6
    hw, hh = s * math.sqrt(p["aspect"]), s / math.sqrt(p["aspect"])
    b, rho = p["body"], p["rounding"]
    if b == "round":
        return _ellipse((0, 0), hw, hh, n=72, expo=p["squareness"])
    if b == "square":
        t = 1 - p["taper"]
        return _rounded_polygon([[-hw * t, -hh], [hw * t, -hh], [hw, hh], [-hw, hh]], rho)
    if b == "triangular":
        hh *= 1.15
        return _rounded_polygon([[p["skew"] * hw, -hh], [hw, hh], [-hw, hh]], rho)
    if b == "hexagonal":
        k = p["waist"]
        return _rounded_polygon([[-hw * k, -hh], [hw * k, -hh], [hw, 0], [hw * k, hh],
                                 [-hw * k, hh], [-hw, 0]], rho)
    k = p["kite"] * hh
    return _rounded_polygon([[0, -hh], [hw, k], [0, hh], [-hw, k]], rho)


class _Geometry:
    def __init__(self):
        self.fills = []    # (layer, polygon, colour key)
        self.strokes = []  # (role, polyline, closed, group)

    def add(self, layer, poly, colour, role=None, stroke=None, closed=True, same_group=False):
        """Paint `poly`; trace it (or `stroke`) when a role is given. Strokes of one group are
        kept or left out of a sketch together (a window and its panes)."""
        self.fills.append((layer, np.asarray(poly, np.float64), colour))
        if role is not None:
            group = self.strokes[-1][3] if same_group and self.strokes else len(self.strokes)
            self.strokes.append((role, np.asarray(poly if stroke is None else stroke,
                                                  np.float64), closed, group))


def _pattern(g, p, ring):
    y0, y1 = ring[:, 1].min(), ring[:, 1].max()
    h = y1 - y0
    yc = y0 + p["pattern_y"] * h
    cx = ring[:, 0].mean()
    n, kind, size = p["pattern_count"], p["pattern"], p["pattern_size"]
    if kind == "stripes":
        gap, t = 0.09 + 0.04 * size, 0.035 + 0.015 * size
        for k in range(n):
            y = float(np.clip(yc + (k - (n - 1) / 2) * gap, y0 + 0.15 * h, y1 - 0.08 * h))
            (a0, b0), (a1, b1) = (_chord(ring, 1, y - t / 2, (cx, cx)),
                                  _chord(ring, 1, y + t / 2, (cx, cx)))
            m = 0.03
            quad = [[a0 + m, y - t / 2], [b0 - m, y - t / 2], [b1 - m, y + t / 2],
                    [a1 + m, y + t / 2]]
            xl, xr = _chord(ring, 1, y, (cx, cx))
            g.add(ON, quad, "pattern", "detail", [[xl + m, y], [xr - m, y]], closed=False)
        return
    xl, xr = _chord(ring, 1, yc, (cx - 0.2, cx + 0.2))
    xl, xr = xl + 0.08, xr - 0.08
    mid, usable = (xl + xr) / 2, max(xr - xl, 0.1)
    if kind == "zigzag":
        xs = np.linspace(xl + 0.02, xr - 0.02, 2 * n + 1)
        amp = 0.035 + 0.03 * size
        ys = yc + np.where(np.arange(2 * n + 1) % 2 == 0, amp, -amp)
        line = np.stack([xs, ys], 1)
        g.add(ON, _band(line, 0.035), "pattern", "detail", line, closed=False)
        return
    if kind == "dots":
        r = min(0.04 + 0.025 * size, usable / (2.6 * n))
        step = min(usable / n, 3.4 * r)
        for k in range(n):
            g.add(ON, _ellipse((mid + (k - (n - 1) / 2) * step, yc), r, r, n=20), "pattern",
                  "detail")
        return
    s = min(0.1 + 0.06 * size, usable / (1.45 * n))
    step = min(usable / n, 1.6 * s)
    for k in range(n):
        c = np.array([mid + (k - (n - 1) / 2) * step, yc])
        sq = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * (s / 2) + c
        g.add(ON, _rounded_polygon(sq, 0.25, m=5), "pattern", "detail")
        if p["panes"]:
            for a, b in (([0, -s / 2], [0, s / 2]), ([-s / 2, 0], [s / 2, 0])):
                line = np.array([a, b]) * 0.9 + c
                g.add(ON, _band(line, 0.022), "body", "detail", line, closed=False,
                      same_group=True)


def _emblem(g, p, ring):
    y0, y1 = ring[:, 1].min(), ring[:, 1].max()
    y = y0 + p["emblem_y"] * (y1 - y0)
    r = p["emblem_size"]
    xl, xr = _chord(ring, 1, y, (-0.2, 0.2))
    room = max((xr - xl) / 2 - 1.4 * r, 0.0)
    c = np.array([(xl + xr) / 2 + p["emblem_x"] * room, y])
    kind, a = p["emblem"], p["emblem_angle"]
    poly = {"star": lambda: _star(c, r * 1.15, angle=a), "cross": lambda: _cross(c, r, a),
            "triangle": lambda: _regular(c, r * 1.1, 3, a), "disc": lambda: _ellipse(c, r, r, 24),
            "diamond": lambda: _regular(c, r * 1.1, 4, a)}[kind]()
    g.add(ON, poly, "emblem", "emblem")


def _handle(g, p, ring):
    hw, hh = np.abs(ring[:, 0]).max(), np.abs(ring[:, 1]).max()
    side, w, inset = p["side"], p["width"], 0.025
    if side == "top":
        half = w * hw / 2
        c = float(np.clip(p["pos"] * hw, -0.85 * hw + half, 0.85 * hw - half))
        xa, xb = c - half, c + half
        pa = [xa, _chord(ring, 0, xa, (-hh, hh))[0] + inset]
        pb = [xb, _chord(ring, 0, xb, (-hh, hh))[0] + inset]
        out = np.array([0.0, -1.0])
    else:
        half = w * hh / 2
        c = float(np.clip(p["pos"] * hh, -0.7 * hh + half, 0.7 * hh - half))
        k = 0 if side == "left" else 1
        sgn = -1.0 if side == "left" else 1.0
        pa = [_chord(ring, 1, c - half, (-hw, hw))[k] - sgn * inset, c - half]
        pb = [_chord(ring, 1, c + half, (-hw, hw))[k] - sgn * inset, c + half]
        out = np.array([sgn, 0.0])
    pa, pb = np.array(pa), np.array(pb)
    th = p["thick"]
    along = (pb - pa) / (np.linalg.norm(pb - pa) + 1e-9)
    outer = _arch(pa, pb, p["height"] + inset, p["expo"], out)
    inner = _arch(pa + th * along, pb - th * along, p["height"] + inset - th, p["expo"], out)
    g.add(BEHIND, np.concatenate([outer, inner[::-1]]), "part")
    g.strokes += [("part", outer, False, len(g.strokes)), ("part", inner[::-1], False,
                                                            len(g.strokes) + 1)]


def _legs(g, p, ring):
    hw = np.abs(ring[:, 0]).max()
    n = p["count"]
    xs = np.linspace(-1, 1, n) * p["spread"] * hw
    tops = np.array([_chord(ring, 0, x, (0.0, 0.0))[1] - 0.02 for x in xs])
    floor = tops.max() + p["length"]
    for x, y in zip(xs, tops):
        ang = p["splay"] * (x / hw)
        foot_x = x + math.tan(ang) * (floor - y)
        pts = [[x, y], [foot_x, floor]]
        if p["foot"] == "flat":
            d = 1.0 if x >= 0 else -1.0
            pts.append([foot_x + d * p["foot_size"], floor])
        line = np.array(pts)
        g.add(BEHIND, _band(line, p["thick"]), "part", "part", line, closed=False)
        if p["foot"] == "ball":
            r = p["foot_size"] * 0.5
            g.add(BEHIND, _ellipse((foot_x, floor), r, r, n=20), "part", "part")


def _antenna(g, p, ring):
    hw = np.abs(ring[:, 0]).max()
    n = p["count"]
    xs = np.array([p["pos"] * hw]) if n == 1 else np.linspace(-1, 1, n) * p["spread"] * hw
    for k, x in enumerate(xs):
        base = np.array([x, _chord(ring, 0, x, (0.0, 0.0))[0] + 0.02])
        ang = p["tilt"] if n == 1 else abs(p["tilt"]) * (x / (p["spread"] * hw))
        d1 = np.array([math.sin(ang), -math.cos(ang)])
        kink = p["kink"] * (1 if x >= 0 else -1)
        d2 = np.array([math.sin(ang + kink), -math.cos(ang + kink)])
        mid = base + d1 * p["length"] * 0.55
        tip = mid + d2 * p["length"] * 0.45
        line = np.array([base, mid, tip])
        g.add(BEHIND, _band(line, 0.03), "part", "part", line, closed=False)
        r = p["tip_size"]
        if p["tip"] == "ball":
            g.add(BEHIND, _ellipse(tip, r, r, n=20), "part", "part")
        elif p["tip"] == "star":
            g.add(BEHIND, _star(tip, r * 1.4, angle=ang), "part", "part")
        else:
            bar = np.array([tip - r * np.array([d2[1] * -1, d2[0]]) * 1.4,
                            tip + r * np.array([d2[1] * -1, d2[0]]) * 1.4])
            g.add(BEHIND, _band(bar, 0.035), "part", "part", bar, closed=False)


def _wheels(g, p, ring):
    hw = np.abs(ring[:, 0]).max()
    n = p["count"]
    xs = np.linspace(-1, 1, n) * p["spread"] * hw
    r = min(p["radius"], (xs[1] - xs[0]) / 2.15)
    bottoms = [_chord(ring, 0, x, (0.0, 0.0))[1] for x in xs]
    axle = max(bottoms) + r * (1 - p["lift"])
    for x, bot in zip(xs, bottoms):
        c = np.array([x, axle])
        if axle - r > bot + 0.01:  # the body curves away above this wheel: a strut holds it
            line = np.array([[x, bot - 0.02], [x, axle]])
            g.add(BEHIND, _band(line, 0.045), "part", "part", line, closed=False)
        g.add(FRONT, _ellipse(c, r, r), "tyre", "part")
        g.add(FRONT, _ellipse(c, 0.72 * r, 0.72 * r), "rim")
        for k in range(p["spokes"]):
            a = p["spoke_angle"] + k * np.pi / p["spokes"]
            d = np.array([math.cos(a), math.sin(a)]) * 0.7 * r
            line = np.array([c - d, c + d])
            g.add(FRONT, _band(line, 0.022), "tyre", "detail", line, closed=False)
        if p["hub"]:
            g.add(FRONT, _ellipse(c, 0.25 * r, 0.25 * r, n=16), "part", "detail")


def build_geometry(p: dict) -> dict:
    """Polygons to paint and strokes to trace, centred and scaled into [-0.9, 0.9]^2.

    Returns {'fills': [(layer, (K, 2) polygon, colour key)], 'strokes': [(role, (K, 2) polyline,
    closed, group)], 'body': (K, 2) ring}; stroke roles are 'body', 'part', 'detail' and 'emblem'.
    """
    ring = _body_ring(p)
    g = _Geometry()
    g.add(BODY, ring, "body", "body")
    add_part = {"handle": _handle, "legs": _legs, "antenna": _antenna, "wheels": _wheels}
    add_part[p["part"]](g, p, ring)
    _pattern(g, p, ring)
    _emblem(g, p, ring)
    allp = np.concatenate([f[1] for f in g.fills])
    lo, hi = allp.min(0), allp.max(0)
    centre, scale = (lo + hi) / 2, 1.8 / (hi - lo).max()
    fills = sorted(((lay, (q - centre) * scale, col) for lay, q, col in g.fills),
                   key=lambda f: f[0])
    strokes = [(role, (q - centre) * scale, closed, grp) for role, q, closed, grp in g.strokes]
    return dict(fills=fills, strokes=strokes, body=(ring - centre) * scale)


# ----------------------------------------------------------------------------- photos
def _dark(c, f=0.55):
    return tuple(int(v * f) for v in c)


def _smooth(arr, n):
    """Upsample a small float array (h, w[, 3]) in [0, 255] to an n x n PIL image (bicubic)."""
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).resize((n, n), Image.BICUBIC)


def render_photo(geom: dict, p: dict, rng: np.random.Generator, size: int) -> np.ndarray:
    """Colour photo (size, size, 3) uint8: painted at twice the size, then downsampled.

    Smooth fields (background gradient and texture, body shading, shadow) are computed on a coarse
    grid and upsampled; polygons are painted with PIL.
    """
    n = 2 * size
    col = p["colours"]
    ang = rng.uniform(-0.1, 0.1)
    scale = 0.45 * n * rng.uniform(0.88, 1.02)
    shift = n / 2 + np.clip(rng.normal(0, 0.02, 2), -0.04, 0.04) * n
    ca, sa = math.cos(ang), math.sin(ang)
    rot = np.array([[ca, sa], [-sa, ca]]) * scale

    def px(q):
        return [tuple(v) for v in (q @ rot + shift).tolist()]

    g = 16  # coarse grid
    yy, xx = (np.mgrid[0:g, 0:g] + 0.5) / g
    # background: two-colour gradient modulated by a low-frequency texture
    a = rng.uniform(0, 2 * np.pi)
    grad = np.clip(0.5 + (math.cos(a) * (xx - 0.5) + math.sin(a) * (yy - 0.5)) * 1.2, 0, 1)
    tex = np.asarray(Image.fromarray((rng.random((5, 5)) * 255).astype(np.uint8)).resize(
        (g, g), Image.BICUBIC), np.float64)[..., None] / 255
    bg = (np.asarray(col["bg0"]) * (1 - grad[..., None]) + np.asarray(col["bg1"]) * grad[..., None])
    canvas = _smooth(bg * (0.85 + 0.3 * tex), n)
    # soft shadow under the object
    body = np.asarray(px(geom["body"])) / n
    lo, hi = body.min(0), body.max(0)
    floor = max(np.asarray(px(f[1]))[:, 1].max() for f in geom["fills"]) / n
    cx, w2 = (lo[0] + hi[0]) / 2, (hi[0] - lo[0]) / 2 + 0.03
    d = ((xx - cx) / w2) ** 2 + ((yy - floor + 0.01) / 0.05) ** 2
    shadow = _smooth(120 * np.clip(1.2 - d, 0, 1), n)
    canvas = Image.composite(Image.new("RGB", (n, n)), canvas, shadow)
    # shading of the body: linear light from the upper left plus a specular highlight
    c, rad = (lo + hi) / 2, (hi - lo).max() / 2
    lin = np.clip(((xx - c[0]) * 0.6 + (yy - c[1]) * 0.8) / rad, -1, 1)
    hl = np.exp(-((xx - c[0] + 0.4 * rad) ** 2 + (yy - c[1] + 0.45 * rad) ** 2)
                / (2 * (0.3 * rad) ** 2))
    base = np.asarray(col["body"], np.float64)
    shade = _smooth(base * (1.0 - 0.3 * lin[..., None]) + 0.5 * hl[..., None] * (255 - base), n)

    draw = ImageDraw.Draw(canvas)
    w = max(1, n // 128)
    for lay, poly, key in geom["fills"]:
        if lay == BODY:
            mask = Image.new("L", (n, n), 0)
            ImageDraw.Draw(mask).polygon(px(poly), fill=255)
            canvas.paste(shade, (0, 0), mask)
            draw.line(px(np.concatenate([poly, poly[:1]])), fill=_dark(col["body"], 0.45),
                      width=2 * w, joint="curve")
        else:
            draw.polygon(px(poly), fill=col[key], outline=_dark(col[key]), width=w)
    out = np.asarray(canvas.resize((size, size), Image.LANCZOS), np.int16)
    out = out + rng.integers(-6, 7, (size, size, 1), dtype=np.int16)
    return np.clip(out, 0, 255).astype(np.uint8)
