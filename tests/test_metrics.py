"""Tests for sbirjax.evaluation.metrics: known answers, scikit-learn cross-checks, independent
re-implementations."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from sbirjax.evaluation import metrics as M

# --------------------------------------------------------------------------------------------------
# helpers


def _exact_embeddings(rng, n, dim=8, nonzero=4):
    """Vectors with `nonzero` entries of +-1: after L2 normalisation entries are +-0.5, so every dot
    product is an exact multiple of 0.25 and ties are exact whatever the summation order."""
    x = np.zeros((n, dim))
    for i in range(n):
        cols = rng.choice(dim, size=nonzero, replace=False)
        x[i, cols] = rng.choice([-1.0, 1.0], size=nonzero)
    return x


def _loop_voc_ap(relevant, scores, k=None):
    """Plain-loop VOC AP: walk the ranking, keep precision/recall lists, interpolate by hand."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))  # stable descending
    if k is not None:
        order = order[:k]
    total_rel = int(sum(bool(r) for r in relevant))
    if k is not None:
        total_rel = min(k, total_rel)
    if total_rel == 0:
        return float("nan")
    recalls, precisions, tp = [], [], 0
    for pos, i in enumerate(order, start=1):
        tp += bool(relevant[i])
        recalls.append(tp / total_rel)
        precisions.append(tp / pos)
    ap, prev_recall = 0.0, 0.0
    for j in range(len(recalls)):
        if recalls[j] != prev_recall:
            ap += (recalls[j] - prev_recall) * max(precisions[j:])
            prev_recall = recalls[j]
    return ap


# --------------------------------------------------------------------------------------------------
# fine-grained ranks

# gallery on the unit circle; squared distances are exact (0, 2 or 4)
GALLERY = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])


def test_fg_ranks_known_answer_with_ties():
    queries = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, -1.0], [-1.0, 0.0]])
    q2g = np.array([1, 1, 2, 2])
    # q0 = g0, true g1 at sqrt2; g0 (0), g1 (sqrt2) and g3 (sqrt2, a tie) are <= sqrt2 -> rank 3
    # q1 = g1, true g1 at 0 -> rank 1
    # q2 = g3, true g2 at sqrt2; g3 (0), g2, g0 (sqrt2, tie) -> rank 3
    # q3 = g2, true g2 at 0 -> rank 1
    ranks = M.fg_ranks(queries, GALLERY, q2g)
    np.testing.assert_array_equal(ranks, [3, 1, 3, 1])
    assert ranks.dtype.kind == "i"
    # acc@1 = 2/4, acc@2 = 2/4, acc@3 = 4/4
    assert M.fg_acc_at_k(ranks, ks=(1, 2, 3)) == {"acc@1": 0.5, "acc@2": 0.5, "acc@3": 1.0}


def test_fg_tie_with_true_photo_counts_against_query():
    # query exactly between g0 and g1 (equal distance); true photo g0; g1 ties -> rank 2, not 1
    q = np.array([[np.sqrt(0.5), np.sqrt(0.5)]])
    gallery = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    assert M.fg_ranks(q, gallery, [0]).tolist() == [2]
    assert M.fg_acc_at_k(M.fg_ranks(q, gallery, [0]), ks=(1,)) == {"acc@1": 0.0}


def test_fg_acc_default_ks():
    ranks = np.array([1, 2, 10, 11, 1])
    # acc@1 = 2/5, acc@10 = 4/5
    assert M.fg_acc_at_k(ranks) == {"acc@1": 0.4, "acc@10": 0.8}


def test_fg_ranks_within_class():
    queries = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, -1.0], [-1.0, 0.0]])
    q2g = np.array([1, 1, 2, 2])
    gallery_labels = np.array([0, 0, 1, 1])
    query_labels = np.array([0, 0, 1, 1])
    # q0: class 0 items g0 (0), g1 (sqrt2, true): the tie with g3 is out of class -> rank 2 (vs 3)
    # q2: class 1 items g2 (sqrt2, true), g3 (0): g0 is out of class -> rank 2 (vs 3)
    ranks = M.fg_ranks_within_class(queries, GALLERY, q2g, query_labels, gallery_labels)
    np.testing.assert_array_equal(ranks, [2, 1, 2, 1])
    with pytest.raises(ValueError, match="another class"):
        M.fg_ranks_within_class(queries, GALLERY, q2g, np.array([0, 0, 0, 1]), gallery_labels)


def test_fg_ranks_match_bruteforce_on_random_data():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(30, 5))
    g = rng.normal(size=(12, 5))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    q2g = rng.integers(0, 12, size=30)
    d = np.linalg.norm(q[:, None, :] - g[None, :, :], axis=-1)
    expected = [int(np.sum(d[i] <= d[i, q2g[i]] + 1e-12)) for i in range(30)]  # no near-ties here
    np.testing.assert_array_equal(M.fg_ranks(q, g, q2g), expected)


# --------------------------------------------------------------------------------------------------
# non-interpolated AP


def test_average_precision_known_answers():
    # relevant at ranks 1 and 3: (1/1 + 2/3) / 2 = 5/6
    assert M.average_precision([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.6]) == pytest.approx(5 / 6)
    # relevant items tied at ranks 2-3 form one threshold with precision 2/3: AP = 2/3
    # (ranking the tie item by item would give (1/2 + 2/3) / 2 = 7/12)
    rel, s = [0, 1, 1, 0], [0.9, 0.5, 0.5, 0.1]
    assert M.average_precision(rel, s) == pytest.approx(2 / 3)
    assert M.average_precision(rel, s) == pytest.approx(average_precision_score(rel, s))
    # one relevant and one irrelevant item tied at the top: precision 1/2 at that threshold,
    # whichever comes first in the input -> AP = 1/2 both ways
    assert M.average_precision([True, False], [0.3, 0.3]) == pytest.approx(0.5)
    assert M.average_precision([False, True], [0.3, 0.3]) == pytest.approx(0.5)


def test_average_precision_no_relevant_is_nan():
    assert np.isnan(M.average_precision([0, 0, 0], [0.1, 0.2, 0.3]))


@pytest.mark.parametrize("seed", range(6))
def test_average_precision_matches_sklearn_with_many_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 300))
    scores = np.round(rng.random(n), 1)  # ~11 distinct values -> many ties
    relevant = rng.random(n) < rng.uniform(0.05, 0.6)
    relevant[rng.integers(n)] = True
    got = M.average_precision(relevant, scores)
    assert got == pytest.approx(average_precision_score(relevant, scores), rel=1e-12, abs=1e-15)
    # permuting the items (and so the order inside ties) cannot change it
    perm = rng.permutation(n)
    assert M.average_precision(relevant[perm], scores[perm]) == pytest.approx(got, rel=1e-12)


# --------------------------------------------------------------------------------------------------
# VOC-interpolated AP


def test_voc_ap_known_answers():
    rel = [0, 1, 0, 0, 1, 1]
    s = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    # precision by rank: 0, 1/2, 1/3, 1/4, 2/5, 3/6; monotone from the right at the relevant ranks:
    # 1/2, 1/2, 1/2 -> AP = (1/2 + 1/2 + 1/2) / 3 = 1/2  (non-interpolated: (1/2 + 2/5 + 1/2)/3)
    assert M.voc_average_precision(rel, s) == pytest.approx(0.5)
    assert M.average_precision(rel, s) == pytest.approx(1.4 / 3)
    # @2, R = 3 > K: R_K = 2, top 2 = [0, 1], precision 1/2 at rank 2 -> AP = (1/2) / 2 = 1/4
    assert M.voc_average_precision(rel, s, k=2) == pytest.approx(0.25)
    # @4: R_K = 3, only rank 2 relevant, interpolated precision max(1/2, 1/3, 1/4)
    # -> (1/2) / 3 = 1/6
    assert M.voc_average_precision(rel, s, k=4) == pytest.approx(1 / 6)
    # @5: ranks 2 and 5 relevant, interpolated 1/2 and 2/5 -> (1/2 + 2/5) / 3 = 0.3
    assert M.voc_average_precision(rel, s, k=5) == pytest.approx(0.3)
    # @10 > n, R = 3 < K: same as @all
    assert M.voc_average_precision(rel, s, k=10) == pytest.approx(0.5)
    # @1 with nothing relevant in the top 1 -> 0 (not nan: R_K = 1)
    assert M.voc_average_precision(rel, s, k=1) == 0.0
    assert np.isnan(M.voc_average_precision([0, 0], [0.2, 0.1]))


def test_voc_ap_tie_break_is_stable():
    # equal scores keep input order: [rel, irrel] -> AP 1; [irrel, rel] -> precision 1/2 -> AP 1/2
    assert M.voc_average_precision([1, 0], [0.5, 0.5]) == pytest.approx(1.0)
    assert M.voc_average_precision([0, 1], [0.5, 0.5]) == pytest.approx(0.5)


@pytest.mark.parametrize("seed", range(6))
def test_voc_ap_matches_loop_implementation(seed):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(5, 120))
    scores = np.round(rng.random(n), 1)
    relevant = rng.random(n) < rng.uniform(0.05, 0.5)
    relevant[rng.integers(n)] = True
    n_rel = int(relevant.sum())
    # k values covering R > K, R == K, R < K and K > n
    for k in (None, 1, max(1, n_rel // 2), n_rel, n_rel + 3, n + 5):
        want = _loop_voc_ap(relevant.tolist(), scores.tolist(), k)
        assert M.voc_average_precision(relevant, scores, k=k) == pytest.approx(want, rel=1e-12)


# --------------------------------------------------------------------------------------------------
# P@K, both conventions


def test_precision_at_k_known_answers():
    rel = [1, 0, 1, 0, 0, 0]
    s = [0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
    assert M.precision_at_k(rel, s, 1) == 1.0
    assert M.precision_at_k(rel, s, 4) == 0.5  # 2 relevant in top 4
    assert M.precision_at_k(rel, s, 10) == 0.2  # 2 / 10: denominator is K even past the end
    # (b): R = 2 < 4 -> top 2 = [1, 0] -> 1/2
    assert M.precision_at_k_min_r(rel, s, 4) == 0.5
    # (a) can exceed (b): ranking [0, 1, 1], R = 2, K = 3: (a) 2/3, (b) top 2 -> 1/2
    assert M.precision_at_k([0, 1, 1], [3, 2, 1], 3) == pytest.approx(2 / 3)
    assert M.precision_at_k_min_r([0, 1, 1], [3, 2, 1], 3) == 0.5
    # ties: stable order -> top 1 is the first tied item
    assert M.precision_at_k([0, 1], [0.5, 0.5], 1) == 0.0
    assert M.precision_at_k([1, 0], [0.5, 0.5], 1) == 1.0
    assert np.isnan(M.precision_at_k_min_r([0, 0], [0.5, 0.4], 1))


def test_precision_conventions_differ_exactly_when_r_below_k():
    rng = np.random.default_rng(7)
    for n_rel in range(1, 9):
        rel = np.zeros(12, dtype=bool)
        rel[:n_rel] = True
        s = -np.arange(12.0)  # perfect ranking: all relevant items first
        for k in range(1, 13):
            a, b = M.precision_at_k(rel, s, k), M.precision_at_k_min_r(rel, s, k)
            assert b == 1.0
            assert a == min(n_rel, k) / k
            assert (a != b) == (n_rel < k)
    # any ranking: equal whenever R >= K
    for _ in range(50):
        rel = rng.random(15) < 0.5
        s = np.round(rng.random(15), 1)
        k = int(rng.integers(1, 16))
        if rel.sum() >= k:
            assert M.precision_at_k(rel, s, k) == M.precision_at_k_min_r(rel, s, k)


# --------------------------------------------------------------------------------------------------
# streaming category-level metrics

ALL_METRICS = ["map@all", "map_voc@all", "map_voc@5", "map_voc@200", "p@5", "p_minr@5", "p@200",
               "map@all/class_balanced", "p_minr@5/class_balanced"]


def _streaming_case(seed=3, n_q=23, n_g=40):
    rng = np.random.default_rng(seed)
    q = _exact_embeddings(rng, n_q)
    g = _exact_embeddings(rng, n_g)
    q_labels = rng.choice(4, size=n_q, p=[0.5, 0.3, 0.15, 0.05])
    g_labels = rng.choice(5, size=n_g, p=[0.4, 0.3, 0.2, 0.1, 0.0])  # class 4 never in the gallery
    q_labels[0] = 4  # a query with no relevant item: nan for AP and p_minr, skipped by nanmean
    return q, q_labels, g, g_labels


def test_streaming_invariant_to_block_size():
    q, ql, g, gl = _streaming_case()
    outs = [M.category_retrieval_metrics(q, ql, g, gl, metrics=ALL_METRICS, block_size=bs,
                                         return_per_query=True) for bs in (1, 7, 1000)]
    res0, per0 = outs[0]
    assert set(res0) == set(ALL_METRICS)
    assert all(np.isfinite(v) for v in res0.values())
    for res, per in outs[1:]:
        assert res == res0
        assert per.keys() == per0.keys()
        for key in per0:
            np.testing.assert_array_equal(per[key], per0[key])


def test_streaming_matches_scalar_functions_per_query():
    q, ql, g, gl = _streaming_case()
    res, per = M.category_retrieval_metrics(q, ql, g, gl, metrics=ALL_METRICS, block_size=7,
                                            return_per_query=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    gn = g / np.linalg.norm(g, axis=1, keepdims=True)
    scores = qn @ gn.T  # exact multiples of 0.25: same ties as inside the streaming code
    assert len(np.unique(scores)) < 10  # the case really has many ties
    scalar = {"map@all": [], "map_voc@all": [], "map_voc@5": [], "map_voc@200": [], "p@5": [],
              "p_minr@5": [], "p@200": [], "sklearn": []}
    for i in range(len(q)):
        rel, s = gl == ql[i], scores[i]
        scalar["map@all"].append(M.average_precision(rel, s))
        scalar["map_voc@all"].append(M.voc_average_precision(rel, s))
        scalar["map_voc@5"].append(M.voc_average_precision(rel, s, k=5))
        scalar["map_voc@200"].append(M.voc_average_precision(rel, s, k=200))
        scalar["p@5"].append(M.precision_at_k(rel, s, 5))
        scalar["p_minr@5"].append(M.precision_at_k_min_r(rel, s, 5))
        scalar["p@200"].append(M.precision_at_k(rel, s, 200))
        scalar["sklearn"].append(average_precision_score(rel, s) if rel.any() else np.nan)
    for key in per:
        np.testing.assert_allclose(per[key], scalar[key], rtol=1e-12, atol=1e-15)
        assert res[key] == pytest.approx(np.nanmean(scalar[key]), rel=1e-12)
    np.testing.assert_allclose(per["map@all"], scalar["sklearn"], rtol=1e-12, atol=1e-15)
    assert np.isnan(per["map@all"][0]) and np.isnan(per["p_minr@5"][0]) and per["p@5"][0] == 0.0


def test_streaming_neg_euclidean_agrees_on_normalised_embeddings():
    q, ql, g, gl = _streaming_case(seed=11)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    gn = g / np.linalg.norm(g, axis=1, keepdims=True)
    names = ["map@all", "map_voc@all", "p@5", "p_minr@5"]
    cos = M.category_retrieval_metrics(qn, ql, gn, gl, metrics=names, block_size=5)
    euc = M.category_retrieval_metrics(qn, ql, gn, gl, metrics=names, block_size=5,
                                       similarity="neg_euclidean")
    assert cos == pytest.approx(euc, rel=1e-12)
    # unnormalised integer data: scores must be minus the Euclidean distance
    # (d^2 is an exact integer)
    g_scaled = g * np.arange(1, len(g) + 1)[:, None]
    res, per = M.category_retrieval_metrics(q, ql, g_scaled, gl, metrics=["map@all", "p_minr@5"],
                                            similarity="neg_euclidean", return_per_query=True)
    dist = np.sqrt(((q[:, None, :] - g_scaled[None, :, :]) ** 2).sum(-1))
    want_ap = [M.average_precision(gl == ql[i], -dist[i]) if np.any(gl == ql[i]) else np.nan
               for i in range(len(q))]
    want_p = [M.precision_at_k_min_r(gl == ql[i], -dist[i], 5) for i in range(len(q))]
    np.testing.assert_allclose(per["map@all"], want_ap, rtol=1e-12)
    np.testing.assert_allclose(per["p_minr@5"], want_p, rtol=1e-12)
    # cosine ignores the gallery scale, Euclidean does not
    cos_scaled = M.category_retrieval_metrics(q, ql, g_scaled, gl, metrics=["map@all"])
    assert cos_scaled["map@all"] == pytest.approx(
        M.category_retrieval_metrics(q, ql, g, gl, metrics=["map@all"])["map@all"], rel=1e-12)
    assert cos_scaled["map@all"] != pytest.approx(res["map@all"])


def test_class_balanced_known_answer():
    gallery = np.array([[1.0, 0.0], [0.0, 1.0]])
    g_labels = np.array([0, 1])
    queries = np.array([[1.0, 0.0]] * 4)
    q_labels = np.array([0, 0, 0, 1])
    # class-0 queries rank g0 first: AP 1, P@1 1; the class-1 query ranks g1 second: AP 1/2, P@1 0
    # plain mAP (1+1+1+1/2)/4 = 0.875, class-balanced (1 + 1/2)/2 = 0.75
    # plain P@1 3/4, class-balanced (1 + 0)/2 = 0.5
    res = M.category_retrieval_metrics(
        queries, q_labels, gallery, g_labels, block_size=3,
        metrics=["map@all", "map@all/class_balanced", "p@1", "p@1/class_balanced"])
    assert res == pytest.approx({"map@all": 0.875, "map@all/class_balanced": 0.75,
                                 "p@1": 0.75, "p@1/class_balanced": 0.5})


def test_class_balanced_matches_manual_grouping():
    q, ql, g, gl = _streaming_case(seed=5)
    res, per = M.category_retrieval_metrics(q, ql, g, gl, return_per_query=True,
                                            metrics=["map_voc@all", "map_voc@all/class_balanced"])
    vals = per["map_voc@all"]
    class_means = [np.nanmean(vals[ql == c]) for c in np.unique(ql)
                   if np.any(np.isfinite(vals[ql == c]))]
    assert res["map_voc@all/class_balanced"] == pytest.approx(np.mean(class_means), rel=1e-12)
    assert res["map_voc@all/class_balanced"] != pytest.approx(res["map_voc@all"])


# --------------------------------------------------------------------------------------------------
# style consistency


def test_style_consistency_known_answer():
    ranks = [1, 3, 2, 2, 5]
    photos = ["a", "a", "b", "b", "c"]
    # rank_avg = 13/5 = 2.6; var([1, 3]) = 1, var([2, 2]) = 0, photo c has one sketch -> v_avg = 0.5
    out = M.style_consistency(ranks, photos)
    assert out["rank_avg"] == pytest.approx(2.6)
    assert out["v_avg"] == pytest.approx(0.5)
    assert out["n_photos"] == 2
    # three sketches of one photo, ranks 1, 2, 6: population variance = (4 + 1 + 9) / 3 = 14/3
    assert M.style_consistency([1, 2, 6], [0, 0, 0])["v_avg"] == pytest.approx(14 / 3)
    assert np.isnan(M.style_consistency([1, 2], [0, 1])["v_avg"])


# --------------------------------------------------------------------------------------------------
# input validation


def test_bad_inputs_raise_value_error():
    q = np.ones((3, 2))
    g = np.ones((4, 2))
    with pytest.raises(ValueError, match="dims"):
        M.fg_ranks(q, np.ones((4, 3)), [0, 1, 2])
    with pytest.raises(ValueError, match="empty"):
        M.fg_ranks(q, np.ones((0, 2)), [0, 1, 2])
    with pytest.raises(ValueError, match="out of range"):
        M.fg_ranks(q, g, [0, 1, 4])
    with pytest.raises(ValueError, match="out of range"):
        M.fg_ranks(q, g, [0, -1, 2])
    with pytest.raises(ValueError, match="shape"):
        M.fg_ranks(q, g, [0, 1])
    with pytest.raises(ValueError, match="integer"):
        M.fg_ranks(q, g, [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="2-D"):
        M.fg_ranks(np.ones(3), g, [0, 1, 2])
    with pytest.raises(ValueError):
        M.fg_acc_at_k([])
    with pytest.raises(ValueError, match="equal length"):
        M.average_precision([1, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="empty"):
        M.voc_average_precision([], [])
    with pytest.raises(ValueError, match="positive integer"):
        M.voc_average_precision([1, 0], [0.1, 0.2], k=0)
    with pytest.raises(ValueError, match="positive integer"):
        M.precision_at_k([1, 0], [0.1, 0.2], 0)
    with pytest.raises(ValueError, match="non-finite"):
        M.average_precision([1, 0], [np.nan, 0.2])
    with pytest.raises(ValueError, match="shape"):
        M.style_consistency([1, 2, 3], [0, 0])
    ql, gl = [0, 1, 0], [0, 1, 1, 0]
    with pytest.raises(ValueError, match="unknown metric"):
        M.category_retrieval_metrics(q, ql, g, gl, metrics=["mAP@all"])
    with pytest.raises(ValueError, match="only defined"):
        M.category_retrieval_metrics(q, ql, g, gl, metrics=["map@200"])
    with pytest.raises(ValueError, match="integer K"):
        M.category_retrieval_metrics(q, ql, g, gl, metrics=["p@all"])
    with pytest.raises(ValueError, match="gallery_labels"):
        M.category_retrieval_metrics(q, ql, g, gl[:3])
    with pytest.raises(ValueError, match="empty"):
        M.category_retrieval_metrics(q, ql, np.ones((0, 2)), [])
    with pytest.raises(ValueError, match="block_size"):
        M.category_retrieval_metrics(q, ql, g, gl, block_size=0)
    with pytest.raises(ValueError, match="similarity"):
        M.category_retrieval_metrics(q, ql, g, gl, similarity="dot")
    with pytest.raises(ValueError, match="non-zero"):
        M.category_retrieval_metrics(np.zeros((3, 2)), ql, g, gl)
