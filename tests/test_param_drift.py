"""Parameter drift per group: known answers."""
import numpy as np
import pytest

from sbirjax.tools import param_drift


def test_drift_known_answer():
    initial = {"a": {"w": np.array([3.0, 4.0]), "b": np.array([0.0])}, "c": np.ones((2, 2))}
    final = {"a": {"w": np.array([3.0, 4.0]), "b": np.array([0.5])}, "c": np.ones((2, 2)) * 2}
    g = param_drift.drift(initial, final, depth=1)
    assert g["a"]["size"] == 3 and g["a"]["init_norm"] == pytest.approx(5.0)
    assert (g["a"]["change_norm"] == pytest.approx(0.5)
            and g["a"]["relative_change"] == pytest.approx(0.1))
    assert g["c"]["relative_change"] == pytest.approx(1.0) and g["c"]["max_abs_change"] == 1.0
    deeper = param_drift.drift(initial, final, depth=2)
    assert deeper["a/w"]["change_norm"] == 0.0 and deeper["a/b"]["relative_change"] == np.inf
    assert "| a/b | 1 |" in param_drift.table(deeper)
    with pytest.raises(ValueError, match="differ"):
        param_drift.drift(initial, {"a": initial["a"]})
