"""The benchmarks' FLOP counting and utilisation figures."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl import flags

from benchmarks import common


def test_compile_with_flops_counts_a_matmul():
    a = jnp.ones((64, 32), jnp.float32)
    b = jnp.ones((32, 16), jnp.float32)
    compiled, flops = common.compile_with_flops(jax.jit(lambda x, y: x @ y), a, b)
    assert flops == pytest.approx(2 * 64 * 32 * 16, rel=0.01)
    assert float(compiled(a, b)[0, 0]) == 32.0


def test_utilisation():
    u = common.utilisation(2e9, 0.5, 8.0)
    assert u["achieved_gflops"] == pytest.approx(4.0)
    assert u["fraction_of_matmul_peak"] == pytest.approx(0.5)
    assert common.utilisation(None, 1.0, 8.0) == {"flops": None}
    assert "fraction_of_device_peak" not in u
    # with a datasheet peak (GFLOP/s): model FLOP utilisation
    assert common.utilisation(2e9, 0.5, 8.0, 16.0)["fraction_of_device_peak"] == pytest.approx(0.25)


@pytest.mark.slow
def test_chunked_meta_step_flops_are_counted_unrolled(tmp_path):
    """XLA counts a lax.map body once: a step with 4 tasks in chunks of 1 reports about a quarter
    of its FLOPs; the benchmark counts them on the vmapped program instead."""
    from sbirjax import compiled, methods, sharding
    from tests import helpers
    config = helpers.shrink(helpers.load_config("configs/synthetic_stylemeup.py"), str(tmp_path))
    with config.unlocked():
        config.batch_size, config.meta.task_chunk = 4, 1
        config.mesh.num_devices = 1
    method = methods.get(config.method)
    module = method.build(config.model)
    mesh = sharding.make_mesh(1)
    rng = jax.random.key(0)
    fns = compiled.compile_fns(config, method, module, mesh, 10, rng)
    state = fns.init(rng)
    batch = sharding.to_global(common.random_batch(
        common.BATCH_LAYOUT["meta_task"], 4, config.data.image.size), mesh)
    chunked = common.compile_with_flops(fns.step, state, batch, rng)[1]
    unrolled = common.unrolled_flops(config, method, module, mesh, state, batch, rng)
    assert 3.0 < unrolled / chunked < 4.5


def test_compare_official_reads_the_last_json_and_names_what_is_missing(monkeypatch):
    from benchmarks import compare_official as co
    printed = 'I1201 a log line\n{\n  "a": 1\n}\nnoise\n{\n  "b": {"c": 2}\n}'
    assert co.last_json(printed) == {"b": {"c": 2}}
    assert co.last_json('{"x": 3}') == {"x": 3}
    flags.FLAGS(["compare_official", "--torch_python=", "--masbir_code=/no/such/dir"])
    try:
        missing = co.official_side("masbir")["missing"]
    finally:
        flags.FLAGS.unparse_flags()
    assert "--torch_python" in missing and "--masbir_code" in missing



def test_steps_peak_rss_leaves_out_what_came_before_the_timed_calls():
    if not common.reset_peak_rss():
        pytest.skip("this kernel cannot reset the peak RSS")
    mb300 = 300 * 2**20 // 8
    big = np.ones(mb300)  # touched before the timed calls, then freed: like compiling
    del big
    quiet = common.time_calls(lambda: None, warmup=0, iters=2)["steps_peak_rss_mb"]
    busy = common.time_calls(lambda: np.ones(mb300).sum(), warmup=0, iters=1)["steps_peak_rss_mb"]
    assert quiet < common.peak_host_rss_mb() - 200  # the timed calls' peak leaves `big` out
    assert busy > quiet + 200


def test_the_whole_process_peak_survives_the_reset():
    if not common.reset_peak_rss():
        pytest.skip("this kernel cannot reset the peak RSS")
    big = np.ones(300 * 2**20 // 8)
    before = common.peak_host_rss_mb()
    del big
    common.time_calls(lambda: None, warmup=0, iters=1)  # resets the kernel's count
    assert common.peak_host_rss_mb() >= before
