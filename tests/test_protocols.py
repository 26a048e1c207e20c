"""Category-level training examples, evaluation protocols, model selection and run comparison."""
import json
import os

import jax
import ml_collections
import numpy as np
import pytest

from sbirjax import defaults
from sbirjax.data import examples
from sbirjax.data.splits import RetrievalSplit
from sbirjax.evaluation import evaluate, metrics
from sbirjax.evaluation.evaluate import Selection
from sbirjax.tools import compare

IMAGE = ml_collections.ConfigDict({"size": 8, "center_crop": False,
                                   "raster": {"canvas": 256, "line_width": 3,
                                              "polarity": "black_on_white"}})
AUGMENT = ml_collections.ConfigDict({"flip_prob": 0.0, "crop_scale_min": 1.0})


def eval_config(**values):
    """config.eval as the base config declares it, with `values` set."""
    cfg = defaults.base().eval
    cfg.update(values)
    return cfg


def _split(sketch_category, photo_category, sketch_photo=None):
    """A split whose images encode their index (pixel value), so examples can be traced back."""
    sketch_category, photo_category = np.asarray(sketch_category), np.asarray(photo_category)
    img = lambda v: {"image": np.full((8, 8, 3), v, np.uint8)}
    return RetrievalSplit(
        name="toy", sketches=[img(i) for i in range(len(sketch_category))],
        photos=[img(100 + j) for j in range(len(photo_category))],
        sketch_photo=(np.full(len(sketch_category), -1) if sketch_photo is None
                      else np.asarray(sketch_photo)),
        sketch_category=sketch_category, sketch_user=np.full(len(sketch_category), -1),
        photo_category=photo_category,
        photo_ids=np.array([f"p{j}" for j in range(len(photo_category))]),
        category_names=("a", "b", "c"))


def test_category_triplets_draw_positives_of_the_class_and_negatives_of_others():
    split = _split([0, 0, 1, 2, 2], [0, 0, 1, 1, 2, 2])
    ex = examples.TripletExamples(split, IMAGE, AUGMENT, pairing="category")
    rng = np.random.default_rng(0)
    for _ in range(50):
        i = int(rng.integers(0, 5))
        e = ex(i, rng)
        pos, neg = int(e["positive"][0, 0, 0]) - 100, int(e["negative"][0, 0, 0]) - 100
        assert split.photo_category[pos] == split.sketch_category[i]
        assert split.photo_category[neg] != split.sketch_category[i]


def test_instance_pairing_refuses_unpaired_sketches_and_names_the_fix():
    with pytest.raises(ValueError, match="pairing='category'"):
        examples.TripletExamples(_split([0, 1], [0, 1]), IMAGE, AUGMENT)


def test_category_meta_tasks_take_three_sketches_of_the_class():
    split = _split([0, 0, 0, 1, 1, 1, 1], [0, 1, 1, 2])  # class 2 has no sketches: no task
    ex = examples.MetaTaskExamples(split, IMAGE, AUGMENT, pairing="category")
    assert len(ex) == 3
    rng = np.random.default_rng(1)
    for index in range(3):
        e = ex(index, rng)
        photo = int(e["photo"][0, 0, 0]) - 100
        sketches = [int(s[0, 0, 0]) for s in e["sketches"]]
        assert len(set(sketches)) == 3
        assert all(split.sketch_category[s] == split.photo_category[photo] for s in sketches)
        assert (split.photo_category[int(e["negative"][0, 0, 0]) - 100]
                != split.photo_category[photo])


def test_category_protocol_reports_the_named_metrics_for_every_query_variant():
    rng = np.random.default_rng(2)
    split = _split(rng.integers(0, 3, 20), rng.integers(0, 3, 30))
    q, g = rng.normal(size=(20, 4)), rng.normal(size=(30, 4))
    cfg = eval_config(ks=(1,), category_metrics=("map@all", "p@10"))
    values, extras = evaluate.category(split, q, g, cfg)
    want = metrics.category_retrieval_metrics(q, split.sketch_category, g, split.photo_category,
                                              metrics=("map@all", "p@10"),
                                              similarity="neg_euclidean")
    assert values["map@all"] == want["map@all"] and values["p@10"] == want["p@10"]
    assert values["num_queries"] == 20 and extras["relevance"] == "category"
    assert evaluate.headline(values, "category") == f"map@all={want['map@all']:.3f}"


def test_fine_grained_protocols_need_paired_queries():
    split = _split([0, 1], [0, 1])
    with pytest.raises(ValueError, match="protocol 'category'"):
        evaluate.fine_grained(split, np.eye(2), np.eye(2), eval_config(ks=(1,)))


def test_within_class_protocol_counts_only_the_query_class():
    split = _split([0, 1], [0, 0, 1], sketch_photo=[1, 2])
    q = np.array([[1.0, 0.0], [0.0, 1.0]])
    g = np.array([[1.0, 0.0], [0.9, 0.1], [1.0, 0.0]])  # photo 2 (class 1) sits on query 0
    cfg = eval_config(ks=(1,))
    fg, _ = evaluate.fine_grained(split, q, g, cfg)
    within, _ = evaluate.fine_grained_within_class(split, q, g, cfg)
    assert fg["acc@1"] == 0.0      # query 0: photos 0 and 2 are nearer than its photo 1
    assert within["acc@1"] == 0.5  # within class 0 only photo 0 is nearer; query 1 is first


def test_selection_keeps_the_best_step_and_survives_a_restart(tmp_path):
    sel = Selection(str(tmp_path), "val/map@all")
    assert sel.update(1, {"val": {"map@all": 0.2}, "test": {"map@all": 0.5}})
    assert not sel.update(2, {"val": {"map@all": 0.1}, "test": {"map@all": 0.9}})
    again = Selection(str(tmp_path), "val/map@all")
    assert again.best["step"] == 1 and again.best["results"]["test"]["map@all"] == 0.5
    assert again.update(3, {"val": {"map@all": 0.3}, "test": {"map@all": 0.4}})
    with pytest.raises(ValueError, match="no metric"):
        Selection(str(tmp_path / "x"), "val/p@5").update(1, {"val": {"map@all": 0.1}})
    assert not Selection(str(tmp_path / "y"), "").update(1, {})


def test_compare_table_and_plot(tmp_path):
    runs = []
    for name, acc, spread in (("a", 0.25, 0), ("b", 0.5, 3)):
        run = tmp_path / name
        (run / "eval").mkdir(parents=True)
        (run / "results.json").write_text(json.dumps(
            {"step": 10, "test": {"acc@1": acc, "acc@10": 0.9, "rank_avg": 3.0, "v_avg": 1.5}}))
        photos = np.repeat(np.arange(4), 3)
        ranks = 1 + np.tile([0, spread, 2 * spread], 4)
        np.savez(run / "eval" / "test_ranks.npz", ranks=ranks, photo=photos, user=np.zeros(12))
        runs.append(str(run))
    text = compare.table(runs, "test", ["acc@1", "v_avg", "p@5"])
    assert "| a | 25.0% | 1.50 | - |" in text and "| b | 50.0% |" in text
    np.testing.assert_allclose(compare.rank_spread(ranks, photos), np.full(4, np.std([1, 4, 7])))
    out = str(tmp_path / "cmp.png")
    compare.plot(runs, "test", out)
    assert os.path.getsize(out) > 1000
    with pytest.raises(FileNotFoundError, match="finished sbirjax run"):
        compare.table([str(tmp_path / "missing")], "test", ["acc@1"])


def test_compare_at_a_step_and_curves(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    rows = [{"step": 5, "kind": "train", "loss": 2.0}, {"step": 5, "kind": "test", "acc@1": 0.1},
            {"step": 10, "kind": "train", "loss": 1.0}, {"step": 10, "kind": "test", "acc@1": 0.3}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert "| r | 10.0% |" in compare.table([str(run)], "test", ["acc@1"], step=5)
    assert "| r | 30.0% |" in compare.table([str(run)], "test", ["acc@1"], step=10)
    with pytest.raises(ValueError, match=r"evaluated at \[5, 10\]"):
        compare.table([str(run)], "test", ["acc@1"], step=7)
    out = str(tmp_path / "curves.png")
    compare.curves([str(run)], "test", "loss", out, eval_metric="acc@1")
    assert os.path.getsize(out) > 1000
    bars = str(tmp_path / "bars.png")
    other = tmp_path / "s"
    other.mkdir()
    (other / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in (
        {"step": 5, "kind": "test", "acc@1": 0.2}, {"step": 5, "kind": "seen", "acc@1": 0.4})))
    values = compare.bars([str(other), str(run)], ["test"], "acc@1", bars, step=5, chance=0.05)
    np.testing.assert_array_equal(values, [[0.2], [0.1]])
    values = compare.bars([str(other)], ["test", "seen"], "acc@1", bars, step=5)
    np.testing.assert_array_equal(values, [[0.2, 0.4]])
    assert os.path.getsize(bars) > 1000
    with pytest.raises(ValueError, match="no 'seen' evaluation at step 5"):
        compare.bars([str(run)], ["seen"], "acc@1", bars, step=5)


def test_compare_seed_table_groups_seeds_and_computes_the_gap(tmp_path):
    runs = []
    for name, unseen, seen in (("tri_s0", 0.40, 0.50), ("tri_s1", 0.44, 0.50),
                               ("tri_s2", 0.42, 0.56), ("other", 0.1, 0.2)):
        run = tmp_path / name
        run.mkdir()
        (run / "results.json").write_text(json.dumps(
            {"step": 8, "test": {"acc@10": unseen, "rank_avg": 10.0},
             "test_seen_users": {"acc@10": seen, "rank_avg": 8.0}}))
        runs.append(str(run))
    assert compare.seed_groups(runs) == {"tri": runs[:3], "other": runs[3:]}
    text = compare.seed_table(runs, "test", ["acc@10", "rank_avg"], gap_split="test_seen_users")
    gaps = np.array([0.10, 0.06, 0.14]) * 100
    row = [line for line in text.splitlines() if line.startswith("| tri |")][0]
    want = f"| tri | 3 | 42.0 +- 2.0 | 52.0 +- 3.5 | {gaps.mean():.1f} +- {gaps.std(ddof=1):.1f} |"
    assert row.startswith(want), (row, want)
    assert "| other | 1 | 10.0 | 20.0 | 10.0 | 10.0 | 8.0 | -2.0 |" in text
    with pytest.raises(ValueError, match="no 'acc@1' in split 'test'"):
        compare.seed_table(runs, "test", ["acc@1"])


def test_gap_curves_average_seeds_at_the_steps_all_of_them_evaluated(tmp_path):
    def write(name, evals):
        run = tmp_path / name
        run.mkdir()
        rows = [{"step": 1, "kind": "train", "loss": 1.0}]
        rows += [{"step": t, "kind": k, "acc@10": v} for t, k, v in evals]
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return str(run)

    runs = [write("sn_s0", [(5, "test", 0.2), (5, "seen", 0.3), (10, "test", 0.4),
                            (10, "seen", 0.6)]),
            write("sn_s1", [(5, "test", 0.3), (5, "seen", 0.3), (10, "test", 0.5)]),  # unfinished
            write("meta_s0", [(5, "test", 0.1), (5, "seen", 0.05)])]
    out = str(tmp_path / "gap.png")
    got = compare.gap_curves(runs, "test", "seen", "acc@10", out)
    assert set(got) == {"sn", "meta"} and os.path.getsize(out) > 0
    np.testing.assert_array_equal(got["sn"]["steps"], [5])  # step 10 lacks seed 1's 'seen'
    np.testing.assert_allclose(got["sn"]["split"], [[0.2], [0.3]])
    np.testing.assert_allclose(got["sn"]["gap"], [[0.1], [0.0]])
    np.testing.assert_allclose(got["meta"]["gap"], [[-0.05]])
    alone = compare.group_curves(runs[:1], "test", "seen", "acc@10")
    np.testing.assert_array_equal(alone["steps"], [5, 10])
    np.testing.assert_allclose(alone["gap"], [[0.1, 0.2]])


def test_a_new_protocol_and_output_come_from_the_config_alone(tmp_path):
    """A protocol and an output writer registered outside the library run for the split the
    config names, through the same Evaluation the training loop calls."""
    from sbirjax import sharding

    @evaluate.protocol("nearest_is_same_class")
    def nearest_is_same_class(split, q, g, cfg):
        nearest = np.argmax(q @ g.T, axis=1)
        hit = split.photo_category[nearest] == split.sketch_category
        return {"top1_class": float(hit.mean())}, {"relevance": "category"}

    written = []
    evaluate.output("record")(lambda ctx: written.append((ctx["name"], ctx["protocol"])))
    try:
        config = defaults.base()
        config.eval.splits = {"a": ("x", "x"), "b": ("x", "x")}
        config.eval.split_protocols = {"b": "nearest_is_same_class"}
        config.eval.outputs = ("record",)
        config.eval.batch_size = 4
        config.data.image = IMAGE
        split = _split([0, 1, 0], [0, 1], sketch_photo=[0, 1, 0])
        # Sketches and photos of one class get the same embedding: the new protocol scores 1.
        code = lambda images: jax.numpy.stack(
            [images[:, 0, 0, 0] % 2 == 0, images[:, 0, 0, 0] % 2 == 1], -1).astype("float32")
        fns = {"sketch": lambda p, x: code(x), "photo": lambda p, x: code(x)}

        class Log:
            def write(self, *a): pass
            def log(self, *a): pass

        run = evaluate.Evaluation(config, {"a": split, "b": split}, fns,
                                  sharding.make_mesh(1), str(tmp_path), method_name="toy",
                                  report=Log())
        results = run(1, None)
        assert results["b"] == {"num_gallery": 2, "top1_class": 1.0}
        assert "acc@1" in results["a"]  # the default protocol, fine_grained
        assert written == [("a", "fine_grained"), ("b", "nearest_is_same_class")]
    finally:
        evaluate._PROTOCOLS.pop("nearest_is_same_class")
        evaluate._OUTPUTS.pop("record")
