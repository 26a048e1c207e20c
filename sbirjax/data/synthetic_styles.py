"""The 'rich' sketching styles of the synthetic world (`WorldSpec(style_model='rich')`).

The first world's users (`style_model='basic'`) differ in low-level drawing habits only (wobble,
point spacing, over-tracing, omitted details, a small pose bias). Triplet-SN trained on 8 of them
scores about the same on sketches by 4 unseen users as on sketches by its training users (2-3
points acc@1, the size of its seed spread), so that world cannot show a style gap. A rich user
keeps those habits and adds persistent, person-specific distortions along the axes on which real
sketchers differ:

- abstraction: more omitted detail, coarser simplification (wider ranges of the basic habits);
- proportion: parts (legs, handles, antennas, wheels) drawn longer or shorter from where they
  attach, details drawn larger or smaller, a keystone (perspective-like) distortion;
- shape: a smooth, user-specific warp of the whole drawing (a few random sinusoids), the same in
  every sketch the user draws;
- line density: some users hatch the body with parallel strokes at their own angle and spacing;
- stroke length: some users draw in short dashes of their own length;
- partial drawings: users stop before the end (details and parts, drawn after the body, are
  dropped first).

Tried and dropped (docs/stylemeup_styles.md): a personal shorthand (each user substituting pattern
and emblem types by a fixed permutation, and miscounting repeated elements) made sketches by
seen and unseen users about equally hard (Triplet-SN gap 2 points acc@10).

Each distortion is mostly persistent (a user property) with small per-sketch variation; the
unseen test users are drawn from the same distribution as the training users. Every draw here
comes from its own random stream, so the basic world is unchanged by this module.
"""
from __future__ import annotations

import math

import numpy as np

# Part of the dataset's tag (tfds_builders/synthetic_sbir.py): a change to what rich users draw
# must bump it, or built datasets of the previous version would be reused.
VERSION = 3
_WARP_TERMS = 3  # sinusoids per axis in a user's warp


def sample_user(rng: np.random.Generator) -> dict:
    """The rich part of one user's style (added to the basic style dict)."""
    u = rng.uniform
    return dict(
        warp_amp=u(0.03, 0.11),                           # object units (the object spans 1.8)
        warp_freq=rng.normal(0, 0.8, (2, _WARP_TERMS, 2)),  # cycles per object unit, per axis
        warp_phase=u(0, 2 * np.pi, (2, _WARP_TERMS)),
        warp_weight=rng.dirichlet(np.ones(_WARP_TERMS), 2),
        keystone=u(-0.22, 0.22, 2),                       # perspective-like (x, y) tilt
        part_scale=float(np.exp(u(-0.4, 0.4))),           # parts longer / shorter
        detail_scale=float(np.exp(u(-0.45, 0.3))),        # details larger / smaller
        hatch=float(u() < 0.4) * u(0.08, 0.2),            # spacing of body hatching (0 = none)
        hatch_angle=u(-np.pi / 2, np.pi / 2),
        dash=float(u() < 0.35) * u(10.0, 36.0),           # px dash length (0 = solid strokes)
        dash_gap=u(2.0, 6.0),                             # px between dashes
        complete=float(np.clip(u(0.45, 1.35), 0.45, 1.0)),  # share of non-body strokes drawn
        omit=u(0.0, 0.85),                                # replaces the basic range (0, 0.5)
        spacing=float(np.exp(u(np.log(4.5), np.log(24.0)))),
    )


def partial(chosen: list, body: list, user: dict, rng: np.random.Generator) -> list:
    """Keep the body and the first share of the other strokes, in drawing order."""
    rest = [i for i in chosen if i not in body]
    share = float(np.clip(user["complete"] + 0.07 * rng.normal(), 0.3, 1.0))
    keep = set(rest[:int(math.ceil(share * len(rest)))])
    return [i for i in chosen if i in body or i in keep]


def warp_points(pts: np.ndarray, dense: dict, user: dict, rng: np.random.Generator) -> np.ndarray:
    """The user's persistent distortion of the object (object units, before the page mapping)."""
    pts = pts.copy()
    sid = np.repeat(np.arange(len(dense["count"])), dense["count"])
    var = math.exp(0.08 * rng.normal())
    for i, role in enumerate(dense["role"]):
        m = sid == i
        if role == "part":  # scale from the point nearest the object's centre (the attachment)
            anchor = pts[m][np.argmin(np.linalg.norm(pts[m], axis=1))]
            pts[m] = anchor + (pts[m] - anchor) * user["part_scale"] * var
        elif role in ("detail", "emblem"):
            centre = pts[m].mean(0)
            pts[m] = centre + (pts[m] - centre) * user["detail_scale"] * var
    # smooth warp: the same field in every sketch of the user, a little per-sketch jitter
    amp = user["warp_amp"] * math.exp(0.1 * rng.normal())
    freq, ph, wt = (np.asarray(user[k]) for k in ("warp_freq", "warp_phase", "warp_weight"))
    for axis in (0, 1):
        phase = pts @ freq[axis].T * 2 * np.pi + ph[axis]
        pts[:, axis] += amp * (np.sin(phase) @ wt[axis])
    kx, ky = user["keystone"]
    denom = np.clip(1.0 + 0.5 * (kx * pts[:, 0] + ky * pts[:, 1]), 0.6, 1.6)
    return pts / denom[:, None]


def hatch(ring: np.ndarray, user: dict, rng: np.random.Generator) -> list:
    """Parallel strokes across the body ring (object units), at the user's angle and spacing."""
    if not user["hatch"] or len(ring) < 3:
        return []
    ang = user["hatch_angle"] + 0.08 * rng.normal()
    c, s = math.cos(ang), math.sin(ang)
    rot = np.array([[c, -s], [s, c]])
    r = ring @ rot  # hatch lines are horizontal in this frame
    spacing = user["hatch"] * math.exp(0.1 * rng.normal())
    lo, hi = r[:, 1].min(), r[:, 1].max()
    lines = []
    for y in np.arange(lo + spacing / 2, hi - spacing / 4, spacing):
        p, q = r, np.roll(r, -1, 0)
        a, b = p[:, 1] - y, q[:, 1] - y
        hit = (a <= 0) != (b <= 0)
        if hit.sum() < 2:
            continue
        t = a[hit] / (a[hit] - b[hit])
        x = np.sort(p[hit, 0] + t * (q[hit, 0] - p[hit, 0]))
        x0, x1 = x[0] + 0.04, x[-1] - 0.04
        if x1 - x0 > 0.05:
            n = max(2, int((x1 - x0) / 0.012))
            seg = np.stack([np.linspace(x0, x1, n), np.full(n, y)], 1)
            lines.append(seg @ rot.T)
    return lines


def dashes(piece: np.ndarray, user: dict, rng: np.random.Generator) -> list:
    """Cut a dense canvas polyline into dashes of the user's length."""
    if not user["dash"] or len(piece) < 4:
        return [piece]
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(piece, axis=0), axis=1))])
    period = user["dash"] * math.exp(0.15 * rng.normal()) + user["dash_gap"]
    phase = (arc + rng.uniform(0, period)) % period
    on = phase < period - user["dash_gap"]
    out, start = [], None
    for k, v in enumerate(on):
        if v and start is None:
            start = k
        if (not v or k == len(on) - 1) and start is not None:
            end = k if not v else k + 1
            if end - start >= 2:
                out.append(piece[start:end])
            start = None
    return out or [piece]
