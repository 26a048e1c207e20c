"""Pictures a person looks at: the retrieval grid (query sketch, its top-k photos, truth marked)."""
from __future__ import annotations

import numpy as np
from etils import epath
import PIL.Image
import PIL.ImageDraw

from sbirjax.evaluation import metrics

GREEN, RED, BLUE, GREY = (40, 170, 60), (210, 50, 50), (40, 90, 220), (235, 235, 235)


def retrieval_grid(queries, topk_images, correct, ranks, path: str, *, truth_images=None,
                   cell: int = 96, title: str = "") -> None:
    """Rows: a query sketch, then its top-k photos; the correct photo framed green, others red.

    queries (Q, H, W, 3) uint8; topk_images (Q, K, H, W, 3) uint8; correct (Q, K) bool; ranks (Q,)
    the rank of the true photo (shown beside each query); truth_images (Q, H, W, 3), if given,
    the true photo in a last column framed blue, so a miss shows what should have come back.
    """
    q, k = topk_images.shape[:2]
    pad, head, left = 4, 18 if title else 4, 56
    extra = 0 if truth_images is None else 1
    width = left + (k + 1 + extra) * (cell + pad) + pad + extra * pad * 3
    height = head + q * (cell + pad) + pad
    canvas = PIL.Image.new("RGB", (width, height), GREY)
    draw = PIL.ImageDraw.Draw(canvas)
    if title:
        draw.text((pad, 3), title, fill=(0, 0, 0))
    for r in range(q):
        y = head + r * (cell + pad)
        draw.text((pad, y + cell // 2 - 6), f"rank {int(ranks[r])}", fill=(0, 0, 0))
        _paste(canvas, queries[r], left, y, cell)
        for c in range(k):
            x = left + (c + 1) * (cell + pad) + pad
            _paste(canvas, topk_images[r, c], x, y, cell)
            draw.rectangle([x - 2, y - 2, x + cell + 1, y + cell + 1],
                           outline=GREEN if correct[r, c] else RED, width=3)
        if truth_images is not None:
            x = left + (k + 1) * (cell + pad) + 4 * pad
            _paste(canvas, truth_images[r], x, y, cell)
            draw.rectangle([x - 2, y - 2, x + cell + 1, y + cell + 1], outline=BLUE, width=3)
    with epath.Path(path).open("wb") as f:  # a gs:// workdir works too
        canvas.save(f, format="PNG")


def _paste(canvas, image, x, y, cell):
    canvas.paste(PIL.Image.fromarray(np.asarray(image, np.uint8)).resize((cell, cell)), (x, y))


def style_consistency(ranks, photo_ids, path, *, title: str = "") -> None:
    """How much the rank of a photo depends on who sketched it (StyleMeUp's style consistency).

    One column per photo with at least two sketches, sorted by median rank: a dot per sketch at
    the rank of the true photo, joined by a line from the best to the worst. Short lines = style
    does not matter; rank_avg and V_avg (mean per-photo rank variance) are in the title."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ranks = np.asarray(ranks, float)
    groups = sorted(metrics.ranks_by_photo(ranks, photo_ids), key=np.median)
    fig, ax = plt.subplots(figsize=(9, 3.6), dpi=110)
    for x, g in enumerate(groups):
        ax.plot([x, x], [g.min(), g.max()], color=(0.6, 0.6, 0.6), lw=1, zorder=1)
        ax.scatter(np.full(len(g), x), g, s=7, color=np.array(BLUE) / 255, zorder=2)
    ax.set_yscale("log")
    ax.set_xlabel("test photo (sorted by median rank)")
    ax.set_ylabel("rank of the true photo")
    v_avg = metrics.style_consistency(ranks, photo_ids)["v_avg"]
    ax.set_title(f"{title}  rank_avg={ranks.mean():.2f}  V_avg={v_avg:.1f}".strip(), fontsize=9)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    with epath.Path(path).open("wb") as f:
        fig.savefig(f, format="png")
    plt.close(fig)
