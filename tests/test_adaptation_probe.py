"""The adaptation probe on a tiny trained StyleMeUp run."""
import json
import os

import numpy as np
import pytest

from sbirjax import train
from sbirjax.tools import adaptation_probe
from tests import helpers

# Trains or builds a reference per module: the slow tier (pytest -m slow).
pytestmark = pytest.mark.slow


def test_probe_on_a_tiny_run(tmp_path):
    config = helpers.shrink(helpers.load_config("configs/synthetic_stylemeup.py"),
                            str(tmp_path / "tfds"), steps=2)
    workdir = str(tmp_path / "run")
    train.train_and_evaluate(config, workdir)
    result = adaptation_probe.probe(config, workdir, num_tasks=4)
    assert result["step"] == 2 and result["tasks"] == 4
    assert set(result["outer_before"]) == set(result["outer_after"]) >= {"triplet_inv", "kl"}
    assert all(np.isfinite(v) for v in result["outer_after"].values())
    change = result["relative_change"]
    # The inner step adapts the model only: the regulariser and FT layers stay where they are.
    assert change["reg_P"] == 0.0 and all(v == 0.0 for k, v in change.items() if "/ft" in k)
    assert change["inv/kernel"] > 0.0
    assert set(result["inner_grad_norm"]) >= {"triplet_inv", "reg"}
    assert result["inner_grad_norm"]["triplet_inv"] > 0.0
    saved = json.load(open(os.path.join(workdir, "adaptation_probe.json")))
    assert saved["outer_before"] == pytest.approx(result["outer_before"])
    assert "| triplet_inv |" in adaptation_probe.table(result)
    with config.unlocked():
        config.method = "triplet_sn"
    with pytest.raises(ValueError, match="StyleMeUp"):
        adaptation_probe.probe(config, workdir)
