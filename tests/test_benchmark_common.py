"""The benchmarks' FLOP counting and utilisation figures."""
import jax
import jax.numpy as jnp
import pytest

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
