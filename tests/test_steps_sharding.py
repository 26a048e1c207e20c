"""The jitted train step gives the same result on a 1-device and an 8-device mesh."""
import jax
import numpy as np
import pytest

from configs import synthetic_triplet
from sbirjax import compiled, methods, sharding


def tiny_config():
    c = synthetic_triplet.get_config()
    c.data.image.size = 32
    c.model.widths = (4, 8, 8)
    c.model.hidden = 16
    c.model.embed_dim = 8
    c.model.dropout = 0.5
    return c


def run_steps(mesh, config, batches):
    method = methods.get(config.method)
    module = method.build(config.model)
    fns = compiled.compile_fns(config, method, module, mesh, 10, jax.random.key(0))
    state = fns.init(jax.random.key(0))
    losses = []
    for b in batches:
        state, m = fns.step(state, sharding.to_global(b, mesh), jax.random.key(1))
        losses.append(float(m["loss"]))
    return losses, jax.device_get(state.params)


def random_batches(n, batch=8, size=32, seed=0):
    rng = np.random.default_rng(seed)
    return [{k: rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
             for k in ("sketch", "positive", "negative")} for _ in range(n)]


@pytest.mark.slow
def test_eight_devices_match_one_device():
    assert jax.device_count() == 8, "conftest should give 8 fake CPU devices"
    config = tiny_config()
    batches = random_batches(3)
    l1, p1 = run_steps(sharding.make_mesh(1), config, batches)
    l8, p8 = run_steps(sharding.make_mesh(8), config, batches)
    np.testing.assert_allclose(l1, l8, rtol=1e-5, atol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), p1, p8)
    # ...and the steps really changed the parameters and the loss differs between steps.
    assert len(set(np.round(l1, 6))) > 1


def test_batch_must_split_over_devices():
    with pytest.raises(ValueError, match="not divisible"):
        sharding.local_batch_size(12, sharding.make_mesh(8))
    with pytest.raises(ValueError, match="devices are visible"):
        sharding.make_mesh(16)


@pytest.mark.slow
def test_chunked_meta_step_on_four_devices_matches_one_device(tmp_path):
    """StyleMeUp with its tasks in chunks, each chunk's gradient taken inside the loop
    (meta.accumulated), over a task axis sharded on 4 devices: the same steps as on one."""
    from benchmarks import common
    from tests import helpers
    config = helpers.shrink(helpers.load_config("configs/synthetic_stylemeup.py"), str(tmp_path))
    with config.unlocked():
        config.batch_size, config.meta.task_chunk = 8, 2
    rng = np.random.default_rng(0)
    layout = common.BATCH_LAYOUT["meta_task"]
    batches = [common.random_batch(layout, 8, config.data.image.size, seed=int(s))
               for s in rng.integers(0, 1000, 2)]
    l1, p1 = run_steps(sharding.make_mesh(1), config, batches)
    l4, p4 = run_steps(sharding.make_mesh(4), config, batches)
    np.testing.assert_allclose(l1, l4, rtol=1e-5, atol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), p1, p4)
    assert l1[0] != l1[1]
