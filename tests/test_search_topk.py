"""Blockwise top-k of sbirjax.search.query against numpy's brute force (stable argsort)."""
import jax
import numpy as np
import pytest

from sbirjax.search import query


def _numpy_top_k(queries, gallery, k):
    scores = np.asarray(queries, np.float32) @ np.asarray(gallery, np.float32).T
    rows = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, rows, axis=1), rows


@pytest.mark.parametrize("q, n, k, block", [(4, 50, 5, 16),    # N not a multiple of the block
                                            (3, 64, 40, 16),   # k above the block
                                            (8, 10, 10, 4),    # k = N
                                            (5, 33, 7, 100),   # one block, larger than N
                                            (2, 17, 3, 1)])    # one row per block
def test_blocks_equal_numpy(q, n, k, block):
    rng = np.random.default_rng(n * 100 + k)
    queries = query.normalize(rng.normal(size=(q, 16)))
    gallery = query.normalize(rng.normal(size=(n, 16)))
    scores, rows = query.top_k(queries, gallery, k, block=block)
    want_scores, want_rows = _numpy_top_k(queries, gallery, k)
    np.testing.assert_array_equal(np.asarray(rows), want_rows)
    np.testing.assert_allclose(np.asarray(scores), want_scores, atol=1e-6)


def test_float16_memmap_gallery_and_k_above_n(tmp_path):
    rng = np.random.default_rng(0)
    queries = query.normalize(rng.normal(size=(6, 32)))
    path = str(tmp_path / "g.npy")
    np.save(path, query.normalize(rng.normal(size=(101, 32))).astype(np.float16))
    gallery = np.load(path, mmap_mode="r")
    scores, rows = query.top_k(queries, gallery, 9, block=25)
    want_scores, want_rows = _numpy_top_k(queries, gallery, 9)
    np.testing.assert_array_equal(np.asarray(rows), want_rows)
    np.testing.assert_allclose(np.asarray(scores), want_scores, atol=1e-6)
    scores, rows = query.top_k(queries, gallery, 500, block=25)  # k above N: the whole gallery
    assert rows.shape == (6, 101)
    np.testing.assert_array_equal(np.asarray(rows), _numpy_top_k(queries, gallery, 101)[1])


def test_ties_in_ascending_row_order():
    """Small integers: every score is exact, and most of them tie."""
    rng = np.random.default_rng(3)
    queries = rng.integers(-2, 3, (5, 8)).astype(np.float32)
    gallery = rng.integers(-1, 2, (70, 8)).astype(np.float16)
    for block in (8, 13, 70):
        scores, rows = query.top_k(queries, gallery, 30, block=block)
        want_scores, want_rows = _numpy_top_k(queries, gallery, 30)
        np.testing.assert_array_equal(np.asarray(rows), want_rows)
        np.testing.assert_array_equal(np.asarray(scores), want_scores)


def test_query_sharding_and_device_gallery_and_approx():
    rng = np.random.default_rng(4)
    n_dev = len(jax.local_devices())
    gallery = query.normalize(rng.normal(size=(40, 8)))
    for q in (2 * n_dev, 2 * n_dev + 1):
        queries = query.normalize(rng.normal(size=(q, 8)))
        scores, rows = query.top_k(queries, jax.device_put(gallery), 6, block=16)
        np.testing.assert_array_equal(np.asarray(rows), _numpy_top_k(queries, gallery, 6)[1])
        split = rows.sharding.spec[0] is not None
        assert split == (q % n_dev == 0) or n_dev == 1
    # approx_max_k per block: exact off TPU, so equal here; on TPU only its recall is promised
    if jax.default_backend() != "tpu":
        got = query.top_k(queries, gallery, 6, block=16, approx=True)[1]
        np.testing.assert_array_equal(np.asarray(got), _numpy_top_k(queries, gallery, 6)[1])
    assert "approx_top_k" in str(jax.make_jaxpr(
        lambda a, b: query._merge_block(jax.numpy.full((2, 3), -jax.numpy.inf),
                                        jax.numpy.zeros((2, 3), "int32"), a, b, 0, 8,
                                        k=3, approx=True))(queries[:2], gallery[:8]))


@pytest.mark.parametrize("n, block, expected", [
    (1, 32768, 1), (7, 3, 3), (9, 32768, 9), (100, 20, 20), (100, 30, 25),
    (100_000, 32768, 25_000), (1_000_000, 32768, 32264)])
def test_balanced_blocks_cover_the_gallery_within_the_block_size(n, block, expected):
    got = query._balanced_block(n, block)
    assert got == expected and got <= block and -(-n // got) == -(-n // min(block, n))


def test_empty_gallery():
    scores, rows = query.top_k(np.ones((3, 4), np.float32), np.zeros((0, 4), np.float32), 5)
    assert scores.shape == rows.shape == (3, 0)
