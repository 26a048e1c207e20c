import jax
import numpy as np
import pytest

from sbirjax.nets import upconv


def transposed_conv_reference(x, w):
    """PyTorch ConvTranspose2d(k=4, s=2, p=1) by its definition:
    out[2i + u - 1, 2j + v - 1] += x[i, j] @ w[u, v], positions outside the output dropped."""
    b, h, wd, _ = x.shape
    out = np.zeros((b, 2 * h, 2 * wd, w.shape[-1]))
    for i in range(h):
        for j in range(wd):
            for u in range(4):
                for v in range(4):
                    r, c = 2 * i + u - 1, 2 * j + v - 1
                    if 0 <= r < 2 * h and 0 <= c < 2 * wd:
                        out[:, r, c] += x[:, i, j] @ w[u, v]
    return out


def test_up_conv_equals_transposed_convolution():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 5, 4))
    w = rng.standard_normal((4, 4, 4, 6))
    got = np.asarray(upconv.up_conv(x.astype(np.float32), w.astype(np.float32)))
    np.testing.assert_allclose(got, transposed_conv_reference(x, w), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_up_conv_gradient_matches_lax_conv_transpose_gradient():
    # An independent route: lax.conv_transpose with a flipped kernel is the same operator.
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 4, 4, 3)).astype(np.float32)
    w = rng.standard_normal((4, 4, 3, 2)).astype(np.float32)

    def via_lax(x, w):
        return jax.lax.conv_transpose(x, w[::-1, ::-1], (2, 2), ((2, 2), (2, 2)),
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))

    np.testing.assert_allclose(via_lax(x, w), transposed_conv_reference(x, w), rtol=1e-4, atol=1e-4)
    g1 = jax.grad(lambda x, w: (upconv.up_conv(x, w) ** 2).sum(), argnums=(0, 1))(x, w)
    g2 = jax.grad(lambda x, w: (via_lax(x, w) ** 2).sum(), argnums=(0, 1))(x, w)
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
