"""An fsdp mesh trains like pure data parallelism, with parameters and optimiser state really
split."""
import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from sbirjax import checkpoint, compiled, methods, sharding, train
from tests import multiprocess_worker as worker
from tests.test_steps_sharding import random_batches, tiny_config


def run_steps(mesh, config, batches, init_state=None):
    """Losses and final state; starts from `init_state` (host arrays) when given, which spares
    compiling the initialiser again (its compilation costs more than the step's on CPU)."""
    method = methods.get(config.method)
    module = method.build(config.model)
    fns = compiled.compile_fns(config, method, module, mesh, 10, jax.random.key(0))
    if init_state is None:
        state = fns.init(jax.random.key(0))
    else:
        state = jax.device_put(init_state, fns.state_shardings)
    losses = []
    for b in batches:
        state, m = fns.step(state, sharding.to_global(b, mesh), jax.random.key(1))
        losses.append(float(m["loss"]))
    return losses, state


def test_leaf_spec_splits_the_largest_divisible_axis():
    assert sharding.leaf_spec((3, 3, 64, 128), 4) == P(None, None, None, "fsdp")
    assert sharding.leaf_spec((1024, 512), 4) == P("fsdp")
    assert sharding.leaf_spec((1026, 512), 4) == P(None, "fsdp")  # 1026 does not split in 4
    assert sharding.leaf_spec((512,), 4) == P()                   # small: replicated
    assert sharding.leaf_spec((1023, 5), 2) == P()                # nothing divisible
    assert sharding.leaf_spec((1024, 512), 1) == P()              # no fsdp axis


@pytest.mark.slow
def test_fsdp_meshes_match_data_parallel():
    assert jax.device_count() == 8
    config = tiny_config()
    batches = random_batches(3)
    init_state = jax.device_get(run_steps(sharding.make_mesh(8), config, [])[1])
    ref_losses, ref_state = run_steps(sharding.make_mesh(8), config, batches, init_state)
    ref_params = jax.device_get(ref_state.params)
    for fsdp in (2, 4):
        mesh = sharding.make_mesh(8, fsdp=fsdp)
        assert dict(mesh.shape) == {"data": 8 // fsdp, "fsdp": fsdp}
        losses, state = run_steps(mesh, config, batches, init_state)
        np.testing.assert_allclose(ref_losses, losses, rtol=1e-5, atol=1e-6)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
                     ref_params, jax.device_get(state.params))
        # The biggest kernel (128 x 16) is split over 'fsdp' along its 128 rows, in the
        # parameters and in both Adam moments; a bias stays whole.
        kernel = state.params["encoder"]["fc"]["kernel"]
        assert kernel.sharding.spec == P("fsdp")
        assert kernel.addressable_shards[0].data.shape == (128 // fsdp, 16)
        moments = [x for x in jax.tree.leaves(state.opt_state) if x.shape == kernel.shape]
        assert len(moments) == 2 and all(x.sharding.spec == P("fsdp") for x in moments)
        assert state.params["encoder"]["fc"]["bias"].sharding.spec == P()
    assert len(set(np.round(ref_losses, 6))) > 1


@pytest.mark.slow
def test_fsdp_run_checkpoints_and_restores_sharded_state(tmp_path):
    config = worker.tiny_config(str(tmp_path / "tfds"), steps=2, fsdp=4)
    workdir = str(tmp_path / "run")
    state, results = train.train_and_evaluate(config, workdir)
    assert 0.0 <= results["test"]["acc@1"] <= 1.0
    kernel = state.params["encoder"]["fc"]["kernel"]
    assert kernel.sharding.spec == P("fsdp") and kernel.sharding.mesh.shape["fsdp"] == 4
    restored = checkpoint.Checkpointer(workdir).restore(
        jax.eval_shape(lambda: state), jax.tree.map(lambda a: a.sharding, state), 2)
    assert restored.params["encoder"]["fc"]["kernel"].sharding.spec == P("fsdp")
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(state), jax.device_get(restored))


def test_fsdp_must_divide_the_devices():
    with pytest.raises(ValueError, match="fsdp=3"):
        sharding.make_mesh(8, fsdp=3)
