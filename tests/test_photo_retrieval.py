"""The real-photo retrieval check's scoring (benchmarks/photo_retrieval.py) on known answers."""
import numpy as np
import pytest

pytest.importorskip("skimage")
from benchmarks import photo_retrieval  # noqa: E402


def test_perfect_embeddings_score_one_and_singletons_only_distract():
    labels = np.array(["a", "a", "b", "b", "b", "lone"])
    onehot = (labels[:, None] == np.array(["a", "b", "lone"])[None]).astype(float)
    got = photo_retrieval.category_scores(onehot + 0.01 * np.arange(6)[:, None], labels)
    assert got["queries"] == 5 and got["gallery"] == 5
    assert got["map"] == pytest.approx(1.0) and got["p@1"] == pytest.approx(1.0)
    assert set(got["per_group"]) == {"a", "b"}


def test_known_answer_ranking():
    # Query 0's nearest neighbour is from the other group, its own-group item comes second.
    labels = np.array(["a", "a", "b"])
    e = np.array([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1]])
    got = photo_retrieval.category_scores(e, labels)["per_group"]["a"]
    # query 0: ranking [2 (b), 1 (a)] -> AP 1/2, P@1 0; query 1: ranking [2, 0] -> AP 1/2 as well
    assert got["map"] == pytest.approx(0.5) and got["p@1"] == 0.0


def test_groups_cover_every_listed_photo_once():
    names, labels = photo_retrieval.photos_and_labels()
    assert len(names) == len(set(names)) == len(labels) == 24
