"""End-to-end behaviour of the training loop on a tiny synthetic world."""
import json
import os

import jax
import numpy as np
import pytest

from sbirjax import checkpoint, compiled, train
from sbirjax.data import pipeline
from tests import helpers


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="module")
def manual_root(tmp_path_factory):
    return str(tmp_path_factory.mktemp("downloads"))


def tiny(data_dir, steps=4, path="configs/synthetic_triplet.py", manual_root=None):
    return helpers.shrink(helpers.load_config(path), data_dir, steps=steps, manual_root=manual_root)


def params_of(state):
    return jax.device_get(state.params)


def assert_trees_equal(a, b):
    jax.tree.map(np.testing.assert_array_equal, a, b)


@pytest.mark.parametrize("path", helpers.all_config_files(), ids=os.path.basename)
@pytest.mark.slow
def test_every_config_loads_shrinks_and_trains(path, data_dir, manual_root, tmp_path):
    """Real-dataset configs run on miniature downloads in the official layouts."""
    config = tiny(data_dir, steps=2, path=path, manual_root=manual_root)
    state, results = train.train_and_evaluate(config, str(tmp_path))
    assert int(state.step) == config.total_steps
    assert results, "no evaluation ran"
    for split, values in results.items():
        scores = {k: v for k, v in values.items() if "@" in k}
        assert scores, (split, values)
        assert all(0.0 <= v <= 1.0 for v in scores.values()), (split, values)
        if "acc@10" in values:
            assert values["acc@1"] <= values["acc@10"], (split, values)


def test_outputs_resume_and_trace_once(data_dir, tmp_path):
    workdir = str(tmp_path / "run")
    compiled.TRACE_COUNTS.clear()
    state, results = train.train_and_evaluate(tiny(data_dir, steps=4), workdir)
    assert compiled.TRACE_COUNTS["train_step"] == 1  # 4 steps, one compilation
    assert (compiled.TRACE_COUNTS["embed_sketch"] == 1
            and compiled.TRACE_COUNTS["embed_photo"] == 1)
    # What a person looks at is there.
    assert os.path.exists(os.path.join(workdir, "retrieval_test.png"))
    assert os.path.exists(os.path.join(workdir, "style_consistency_test.png"))
    ranks = np.load(os.path.join(workdir, "eval", "test_ranks.npz"))
    assert len(ranks["ranks"]) == results["test"]["num_queries"]
    np.testing.assert_allclose(ranks["ranks"].mean(), results["test"]["rank_avg"])
    assert os.path.exists(os.path.join(workdir, "config.json"))
    assert any(f.startswith("events.out.tfevents")
               for f in os.listdir(os.path.join(workdir, "tensorboard")))
    rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    assert [r["step"] for r in rows if r["kind"] == "train"] == [1, 2, 3, 4]
    assert any(r["kind"] == "test" and "acc@1" in r for r in rows)
    assert json.load(open(os.path.join(workdir, "results.json")))["step"] == 4
    assert checkpoint.Checkpointer(workdir).latest_step() == 4
    # Running the same command again resumes (and only evaluates) instead of starting over.
    again, _ = train.train_and_evaluate(tiny(data_dir, steps=4), workdir)
    assert int(again.step) == 4
    assert_trees_equal(params_of(state), params_of(again))


@pytest.mark.slow
def test_crash_then_resume_equals_uninterrupted_run(data_dir, tmp_path, monkeypatch):
    steps = 6
    ref, _ = train.train_and_evaluate(tiny(data_dir, steps), str(tmp_path / "ref"))

    real_iterate = pipeline.iterate

    def crashing(*args, **kwargs):  # the input dies after 3 batches: a crash mid-run
        it = real_iterate(*args, **kwargs)
        for _ in range(3):
            yield next(it)
        raise RuntimeError("simulated crash")

    workdir = str(tmp_path / "crash")
    monkeypatch.setattr(pipeline, "iterate", crashing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train.train_and_evaluate(tiny(data_dir, steps), workdir)
    monkeypatch.setattr(pipeline, "iterate", real_iterate)
    assert checkpoint.Checkpointer(workdir).latest_step() == 2  # saved every 2 steps
    with open(os.path.join(workdir, "metrics.jsonl"), "a") as f:
        f.write('{"step": 3, "kind": "tra')  # a line cut short by the crash
    resumed, _ = train.train_and_evaluate(tiny(data_dir, steps), workdir)
    assert int(resumed.step) == steps
    assert_trees_equal(params_of(ref), params_of(resumed))
    # metrics.jsonl: each step once (the re-run steps replace the old records), a resume marker.
    rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    assert [r["step"] for r in rows if r["kind"] == "train"] == list(range(1, steps + 1))
    assert [r["step"] for r in rows if r["kind"] == "resume"] == [2]
    ref_rows = [json.loads(line) for line in open(os.path.join(tmp_path, "ref", "metrics.jsonl"))]
    assert ([r["loss"] for r in rows if r["kind"] == "train"]
            == pytest.approx([r["loss"] for r in ref_rows if r["kind"] == "train"]))


@pytest.mark.slow
def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(data_dir, tmp_path):
    config = tiny(data_dir, steps=8)
    with config.unlocked():
        config.optim.lr = 1e38  # parameters overflow within a few steps
        config.checkpoint_every = 1
    workdir = str(tmp_path / "nan")
    with pytest.raises(FloatingPointError, match="last good checkpoint") as err:
        train.train_and_evaluate(config, workdir)
    last = checkpoint.Checkpointer(workdir).latest_step()
    assert last is not None and f"step {last + 1}" in str(err.value)


def test_resume_refuses_a_changed_data_stream(data_dir, tmp_path):
    workdir = str(tmp_path / "run")
    train.train_and_evaluate(tiny(data_dir, steps=2), workdir)
    changed = tiny(data_dir, steps=4)
    with changed.unlocked():
        changed.seed = 7
    with pytest.raises(ValueError, match="seed=0"):
        train.train_and_evaluate(changed, workdir)
    rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    assert not any(r["kind"] == "resume" for r in rows)  # refused before anything was written
