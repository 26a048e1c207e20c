"""Convolutions as patches @ kernel equal the lax convolutions they replace, values and
gradients."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sbirjax.nets import patchconv, upconv
from sbirjax.nets.convnet import ConvEncoder


def _lax_down(x, k):
    return jax.lax.conv_general_dilated(x, k, (2, 2), ((1, 1), (1, 1)),
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


@pytest.mark.parametrize("shape", [(2, 8, 8, 3), (1, 6, 10, 5), (2, 6, 8, 24)])  # concat; sum
def test_down_conv_equals_lax(shape):
    kx, kk = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, shape)
    k = jax.random.normal(kk, (4, 4, shape[-1], 7))
    np.testing.assert_allclose(patchconv.down_conv(x, k), _lax_down(x, k), rtol=1e-5, atol=1e-5)
    f = lambda fn: jax.grad(lambda x, k: jnp.sum(jnp.sin(fn(x, k))), argnums=(0, 1))(x, k)
    for a, b in zip(f(patchconv.down_conv), f(_lax_down)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_down_conv_rejects_odd_sizes():
    with pytest.raises(ValueError, match="even"):
        patchconv.down_conv(jnp.zeros((1, 7, 8, 3)), jnp.zeros((4, 4, 3, 2)))


@pytest.mark.slow
def test_up_conv_equals_phase_convolutions():
    kx, kk = jax.random.split(jax.random.key(1))
    x = jax.random.normal(kx, (2, 5, 6, 4))
    k = jax.random.normal(kk, (4, 4, 4, 3))
    np.testing.assert_allclose(patchconv.up_conv(x, k), upconv.up_conv(x, k), rtol=1e-5, atol=1e-5)
    f = lambda fn: jax.grad(lambda x, k: jnp.sum(jnp.sin(fn(x, k))), argnums=(0, 1))(x, k)
    for a, b in zip(f(patchconv.up_conv), f(upconv.up_conv)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_vmapped_per_task_kernels():
    """The reason for the module: per-task kernels under vmap, as after a meta-learning inner
    step."""
    kx, kk = jax.random.split(jax.random.key(2))
    x = jax.random.normal(kx, (3, 2, 8, 8, 4))
    k = jax.random.normal(kk, (3, 4, 4, 4, 5))
    got = jax.vmap(patchconv.down_conv)(x, k)
    want = jnp.stack([_lax_down(x[t], k[t]) for t in range(3)])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_encoder_same_parameters_and_outputs_either_impl():
    images = jax.random.randint(jax.random.key(3), (2, 32, 32, 3), 0, 256).astype(jnp.uint8)
    xla = ConvEncoder((4, 8, 8), 16, conv_impl="xla")
    mm = ConvEncoder((4, 8, 8), 16, conv_impl="matmul")
    params = xla.init(jax.random.key(4), images, train=False)
    params_mm = mm.init(jax.random.key(4), images, train=False)
    jax.tree.map(np.testing.assert_array_equal, params, params_mm)
    np.testing.assert_allclose(mm.apply(params, images, train=False),
                               xla.apply(params, images, train=False), rtol=1e-4, atol=1e-5)
