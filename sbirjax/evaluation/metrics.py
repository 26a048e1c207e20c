"""Retrieval metrics for sketch-based image retrieval, pure NumPy.

Published SBIR numbers use several incompatible conventions for "the same" metric. Each convention
has its own function here, named after what it computes; the docstrings say which benchmarks use it
(see also ``docs/metrics.md``).

Fine-grained (instance-level) retrieval:
  * ``fg_ranks`` / ``fg_acc_at_k``: rank of the paired photo, ties counted against the query.
  * ``fg_ranks_within_class``: the same, only counting gallery photos of the query's class.
  * ``style_consistency``: mean rank and mean per-photo rank variance over several sketchers.

Category-level retrieval (relevant = same class):
  * ``average_precision``: non-interpolated AP, identical to scikit-learn (tied scores = one
    threshold).
  * ``voc_average_precision``: VOC-interpolated AP, optionally truncated at K with R_K = min(K, R).
  * ``precision_at_k`` (relevant in top K / K) and ``precision_at_k_min_r`` (top min(K, R) items).
  * ``category_retrieval_metrics``: all of the above over a query set, streamed over query blocks.

Ordering and ties: wherever an explicit order is needed, items are sorted by descending score with a
stable sort on ``-score``, so tied items keep their gallery order (lower gallery index first). Only
``average_precision`` (and ``map@all``) is independent of that tie-break; VOC AP and both P@K
conventions depend on it, as they do in the reference implementations. Ties are exact float
equality, so they depend on how the scores were computed.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

__all__ = [
    "fg_ranks",
    "fg_acc_at_k",
    "fg_ranks_within_class",
    "average_precision",
    "voc_average_precision",
    "precision_at_k",
    "precision_at_k_min_r",
    "category_retrieval_metrics",
    "style_consistency",
]

_FG_BLOCK = 1024
_METRIC_RE = re.compile(r"^(map|map_voc|p|p_minr)@(all|[1-9][0-9]*)(/class_balanced)?$")
SIMILARITIES = ("cosine", "neg_euclidean")


# --------------------------------------------------------------------------------------------------
# validation helpers


def _as_matrix(x, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (items, dim), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise ValueError(f"{name} must be real-valued, got dtype {x.dtype}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains non-finite values")
    return x


def _check_pair(query_emb, gallery_emb) -> tuple[np.ndarray, np.ndarray]:
    q = _as_matrix(query_emb, "query_emb")
    g = _as_matrix(gallery_emb, "gallery_emb")
    if q.shape[0] == 0:
        raise ValueError("query_emb is empty: need at least one query")
    if g.shape[0] == 0:
        raise ValueError("gallery_emb is empty: need at least one gallery item")
    if q.shape[1] != g.shape[1]:
        raise ValueError(
            f"embedding dims differ: query_emb has {q.shape[1]}, gallery_emb has {g.shape[1]}")
    return q, g


def _as_labels(labels, n: int, name: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},), got {labels.shape}")
    return labels


def _as_index(query_to_gallery, n_queries: int, n_gallery: int) -> np.ndarray:
    idx = np.asarray(query_to_gallery)
    if idx.ndim != 1 or idx.shape[0] != n_queries:
        raise ValueError(f"query_to_gallery must have shape ({n_queries},), got {idx.shape}")
    if idx.dtype == bool or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"query_to_gallery must hold integer indices, got dtype {idx.dtype}")
    if idx.min() < 0 or idx.max() >= n_gallery:
        raise ValueError(
            f"query_to_gallery out of range: values must lie in [0, {n_gallery}), "
            f"got min {idx.min()} and max {idx.max()}")
    return idx.astype(np.int64)


def _check_ranking(relevant, scores) -> tuple[np.ndarray, np.ndarray]:
    rel = np.asarray(relevant)
    s = np.asarray(scores, dtype=np.float64)
    if rel.ndim != 1 or s.ndim != 1 or rel.shape != s.shape:
        raise ValueError(
            f"relevant and scores must be 1-D of equal length, got {rel.shape} and {s.shape}")
    if rel.shape[0] == 0:
        raise ValueError("empty ranking: relevant and scores have no items")
    if rel.dtype != bool:
        if not np.all((rel == 0) | (rel == 1)):
            raise ValueError("relevant must be boolean or 0/1")
        rel = rel.astype(bool)
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain non-finite values")
    return rel, s


def _check_k(k) -> int:
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return int(k)


def _nanmean(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0 or np.all(np.isnan(x)):
        return float("nan")
    return float(np.nanmean(x))


def _sorted_relevance(rel: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Relevance and scores in descending-score order (stable sort on -score)."""
    order = np.argsort(-s, kind="stable")
    return rel[order], s[order]


# --------------------------------------------------------------------------------------------------
# fine-grained retrieval


def _fg_rank_blocks(q, g, idx, q_labels=None, g_labels=None) -> np.ndarray:
    q = q.astype(np.float64)
    g = g.astype(np.float64)
    gg = np.einsum("ij,ij->i", g, g)
    ranks = np.empty(q.shape[0], dtype=np.int64)
    for start in range(0, q.shape[0], _FG_BLOCK):
        stop = min(start + _FG_BLOCK, q.shape[0])
        qb = q[start:stop]
        d2 = np.einsum("ij,ij->i", qb, qb)[:, None] + gg[None, :] - 2.0 * (qb @ g.T)
        d = np.sqrt(np.maximum(d2, 0.0))
        d_true = d[np.arange(stop - start), idx[start:stop]]
        hit = d <= d_true[:, None]
        if q_labels is not None:
            hit &= g_labels[None, :] == q_labels[start:stop, None]
        ranks[start:stop] = hit.sum(axis=1)
    return ranks


def fg_ranks(query_emb, gallery_emb, query_to_gallery) -> np.ndarray:
    """Fine-grained rank of each query's paired photo (SketchX convention).

    Convention "FG acc@K" (Triplet-SN baselines, StyleMeUp, on-the-fly; QMUL-ShoeV2 / ChairV2):
    ``rank_q = #{g : d(q, g) <= d(q, p_q)}`` with d the Euclidean distance on the embeddings as
    given (callers pass L2-normalised embeddings). The true photo counts itself, so rank >= 1, and
    every tie with the true photo counts against the query.

    Args:
      query_emb: (Q, D) sketch embeddings.
      gallery_emb: (G, D) photo embeddings, one per unique photo.
      query_to_gallery: (Q,) int, index of each query's paired photo in the gallery.
    Returns:
      (Q,) int64 ranks in [1, G].
    """
    q, g = _check_pair(query_emb, gallery_emb)
    idx = _as_index(query_to_gallery, q.shape[0], g.shape[0])
    return _fg_rank_blocks(q, g, idx)


def fg_ranks_within_class(query_emb, gallery_emb, query_to_gallery, query_labels,
                          gallery_labels) -> np.ndarray:
    """Fine-grained rank counting only gallery photos of the query's class.

    Convention "FG acc@K within the query's class" (fine-grained zero-shot, FG-ZS Sketchy
    acc@1/acc@5): ``rank_q = #{g : class(g) = class(q), d(q, g) <= d(q, p_q)}``, Euclidean distance,
    ties against the query, rank >= 1. The paired photo must belong to the query's class.
    """
    q, g = _check_pair(query_emb, gallery_emb)
    idx = _as_index(query_to_gallery, q.shape[0], g.shape[0])
    q_labels = _as_labels(query_labels, q.shape[0], "query_labels")
    g_labels = _as_labels(gallery_labels, g.shape[0], "gallery_labels")
    bad = g_labels[idx] != q_labels
    if np.any(bad):
        raise ValueError(
            f"{int(bad.sum())} queries are paired with a photo of another class "
            f"(first: query {int(np.argmax(bad))})")
    return _fg_rank_blocks(q, g, idx, q_labels, g_labels)


def fg_acc_at_k(ranks, ks: Sequence[int] = (1, 10)) -> dict[str, float]:
    """Fine-grained acc@K = fraction of queries with rank <= K (no averaging per photo).

    Used for QMUL-ShoeV2 / ChairV2 (acc@1, acc@10) and FG-ZS Sketchy (acc@1, acc@5).
    Returns ``{'acc@K': fraction in [0, 1]}`` for each K in ``ks``.
    """
    ranks = np.asarray(ranks)
    if ranks.ndim != 1 or ranks.shape[0] == 0:
        raise ValueError(f"ranks must be a non-empty 1-D array, got shape {ranks.shape}")
    if np.any(ranks < 1):
        raise ValueError("ranks must be >= 1")
    return {f"acc@{_check_k(k)}": float(np.mean(ranks <= k)) for k in ks}


def ranks_by_photo(ranks, photo_ids) -> list:
    """The ranks of each photo's sketches, for every photo sketched at least twice (in the order
    of the sorted photo ids): the one grouping behind V_avg, its plot and the runs' comparison."""
    ranks, photo_ids = np.asarray(ranks, dtype=np.float64), np.asarray(photo_ids)
    _, inverse, counts = np.unique(photo_ids, return_inverse=True, return_counts=True)
    return [ranks[inverse == p] for p in np.flatnonzero(counts >= 2)]


def style_consistency(ranks, photo_ids) -> dict:
    """Rank statistics over photos sketched several times (StyleMeUp's style-consistency study).

    ``rank_avg``: mean rank over all queries. ``v_avg``: mean over photos with at least two sketches
    of the population variance (ddof=0) of the ranks of that photo's sketches (nan if there is no
    such photo). ``n_photos``: number of photos entering ``v_avg``.
    """
    ranks = np.asarray(ranks, dtype=np.float64)
    if ranks.ndim != 1 or ranks.shape[0] == 0:
        raise ValueError(f"ranks must be a non-empty 1-D array, got shape {ranks.shape}")
    photo_ids = _as_labels(photo_ids, ranks.shape[0], "photo_ids")
    variances = [np.var(g) for g in ranks_by_photo(ranks, photo_ids)]
    return {
        "rank_avg": float(np.mean(ranks)),
        "v_avg": float(np.mean(variances)) if variances else float("nan"),
        "n_photos": len(variances),
    }


# --------------------------------------------------------------------------------------------------
# category-level retrieval, one ranking at a time


def average_precision(relevant, scores) -> float:
    """Non-interpolated AP, identical to ``sklearn.metrics.average_precision_score``.

    Convention 1 (Sem-PCYC, Doodle2Search, StyleMeUp category code; StyleMeUp Sketchy-ext and
    TU-Berlin-ext mAP@all): ``AP = sum_t (R_t - R_{t-1}) P_t`` over distinct score thresholds t, so
    tied scores form one threshold and the order inside a tie does not matter. Returns nan when no
    item is relevant.
    """
    rel, s = _check_ranking(relevant, scores)
    n_rel = int(rel.sum())
    if n_rel == 0:
        return float("nan")
    rel_sorted, s_sorted = _sorted_relevance(rel, s)
    tp = np.cumsum(rel_sorted)
    ends = np.flatnonzero(np.append(s_sorted[1:] != s_sorted[:-1], True))  # last item of each tie
    tp_at_ends = tp[ends]
    precision = tp_at_ends / (ends + 1.0)
    delta_tp = np.diff(tp_at_ends, prepend=0)
    return float(np.sum(delta_tp * precision) / n_rel)


def voc_average_precision(relevant, scores, k: int | None = None) -> float:
    """VOC-interpolated AP, optionally truncated at k.

    Convention 2 (SAKE, ZSE-SBIR, MA-SBIR; zero-shot Sketchy / TU-Berlin / QuickDraw mAP@all,
    Sketchy split-2 mAP@200). Items are sorted by descending score with a stable sort on ``-score``
    (ties keep their input order); tp and fp are cumulated item by item; ``recall = tp / R`` where R
    is the number of relevant items, or with k the ranking is cut to the top k and
    ``R_K = min(k, R)``; ``precision = tp / (tp + fp)``. Recall is padded to [0, ..., 1] and
    precision to [0, ..., 0], precision is made monotone from the right, and AP sums delta-recall x
    precision where recall changes. Returns nan when no item is relevant.
    """
    rel, s = _check_ranking(relevant, scores)
    n_rel = int(rel.sum())
    if k is not None:
        n_rel = min(_check_k(k), n_rel)
    if n_rel == 0:
        return float("nan")
    rel_sorted, _ = _sorted_relevance(rel, s)
    if k is not None:
        rel_sorted = rel_sorted[:k]
    tp = np.cumsum(rel_sorted)
    fp = np.cumsum(~rel_sorted)
    recall = np.concatenate([[0.0], tp / n_rel, [1.0]])
    precision = np.concatenate([[0.0], tp / (tp + fp), [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    changed = np.flatnonzero(recall[1:] != recall[:-1])
    return float(np.sum((recall[changed + 1] - recall[changed]) * precision[changed + 1]))


def precision_at_k(relevant, scores, k: int) -> float:
    """P@K, convention (a): number of relevant items in the top k divided by k.

    Used by SAKE, Sem-PCYC and StyleMeUp's category tables (P@200). All top-k items are read (not
    only the item at sorted index k). Ties are broken by the stable sort on ``-score``. If the
    ranking holds fewer than k items the denominator is still k.
    """
    rel, s = _check_ranking(relevant, scores)
    k = _check_k(k)
    rel_sorted, _ = _sorted_relevance(rel, s)
    return float(np.sum(rel_sorted[:k]) / k)


def precision_at_k_min_r(relevant, scores, k: int) -> float:
    """P@K, convention (b): mean relevance of the top min(k, R) items, R = number of relevant items.

    Used by ZSE-SBIR and MA-SBIR (zero-shot Sketchy P@100 / P@200, TU-Berlin P@100, QuickDraw
    P@200). Equals convention (a) when R >= k; when R < k they usually differ (a perfect ranking
    scores 1 here but R / k under (a)). Ties are broken by the stable sort on ``-score``. Returns
    nan when R = 0.
    """
    rel, s = _check_ranking(relevant, scores)
    k = _check_k(k)
    n = min(k, int(rel.sum()))
    if n == 0:
        return float("nan")
    rel_sorted, _ = _sorted_relevance(rel, s)
    return float(np.mean(rel_sorted[:n]))


# --------------------------------------------------------------------------------------------------
# category-level retrieval over a query set, streamed


def _parse_metrics(metrics) -> list[tuple[str, str, int | None, bool]]:
    if isinstance(metrics, str):
        metrics = [metrics]
    parsed = []
    for name in metrics:
        m = _METRIC_RE.match(name) if isinstance(name, str) else None
        if m is None:
            raise ValueError(
                f"unknown metric {name!r}; expected 'map@all', 'map_voc@all', 'map_voc@K', "
                "'p@K' or 'p_minr@K' (K a positive integer), optionally with suffix "
                "'/class_balanced'")
        kind, k, balanced = m.group(1), m.group(2), m.group(3) is not None
        if k == "all" and kind in ("p", "p_minr"):
            raise ValueError(f"metric {name!r} needs an integer K")
        if k != "all" and kind == "map":
            raise ValueError(f"metric {name!r}: non-interpolated AP is only defined as 'map@all'")
        base = f"{kind}@{k}"
        parsed.append((name, base, None if k == "all" else int(k), balanced))
    if not parsed:
        raise ValueError("metrics is empty")
    return parsed


def _block_scores(qb, g_t, g_sq, similarity) -> np.ndarray:
    """Scores of one query block against the whole gallery; higher means more similar."""
    if similarity == "cosine":
        return qb @ g_t
    d2 = np.einsum("ij,ij->i", qb, qb)[:, None] + g_sq[None, :] - 2.0 * (qb @ g_t)
    return -np.sqrt(np.maximum(d2, 0.0))


def _block_map_sklearn(rel_sorted, s_sorted, tp, n_rel) -> np.ndarray:
    """Non-interpolated AP per row (scikit-learn convention) from rows sorted by descending
    score."""
    b, n = rel_sorted.shape
    cols = np.arange(n, dtype=np.int32)
    is_end = np.ones((b, n), dtype=bool)
    is_end[:, :-1] = s_sorted[:, 1:] != s_sorted[:, :-1]
    # index of the last item of the tie group each position belongs to: running minimum from
    # the right
    end_idx = np.where(is_end, cols, n - 1)
    end_idx = np.minimum.accumulate(end_idx[:, ::-1], axis=1)[:, ::-1]
    precision_at_end = np.take_along_axis(tp, end_idx, axis=1) / (end_idx + 1.0)
    total = np.sum(precision_at_end, axis=1, where=rel_sorted)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n_rel > 0, total / n_rel, np.nan)


def _block_map_voc(rel_sorted, tp, n_rel, k) -> np.ndarray:
    """VOC-interpolated AP per row; equals ``voc_average_precision`` applied row by row.

    Recall rises by 1 / R_K at each relevant item of the top k and nowhere else, and the
    interpolated precision there is the running maximum of precision from the right, so AP is the
    sum of that maximum over the relevant top-k items, divided by R_K = min(k, R).
    """
    n = rel_sorted.shape[1]
    k = n if k is None else min(k, n)
    precision = tp[:, :k] / np.arange(1.0, k + 1.0)
    interp = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    total = np.sum(interp, axis=1, where=rel_sorted[:, :k])
    denom = np.minimum(n_rel, k)  # R <= n, so for k = None this is R
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom > 0, total / denom, np.nan)


def _block_values(scores, rel_matrix, needs) -> dict[str, np.ndarray]:
    """Per-query values for one block, all metrics from a single stable argsort per row."""
    order = np.argsort(-scores, axis=1, kind="stable")
    rel_sorted = np.take_along_axis(rel_matrix, order, axis=1)
    n_rel = rel_matrix.sum(axis=1)
    tp = np.cumsum(rel_sorted, axis=1, dtype=np.int32)
    n = scores.shape[1]
    out = {}
    for base, kind, k in needs:
        if kind == "map":
            s_sorted = np.take_along_axis(scores, order, axis=1)
            out[base] = _block_map_sklearn(rel_sorted, s_sorted, tp, n_rel)
            del s_sorted
        elif kind == "map_voc":
            out[base] = _block_map_voc(rel_sorted, tp, n_rel, k)
        elif kind == "p":
            out[base] = tp[:, min(k, n) - 1] / float(k)
        else:  # p_minr: mean relevance of the top min(k, R) items
            m = np.minimum(n_rel, k)
            hits = tp[np.arange(tp.shape[0]), np.maximum(m, 1) - 1]
            with np.errstate(divide="ignore", invalid="ignore"):
                out[base] = np.where(m > 0, hits / m, np.nan)
    return out


def _class_balanced(values: np.ndarray, query_labels: np.ndarray) -> float:
    _, inverse = np.unique(query_labels, return_inverse=True)
    per_class = [_nanmean(values[inverse == c]) for c in range(inverse.max() + 1)]
    return _nanmean(per_class)


def category_retrieval_metrics(query_emb, query_labels, gallery_emb, gallery_labels, *,
                               metrics: Sequence[str] = ("map@all",), block_size: int = 1024,
                               similarity: str = "cosine", return_per_query: bool = False):
    """Category-level retrieval metrics over a query set, streamed over blocks of queries.

    A gallery item is relevant to a query when their labels are equal. Scores are ``similarity =
    'cosine'`` (rows L2-normalised, then dot product) or ``'neg_euclidean'`` (minus the Euclidean
    distance on the embeddings as given). Queries are processed ``block_size`` at a time: only a
    (block_size, G) score matrix and its sorted copies exist at once (memory O(block_size x G)), and
    each row is argsorted once (stable on ``-score``) and shared by all metrics.

    Metric names (each documented at its scalar counterpart, which it matches query by query):
      'map@all'      non-interpolated AP, scikit-learn convention (``average_precision``)
      'map_voc@all'  VOC-interpolated AP (``voc_average_precision``)
      'map_voc@K'    VOC AP on the top K with R_K = min(K, R)
      'p@K'          relevant in top K / K (``precision_at_k``, convention a)
      'p_minr@K'     mean relevance of the top min(K, R) (``precision_at_k_min_r``, convention b)
    with optional suffix '/class_balanced' (TCN): average over the queries of each class first, then
    over classes. Per-query values are averaged with nanmean (queries with no relevant item give nan
    for every AP and for 'p_minr', and are skipped).

    Returns:
      ``{name: value}``, and when ``return_per_query`` also ``{base_name: (Q,) float64}`` keyed by
      the name without the '/class_balanced' suffix.
    """
    q, g = _check_pair(query_emb, gallery_emb)
    q_labels = _as_labels(query_labels, q.shape[0], "query_labels")
    g_labels = _as_labels(gallery_labels, g.shape[0], "gallery_labels")
    if similarity not in SIMILARITIES:
        raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")
    if isinstance(block_size, (bool, np.bool_)) or not isinstance(block_size, (int, np.integer)) \
            or block_size < 1:
        raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
    parsed = _parse_metrics(metrics)
    needs = list(dict.fromkeys((base, base.split("@")[0], k) for _, base, k, _ in parsed))

    dtype = np.result_type(q.dtype, g.dtype, np.float32)
    q = q.astype(dtype, copy=False)
    g = g.astype(dtype, copy=False)
    if similarity == "cosine":
        q_norm = np.linalg.norm(q, axis=1, keepdims=True)
        g_norm = np.linalg.norm(g, axis=1, keepdims=True)
        if np.any(q_norm == 0) or np.any(g_norm == 0):
            raise ValueError("cosine similarity needs non-zero embeddings")
        q = q / q_norm
        g = g / g_norm
    g_t = np.ascontiguousarray(g.T)
    g_sq = np.einsum("ij,ij->i", g, g)

    per_query = {base: np.empty(q.shape[0], dtype=np.float64) for base, _, _ in needs}
    for start in range(0, q.shape[0], block_size):
        stop = min(start + block_size, q.shape[0])
        scores = _block_scores(q[start:stop], g_t, g_sq, similarity)
        rel_matrix = g_labels[None, :] == q_labels[start:stop, None]
        for base, values in _block_values(scores, rel_matrix, needs).items():
            per_query[base][start:stop] = values

    results = {}
    for name, base, _, balanced in parsed:
        values = per_query[base]
        results[name] = _class_balanced(values, q_labels) if balanced else _nanmean(values)
    return (results, per_query) if return_per_query else results
