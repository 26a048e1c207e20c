"""The embedded default dataset: a synthetic sketch-photo world, generated from a seed.

The world
---------
Every category is a parametric object family named by two words, a body word and a part word: five
bodies ('round', 'square', 'triangular', 'hexagonal', 'diamond') times four distinguishing parts
('handle', 'legs', 'antenna', 'wheels') give 20 categories such as 'round body with wheels'. Every
instance of a category differs in fine detail that a line drawing shows: body aspect ratio, corner
rounding (or squareness, taper, skew, waist, kite shape depending on the body), an interior pattern
(1-3 stripes, 2-5 dots, 1-3 windows with or without panes, a zigzag with 3-7 teeth), an emblem
(star, cross, triangle, disc or diamond) and its position, and the part's own parameters (handle on
top or on a side, its width, height and profile; 2-4 legs, their splay, length and feet; 1-3
antennas, their tilt, bend and tip; 2-3 wheels, their size, spokes and hub). Instances of one
category therefore look alike but are told apart by their details, which makes fine-grained
retrieval a real task; colour also varies per instance but sketches carry none.

A photo is the instance painted in colour with shading, a highlight, a soft shadow, a small pose
and scale jitter, on a gradient background with a low-frequency texture and pixel noise (painted at
twice `photo_size`, then downsampled). A sketch is a line drawing of the same instance geometry in
the SketchX stroke format: a float32 (N, 3) array of absolute (x, y, pen) on a 256 x 256 canvas,
pen = 1 on the last point of every stroke. Sketches are drawn by simulated users, each with a
persistent style (see `_sample_user`): wobble, simplification (point spacing), over-tracing,
omitted details, scale / offset / rotation / stretch bias, broken strokes, unclosed or overshooting
loops, stroke start and direction habits, plus small per-sketch variation. The last
`num_test_users` users are test users; their styles are drawn from the same distribution as the
others (unseen, not out of distribution). Sketches are transparent line drawings (lines hidden in
the photo, such as a body edge behind a wheel, are drawn) and stay on the page (a drawing that
would leave the canvas is shrunk and moved inside). A default-spec sketch has a median of 10
strokes and about 170 points (5th-95th percentile: 5-21 strokes, 80-330 points). Everything is a
deterministic function of `WorldSpec` (independent random streams per photo, user and sketch;
about 8 s for the default spec on one CPU core).

Splits (`World.splits[kind][name]`: sorted index arrays into `photos` / `sketches`)
--------------------------------------------------------------------------------------
The last `test_instances_per_category` instances of every category are fine-grained test instances.
Each train instance is sketched by `train_sketches_per_instance` distinct train users; each test
instance by `test_sketches_per_instance` distinct test users and by
`seen_user_sketches_per_test_instance` distinct train users.

photos   train        fine-grained train instances, all categories
         test         fine-grained test instances, all categories
         zs_train     all photos of the seen categories
         zs_test      all photos of the unseen categories
         gzs_gallery  zs_test plus a seeded random `gzs_seen_fraction` of the seen-category photos
sketches train            train instances by train users
         test             test instances by test users (unseen users)
         test_seen_users  test instances by train users
         zs_train         seen categories (train and test instances) by train users
         zs_test          unseen categories by all users

Chance levels for the default spec (20 categories x 40 instances, 30 train / 10 test each; 12 users,
4 of them test users; 6 / 3 / 3 sketches per instance; 5 unseen categories):
- fine-grained ('test' sketches against 'test' photos): 600 queries, a gallery of 200 photos, one
  correct photo each: acc@1 = 1/200 = 0.5%, acc@10 = 5%; within the right category 1/10.
- zero-shot ('zs_test' sketches, 1,200, against 'zs_test' photos, 200): a random ranking has mAP
  and precision about 1/5 = 20% (40 relevant photos of 200).
- generalised zero-shot ('zs_test' sketches against 'gzs_gallery', 200 + 120 = 320 photos): random
  precision about 40/320 = 12.5%.
Fine-grained zero-shot: 'zs_test' sketches against 'zs_test' photos with the instance as the target,
acc@1 = 1/200.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from sbirjax.data import synthetic_shapes as shapes
from sbirjax.data import synthetic_styles as styles

CANVAS = 256.0
_DENSE = 0.012  # spacing (object units) of the densely sampled strokes a user traces
STYLE_MODELS = ("basic", "rich")
_DEFAULT_UNSEEN = ("round body with legs", "square body with wheels",
                   "triangular body with handle", "hexagonal body with antenna",
                   "diamond body with legs")


@dataclasses.dataclass(frozen=True)
class WorldSpec:
    seed: int = 0
    instances_per_category: int = 40
    test_instances_per_category: int = 10   # fine-grained test photos (disjoint from train photos)
    num_users: int = 12
    num_test_users: int = 4                  # users whose sketches appear only in test splits
    train_sketches_per_instance: int = 6     # distinct train users per train instance
    test_sketches_per_instance: int = 3      # distinct test users per test instance
    seen_user_sketches_per_test_instance: int = 3  # distinct train users per test instance
    photo_size: int = 128
    gzs_seen_fraction: float = 0.2
    unseen_categories: tuple[str, ...] = _DEFAULT_UNSEEN
    # 'basic': low-level drawing habits only (the first world); 'rich': persistent person-specific
    # distortions as well (sbirjax/data/synthetic_styles.py).
    style_model: str = "basic"

    def __post_init__(self):  # configs may hand over a list: keep the spec hashable
        object.__setattr__(self, "unseen_categories", tuple(self.unseen_categories))


@dataclasses.dataclass(frozen=True)
class World:
    spec: WorldSpec
    categories: tuple[str, ...]
    category_words: tuple[tuple[str, str], ...]
    unseen_categories: tuple[str, ...]
    train_users: tuple[int, ...]
    test_users: tuple[int, ...]
    photos: list
    sketches: list
    splits: dict
    users: list

    @property
    def seen_categories(self) -> tuple[str, ...]:
        return tuple(c for c in self.categories if c not in self.unseen_categories)


def category_name(body: str, part: str) -> str:
    return f"{body} body with {part}"


def all_category_words() -> tuple[tuple[str, str], ...]:
    return tuple((b, p) for b in shapes.BODY_WORDS for p in shapes.PART_WORDS)


def _validate(spec: WorldSpec):
    words = all_category_words()
    names = tuple(category_name(b, p) for b, p in words)
    if not isinstance(spec.seed, (int, np.integer)) or spec.seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {spec.seed!r}")
    if not 1 <= spec.test_instances_per_category < spec.instances_per_category:
        raise ValueError("need 1 <= test_instances_per_category < instances_per_category")
    n_train_users = spec.num_users - spec.num_test_users
    if spec.num_test_users < 1 or n_train_users < 1:
        raise ValueError("need at least one train user and one test user")
    for field, k, avail in (("train_sketches_per_instance", spec.train_sketches_per_instance,
                             n_train_users),
                            ("test_sketches_per_instance", spec.test_sketches_per_instance,
                             spec.num_test_users),
                            ("seen_user_sketches_per_test_instance",
                             spec.seen_user_sketches_per_test_instance, n_train_users)):
        low = 0 if field.startswith("seen") else 3
        if not low <= k <= avail:
            raise ValueError(f"{field}={k} must lie in [{low}, {avail}] (the available users)")
    if not 0.0 <= spec.gzs_seen_fraction <= 1.0:
        raise ValueError("gzs_seen_fraction must lie in [0, 1]")
    if spec.style_model not in STYLE_MODELS:
        raise ValueError(f"style_model={spec.style_model!r}: use one of {STYLE_MODELS}")
    if spec.photo_size < 16:
        raise ValueError("photo_size must be at least 16")
    unseen = tuple(spec.unseen_categories)
    if not unseen or len(set(unseen)) != len(unseen):
        raise ValueError(f"unseen_categories must be non-empty and unique: {unseen}")
    missing = [u for u in unseen if u not in names]
    if missing:
        raise ValueError(f"unseen categories {missing} are not categories; known: {names}")
    seen = [w for n, w in zip(names, words) if n not in unseen]
    for pos, kind in ((0, "body"), (1, "part")):
        lacking = sorted({w[pos] for w in words} - {w[pos] for w in seen})
        if lacking:
            raise ValueError(f"{kind} words {lacking} appear in no seen category: unseen "
                             "categories must be new combinations of seen words")
    return names, words, np.array([n in unseen for n in names])


def _rng(*key) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in key]))


# ----------------------------------------------------------------------------- users
def _sample_user(rng: np.random.Generator) -> dict:
    """Persistent drawing style of one user (all floats)."""
    u = rng.uniform
    return dict(
        scale=u(0.64, 0.92),              # size of the drawing relative to the canvas
        offset_x=float(np.clip(rng.normal(0, 7), -14, 14)),  # px
        offset_y=float(np.clip(rng.normal(0, 7), -14, 14)),
        rotation=u(-0.14, 0.14),          # radians
        stretch=float(np.exp(u(-0.15, 0.15))),  # x / y aspect bias
        spacing=float(np.exp(u(np.log(4.5), np.log(18.0)))),  # px between points (simplification)
        wobble=float(np.exp(u(np.log(0.3), np.log(2.8)))),     # px, smooth low-frequency noise
        wavelength=u(40.0, 120.0),        # px of the wobble
        jitter=u(0.0, 0.7),               # px, per-point noise
        drift=u(0.3, 2.5),                # px, per-stroke misplacement
        overtrace=u(0.0, 0.45),           # probability to trace a stroke twice
        omit=u(0.0, 0.5),                 # probability to skip an interior detail
        breaks=u(0.0, 0.4),               # probability to break a stroke into pieces
        closure=u(-0.08, 0.12),           # loops: < 0 left open, > 0 overshoot (fraction)
        start_angle=u(-np.pi, np.pi),     # where loops start (angle around their centre)
        clockwise=u(0.0, 1.0),            # probability to draw a loop clockwise
        part_first=u(0.0, 1.0),           # probability to draw the part before the details
        variability=u(0.5, 1.5),          # size of the per-sketch variation
    )


# ----------------------------------------------------------------------------- sketches
def _resample(strokes, spacing, min_points):
    """Resample polylines at `spacing` along their length, all at once.

    Returns the points (M, 2), the stroke index of each point and its arc position (M,).
    """
    lens = np.array([len(s) for s in strokes])
    pts = np.concatenate(strokes)
    sid = np.repeat(np.arange(len(strokes)), lens)
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    seg[sid[1:] != sid[:-1]] = 1.0  # a unit gap between strokes keeps the arc increasing
    arc = np.concatenate([[0.0], np.cumsum(seg + 1e-6)])
    first = np.concatenate([[0], np.cumsum(lens)[:-1]])
    a0, a1 = arc[first], arc[first + lens - 1]
    n = np.maximum(np.ceil((a1 - a0) / spacing).astype(int) + 1, min_points)
    out_sid = np.repeat(np.arange(len(strokes)), n)
    start = np.concatenate([[0], np.cumsum(n)[:-1]])
    frac = (np.arange(n.sum()) - start[out_sid]) / (n[out_sid] - 1)
    t = a0[out_sid] + frac * (a1 - a0)[out_sid]
    res = np.stack([np.interp(t, arc, pts[:, 0]), np.interp(t, arc, pts[:, 1])], 1)
    return res, out_sid, t - a0[out_sid]


def _densify(strokes) -> dict:
    """Dense, concatenated copies of an instance's strokes, with what every sketch reuses.

    Loops are stored without their repeated first point; `angle` is each point's angle around its
    loop's centre and `cw` whether the loop runs clockwise on screen (y down).
    """
    closed = np.array([s[2] for s in strokes])
    polys = [np.concatenate([s[1], s[1][:1]]) if s[2] else s[1] for s in strokes]
    pts, sid, _ = _resample(polys, _DENSE, np.where(closed, 6, 2))
    last = np.concatenate([np.nonzero(sid[1:] != sid[:-1])[0], [len(pts) - 1]])
    keep = np.ones(len(pts), bool)
    keep[last[closed]] = False
    pts, sid = pts[keep], sid[keep]
    counts = np.bincount(sid, minlength=len(strokes))
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    centre = np.stack([np.bincount(sid, pts[:, i]) for i in (0, 1)], 1) / counts[:, None]
    rel = pts - centre[sid]
    angle = np.arctan2(rel[:, 1], rel[:, 0])
    turn = np.diff(np.unwrap(angle))
    turn[sid[1:] != sid[:-1]] = 0.0
    cw = np.bincount(sid[1:], turn, minlength=len(strokes)) > 0
    return dict(pts=pts, start=start, count=counts, closed=closed, angle=angle, cw=cw,
                role=[s[0] for s in strokes], group=[s[3] for s in strokes])


def _draw_sketch(dense: dict, user: dict, rng: np.random.Generator,
                 rich_rng: np.random.Generator | None = None) -> np.ndarray:
    """One sketch of an instance by a user: (N, 3) float32 (x, y, pen) on the 256 canvas.
    Rich users (synthetic_styles.py) draw their extra habits from `rich_rng`."""
    rich = "warp_amp" in user
    var = user["variability"]
    role, group = dense["role"], dense["group"]
    k = len(role)
    r = rng.random((k, 6))
    z = rng.normal(size=(k, 6))
    body = [i for i in range(k) if role[i] == "body"]
    part = [i for i in range(k) if role[i] == "part"]
    details = [i for i in range(k) if role[i] in ("detail", "emblem")
               and r[group[i], 0] >= user["omit"] * (0.6 if role[i] == "emblem" else 1.0)]
    if len(details) > 1:  # mostly in order, sometimes swapped neighbours
        key = np.arange(len(details)) + 0.7 * z[:len(details), 0]
        details = [details[i] for i in np.argsort(key)]
    chosen = body + (part + details if rng.random() < user["part_first"] else details + part)
    if rich:
        chosen = styles.partial(chosen, body, user, rich_rng)

    # object -> canvas: user bias plus per-sketch variation
    g = rng.normal(size=5)
    scale = CANVAS / 2 * user["scale"] * math.exp(0.04 * var * g[0])
    ang = user["rotation"] + 0.035 * var * g[1]
    st = user["stretch"] * math.exp(0.03 * var * g[2])
    off = np.array([user["offset_x"], user["offset_y"]]) + 4 * var * g[3:5] + CANVAS / 2
    ca, sa = math.cos(ang), math.sin(ang)
    mat = np.array([[st, 0.0], [0.0, 1 / st]]) @ np.array([[ca, sa], [-sa, ca]]) * scale
    obj = styles.warp_points(dense["pts"], dense, user, rich_rng) if rich else dense["pts"]
    pts = obj @ mat + off

    pieces, loop = [], []
    for i in chosen:
        s0, n = dense["start"][i], dense["count"][i]
        if dense["closed"][i]:
            a = dense["angle"][s0:s0 + n]
            i0 = int(np.argmin(np.abs((a - user["start_angle"] - 0.5 * z[i, 1] + np.pi)
                                      % (2 * np.pi) - np.pi)))
            extra = int(round((user["closure"] + 0.03 * z[i, 2]) * n))
            m = n + extra + 1 if extra >= 0 else max(n + extra, 3)
            step = 1 if dense["cw"][i] == (r[i, 1] < user["clockwise"]) else -1
            q = pts[s0 + (i0 + step * np.arange(m)) % n]
        else:
            q = pts[s0:s0 + n] if r[i, 1] >= 0.2 else pts[s0:s0 + n][::-1]
        parts = [q]
        if len(q) >= 12 and r[i, 2] < user["breaks"]:
            cut = int(len(q) * (0.25 + 0.5 * r[i, 3]))
            gap = max(1, int(len(q) * (0.03 + 0.05 * r[i, 4])))
            parts = [p for p in (q[:cut], q[cut + gap:]) if len(p) >= 2]
        for p in parts:
            pieces.append(p)
            loop.append(bool(dense["closed"][i]) and len(parts) == 1)
            if r[i, 5] < user["overtrace"] * (1.3 if role[i] == "body" else 0.8):
                pieces.append(p + (1.5 + user["wobble"]) * z[i, 3:5])
                loop.append(loop[-1])
    if rich:
        for i in body:
            s0, n = dense["start"][i], dense["count"][i]
            for line in styles.hatch(obj[s0:s0 + n], user, rich_rng):
                pieces.append(line @ mat + off)
                loop.append(False)
        cut = [styles.dashes(p, user, rich_rng) for p in pieces]
        loop = [lp and len(c) == 1 for lp, c in zip(loop, cut) for _ in c]
        pieces = [d for c in cut for d in c]

    spacing = user["spacing"] * math.exp(rng.normal(0, 0.1))
    pts, sid, s = _resample(pieces, spacing, np.where(loop, 6, 2))
    k = len(pieces)
    # smooth wobble: two sinusoids per axis along the arc, random phases per stroke
    ph = rng.uniform(0, 2 * np.pi, (k, 2, 2))
    lam = user["wavelength"] * np.array([1.0, 0.43])
    amp = user["wobble"] * math.exp(rng.normal(0, 0.15)) * np.array([1.0, 0.3])
    wave = np.sin(2 * np.pi * s[:, None, None] / lam + ph[sid])
    pts = pts + (wave * amp).sum(-1)
    pts = pts + rng.normal(0, user["drift"], (k, 2))[sid]
    pts = pts + rng.normal(0, user["jitter"] + 1e-6, pts.shape)
    # keep the drawing on the page: shrink it if too large, then move it inside
    lo, hi = pts.min(0), pts.max(0)
    room = CANVAS - 4.0
    shrink = min(1.0, room / max(hi - lo))
    pts = (pts - (lo + hi) / 2) * shrink + (lo + hi) / 2
    lo, hi = pts.min(0), pts.max(0)
    pts = pts + np.clip(2.0 - lo, 0, None) - np.clip(hi - (CANVAS - 2.0), 0, None)
    pts = np.clip(pts, 0.0, np.nextafter(np.float32(CANVAS), np.float32(0)))
    pen = np.zeros(len(pts))
    pen[np.concatenate([np.nonzero(sid[1:] != sid[:-1])[0], [len(pts) - 1]])] = 1.0
    return np.concatenate([pts, pen[:, None]], 1).astype(np.float32)


# ----------------------------------------------------------------------------- world
def generate(spec: WorldSpec = WorldSpec()) -> World:
    """Generate the world of `spec` (deterministic; about 8 s on one core for the default spec)."""
    names, words, unseen_mask = _validate(spec)
    n_inst, n_test = spec.instances_per_category, spec.test_instances_per_category
    n_train_users = spec.num_users - spec.num_test_users
    train_users = np.arange(n_train_users)
    test_users = np.arange(n_train_users, spec.num_users)
    user_rng = _rng(spec.seed, 1)
    users = [_sample_user(user_rng) for _ in range(spec.num_users)]
    if spec.style_model == "rich":
        rich_rng = _rng(spec.seed, 7)
        users = [dict(u, **{k: np.asarray(v).tolist()
                            for k, v in styles.sample_user(rich_rng).items()})
                 for u in users]

    photos, dense = [], []
    for c, (body, part) in enumerate(words):
        for i in range(n_inst):
            rng = _rng(spec.seed, 2, c, i)
            params = shapes.sample_instance(rng, body, part)
            geom = shapes.build_geometry(params)
            photos.append(dict(photo_id=f"c{c:02d}_i{i:03d}", category=c, instance=i,
                               image=shapes.render_photo(geom, params, rng, spec.photo_size)))
            dense.append(_densify(geom["strokes"]))

    sketches = []
    for j, ph in enumerate(photos):
        rng = _rng(spec.seed, 3, j)
        if ph["instance"] < n_inst - n_test:
            who = rng.choice(train_users, spec.train_sketches_per_instance, replace=False)
        else:
            who = np.concatenate([
                rng.choice(test_users, spec.test_sketches_per_instance, replace=False),
                rng.choice(train_users, spec.seen_user_sketches_per_test_instance, replace=False)])
        for u in np.sort(who):
            sketches.append(dict(
                sketch_id=f"{ph['photo_id']}_u{u:02d}", photo_id=ph["photo_id"], photo_index=j,
                category=ph["category"], user=int(u),
                strokes=_draw_sketch(dense[j], users[u], _rng(spec.seed, 4, j, u),
                                     _rng(spec.seed, 6, j, u))))

    p_cat = np.array([p["category"] for p in photos])
    p_test = np.array([p["instance"] >= n_inst - n_test for p in photos])
    p_unseen = unseen_mask[p_cat]
    s_photo = np.array([s["photo_index"] for s in sketches], np.int64)
    s_test_user = np.array([s["user"] >= n_train_users for s in sketches])
    s_inst_test, s_unseen = p_test[s_photo], p_unseen[s_photo]
    seen_idx = np.nonzero(~p_unseen)[0]
    k = int(round(spec.gzs_seen_fraction * len(seen_idx)))
    extra = _rng(spec.seed, 5).choice(seen_idx, k, replace=False)

    def idx(mask):
        return np.nonzero(mask)[0].astype(np.int64)

    splits = {
        "photos": {
            "train": idx(~p_test), "test": idx(p_test),
            "zs_train": idx(~p_unseen), "zs_test": idx(p_unseen),
            "gzs_gallery": np.sort(np.concatenate([idx(p_unseen), extra])).astype(np.int64)},
        "sketches": {
            "train": idx(~s_inst_test & ~s_test_user), "test": idx(s_inst_test & s_test_user),
            "test_seen_users": idx(s_inst_test & ~s_test_user),
            "zs_train": idx(~s_unseen & ~s_test_user), "zs_test": idx(s_unseen)},
    }
    return World(spec=spec, categories=names, category_words=words,
                 unseen_categories=tuple(n for n in names if n in spec.unseen_categories),
                 train_users=tuple(int(u) for u in train_users),
                 test_users=tuple(int(u) for u in test_users),
                 photos=photos, sketches=sketches, splits=splits, users=users)
