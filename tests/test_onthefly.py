"""On-the-fly evaluation (sbirjax/search/onthefly.py): stroke prefixes, m@A and m@B on hand-computed
toys, and on a tiny trained run: at 100% of the strokes the ranks are the evaluator's."""
import json
import os

import numpy as np
import PIL.Image
import pytest

from sbirjax.search import cli, inputs, onthefly
from sbirjax.search.errors import SearchError


def test_prefix_counts_and_prefixes_follow_the_drawing_order():
    assert onthefly.prefix_counts(3, 10) == [1, 1, 1, 2, 2, 2, 3, 3, 3, 3]
    assert onthefly.prefix_counts(20, 10) == [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]
    assert onthefly.prefix_counts(1, 4) == [1, 1, 1, 1]
    assert onthefly.prefix_counts(7, 1) == [7]
    strokes = inputs.to_sketchx([[[0, 0], [1, 1]], [[5, 5]], [[9, 9], [8, 8], [7, 7]]])
    prefixes = onthefly.stroke_prefixes(strokes, 3)
    assert [len(p) for p in prefixes] == [2, 3, 6]
    np.testing.assert_array_equal(prefixes[-1], strokes)
    assert all(p[-1, 2] == 1 for p in prefixes)  # a prefix ends where a stroke ends
    # A last stroke without its pen-up still counts as a stroke.
    open_end = strokes.copy()
    open_end[-1, 2] = 0
    assert onthefly.stroke_ends(open_end).tolist() == [2, 3, 6]
    with pytest.raises(ValueError, match="at least one"):
        onthefly.prefix_counts(3, 0)


def test_m_at_a_and_m_at_b_by_hand():
    ranks = np.array([[4, 2, 1], [3, 3, 1]])
    # Gallery of 4: percentile (4 - r) / 3 -> [0, 2/3, 1] and [1/3, 1/3, 1]: 5/9 each.
    assert onthefly.m_at_a(ranks, 4) == pytest.approx(5 / 9)
    # 1/rank -> [1/4, 1/2, 1] (mean 7/12) and [1/3, 1/3, 1] (mean 5/9).
    assert onthefly.m_at_b(ranks) == pytest.approx((7 / 12 + 5 / 9) / 2)
    # A monotonic sketch: rank 10, 9, ..., 1 in a gallery of 10.
    down = np.arange(10, 0, -1)[None]
    assert onthefly.m_at_a(down, 10) == pytest.approx(0.5)
    assert onthefly.m_at_b(down) == pytest.approx(sum(1 / r for r in range(1, 11)) / 10)
    # Found at once and never: the bounds.
    assert onthefly.m_at_a(np.ones((3, 5)), 50) == 1.0 == onthefly.m_at_b(np.ones((3, 5)))
    assert onthefly.m_at_a(np.full((2, 4), 50), 50) == 0.0
    assert onthefly.m_at_b(np.full((2, 4), 50)) == pytest.approx(1 / 50)
    assert onthefly.m_at_a([[1, 1]], 1) == 1.0  # a gallery of one photo
    s = onthefly.summary(ranks, 4)
    assert s["fractions"] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert s["curves"]["acc@1"] == [0.0, 0.0, 1.0]
    assert s["curves"]["mean_rank"] == [3.5, 2.5, 1.0]
    for bad in ([[0, 1]], [[np.nan, 1]], [], [[[1]]]):
        with pytest.raises(ValueError):
            onthefly.m_at_b(bad)
    with pytest.raises(ValueError, match="gallery size"):
        onthefly.m_at_a([[5]], 4)


def test_the_plot_is_written(tmp_path):
    rng = np.random.default_rng(0)
    ranks = np.sort(rng.integers(1, 30, (6, 10)), axis=1)[:, ::-1]
    doc = onthefly.summary(ranks, 30)
    path = str(tmp_path / "onthefly.png")
    onthefly.plot(doc, path, title="toy")
    with PIL.Image.open(path) as im:
        assert im.size[0] > 600 and im.size[1] > 300


# ----------------------------------------------------------------------------- a trained run
@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny Triplet-SN run: 2 steps on 16 px images, evaluated on the 'test' split (its ranks
    saved in eval/test_ranks.npz)."""
    from sbirjax import train
    from tests import helpers
    root = tmp_path_factory.mktemp("onthefly")
    config = helpers.shrink(helpers.load_config("configs/synthetic_triplet.py"), str(root / "tfds"),
                            steps=2)
    with config.unlocked():
        config.data.image.size = 16
        config.eval.splits = {"test": ("test", "test")}
    workdir = str(root / "run")
    train.train_and_evaluate(config, workdir)
    return workdir


@pytest.mark.slow
def test_full_sketch_ranks_are_the_evaluators(run, tmp_path, capsys):
    from sbirjax.evaluation import evaluate
    from sbirjax.search import Searcher
    from sbirjax.search.api import read_run_config
    out = str(tmp_path / "out")
    assert cli.run("onthefly", workdir=run, split="test", steps=4, out=out) == 0
    assert "m@A=" in capsys.readouterr().err
    doc = json.load(open(os.path.join(out, "onthefly_test.json")))
    assert os.path.isfile(os.path.join(out, "onthefly_test.png"))
    ranks = np.array(doc["ranks"])
    assert ranks.shape == (doc["num_queries"], 4) and doc["steps"] == 4
    # The evaluator on the same run and split, computed here.
    config = read_run_config(run)
    searcher = Searcher.from_run(run, log=lambda *_: None)
    split = onthefly.load_split(config, "test", log=lambda *_: None)
    fns = {m: searcher.embed_fn(m) for m in ("photo", "sketch")}
    values, extras = evaluate.evaluate_split(split, searcher.params, fns, config.data, config.eval,
                                             searcher.mesh)
    np.testing.assert_array_equal(ranks[:, -1], extras["ranks"])
    assert doc["query_index"] == extras["query_index"].tolist()
    assert doc["curves"]["acc@1"][-1] == pytest.approx(values["acc@1"])
    # ... and as training's own evaluation saved them.
    saved = np.load(os.path.join(run, "eval", "test_ranks.npz"))
    np.testing.assert_array_equal(ranks[:, -1], saved["ranks"])
    assert 0.0 <= doc["m@A"] <= 1.0 and 0.0 < doc["m@B"] <= 1.0
    assert doc["m@A"] == pytest.approx(onthefly.m_at_a(ranks, doc["num_gallery"]))
    assert doc["m@B"] == pytest.approx(onthefly.m_at_b(ranks))
    # Every prefix is rasterised by the evaluation's path: prefix p of sketch i, by hand.
    from sbirjax.data import augment
    i = doc["query_index"][0]
    strokes = split.sketches[i]["strokes"]
    first = onthefly.stroke_prefixes(strokes, 4)[0]
    n = onthefly.prefix_counts(len(onthefly.stroke_ends(strokes)), 4)[0]
    assert len(first) == onthefly.stroke_ends(strokes)[n - 1]
    q = np.asarray(searcher.method.embed(searcher.module, searcher.params,
                                         augment.sketch_image({"strokes": first},
                                                              config.data.image)[None], "sketch"))
    g = searcher.embed_images(np.stack([augment.photo_image(split.photos[j], config.data.image)
                                        for j in range(split.num_photos)]), "photo")
    from sbirjax.evaluation import metrics
    by_hand = metrics.fg_ranks(q, g, split.sketch_photo[[i]])[0]
    assert abs(int(by_hand) - ranks[0, 0]) <= 1  # equal up to float ties between two compilations
    # The default output folder is the run's eval/, beside the saved ranks.
    assert cli.run("onthefly", workdir=run, split="test", steps=2) == 0
    assert os.path.isfile(os.path.join(run, "eval", "onthefly_test.json"))
    capsys.readouterr()
    for options, message in ((dict(split="nope"), "the run evaluates the splits ['test']"),
                             (dict(split="test", steps=0), "--steps=0"),
                             (dict(split="test", steps=101), "--steps=101")):
        assert cli.run("onthefly", workdir=run, **options) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    with pytest.raises(SearchError, match="not an sbirjax run"):
        onthefly.run(str(tmp_path), "test")


@pytest.mark.slow
def test_searching_the_test_split_through_an_index_gives_the_evaluators_ranks(run, tmp_path):
    """The search path end to end (index of the run's test photos, every test sketch as a query,
    top-k over the whole gallery) ranks each sketch's true photo exactly where training's own
    evaluation did (eval/test_ranks.npz)."""
    from sbirjax.search import Searcher
    from sbirjax.search.api import read_run_config
    searcher = Searcher.from_run(run, log=lambda *_: None)
    out = str(tmp_path / "index")
    searcher.index(None, out, split="test")
    index = searcher.load_index(out)
    split = onthefly.load_split(read_run_config(run), "test", log=lambda *_: None)
    saved = np.load(os.path.join(run, "eval", "test_ranks.npz"))
    queries = np.flatnonzero(split.sketch_photo >= 0)
    vectors = searcher.query_vectors(sketches=[split.sketches[int(i)] for i in queries])
    results = searcher.search(vectors, len(index.rows), out)
    photo_of = {row["path"]: row["photo_id"] for row in index.rows}
    assert len(photo_of) == len(index.rows) == split.num_photos
    ranks = []
    for i, found in zip(queries, results):
        truth = split.photo_ids[split.sketch_photo[i]]
        ranks.append(next(rank for path, _, rank in found if photo_of[path] == truth))
    np.testing.assert_array_equal(ranks, saved["ranks"])
