"""The MA-SBIR modality map: its figures against scikit-learn's neighbours, and the command end to
end on a tiny trained run."""
import json
import os

import numpy as np
import pytest

from sbirjax import run_state, train
from sbirjax.errors import UserError
from sbirjax.tools import modality_map, param_drift
from tests import helpers

# Trains or builds a reference per module: the slow tier (pytest -m slow).
pytestmark = pytest.mark.slow


def test_neighbour_stats_match_scikit_learn_neighbours():
    neighbors = pytest.importorskip("sklearn.neighbors")
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(60, 6))
    label = rng.integers(0, 3, 60)
    modality = np.where(rng.random(60) < 0.4, "sketch", "photo")
    emb[modality == "sketch"] += 1.5  # a modality gap
    got = modality_map.neighbour_stats(emb, modality, label, k=5)

    nn = neighbors.NearestNeighbors(n_neighbors=6, metric="cosine").fit(emb)
    idx = nn.kneighbors(emb, return_distance=False)[:, 1:]  # drop the point itself
    assert got["same_modality@5"] == pytest.approx(np.mean(modality[idx] == modality[:, None]))
    assert got["same_class@5"] == pytest.approx(np.mean(label[idx] == label[:, None]))
    sk, ph = modality == "sketch", modality == "photo"
    to_photo = neighbors.NearestNeighbors(n_neighbors=5, metric="cosine").fit(emb[ph])
    j = to_photo.kneighbors(emb[sk], return_distance=False)
    assert got["sketch_to_photo_class@5"] == pytest.approx(
        np.mean(label[ph][j] == label[sk][:, None]))
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    assert got["modality_gap"] == pytest.approx(
        np.linalg.norm(unit[sk].mean(0) - unit[ph].mean(0)))
    assert got["same_modality_chance"] == pytest.approx(np.mean(sk) ** 2 + np.mean(ph) ** 2)


def test_remove_modality_and_pick():
    table = np.array([[1.0, 0.0], [0.0, 2.0]])
    z = np.array([[3.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    s = modality_map.remove_modality(z, table, np.array([0, 1, 1]))
    np.testing.assert_allclose(s, [[1.0, 0.0], [0.0, 1.0], [1 / np.sqrt(2), -1 / np.sqrt(2)]])
    labels = np.array([0, 0, 0, 1, 2, 2])
    chosen = modality_map.pick(labels, 2, seed=0)
    assert list(np.bincount(labels[chosen])) == [2, 1, 2]
    assert np.array_equal(chosen, np.sort(chosen))


def test_command_on_a_tiny_trained_run(tmp_path):
    config = helpers.shrink(helpers.load_config("configs/synthetic_masbir.py"),
                            str(tmp_path / "tfds"), steps=2)
    workdir = str(tmp_path / "run")
    train.train_and_evaluate(config, workdir)
    result = modality_map.compute(config, workdir, per_class=6, perplexity=5.0)
    assert result["split"] == "zs" and result["step"] == 2
    assert result["num_captions"] == 2 * len(result["class_names"])
    for key in ("before", "after"):
        values = result[key]
        assert 0.0 <= values["same_class@10"] <= 1.0 and values["modality_gap"] >= 0.0
        assert np.isfinite(values["tsne_kl"])
    assert os.path.getsize(os.path.join(workdir, "modality_map_zs.png")) > 10_000
    saved = json.load(open(os.path.join(workdir, "modality_map_zs.json")))
    assert saved["after"] == pytest.approx(result["after"])
    with pytest.raises(ValueError, match="eval splits are"):
        modality_map.compute(config, workdir, split_name="nope")
    with pytest.raises(UserError, match="no checkpoint of step 1"):
        modality_map.compute(config, workdir, step=1)
    # The same run, seen by the drift tool: trained groups moved, the fixed logit scale did not.
    _, _, params, step, initial = run_state.restore_params(config, workdir, with_initial=True)
    groups = param_drift.drift(initial, params, depth=2)
    assert step == 2 and groups["clip/vision_model"]["change_norm"] > 0
    assert groups["clip/logit_scale"]["change_norm"] == 0.0
