"""The from-scratch conv encoder trunk of StyleMeUp (and of the Triplet-SN baseline here).

Blocks of Conv(4x4, stride 2, pad 1) -> InstanceNorm (none on block 1) -> LeakyReLU(0.2), then
flatten -> Dense(hidden) -> Dropout. Widths default to the official 32-64-128-256-256; a tiny
variant (a few channels) runs the same code path in tests.

With `ft=True` a feature-wise transformation layer (Tseng et al., ICLR 2020) follows every
normalisation layer. Its parameters always exist; it perturbs features only when called with
`ft_active=True` (StyleMeUp's inner, meta-train step), drawing from the 'ft' rng stream.
"""
from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from sbirjax.nets import patchconv

FT_SOFTPLUS_BETA = 100.0  # Tseng et al.'s sharp softplus
# torch's InstanceNorm2d epsilon, which the official StyleMeUp code uses (flax's default is 1e-6).
INSTANCE_NORM_EPS = 1e-5


def to_float(images):
    """uint8 [0, 255] -> float32 [-1, 1]; float inputs pass through unchanged."""
    if images.dtype == jnp.uint8:
        return images.astype(jnp.float32) / 127.5 - 1.0
    return images


def sharp_softplus(x, beta: float = FT_SOFTPLUS_BETA):
    return jax.nn.softplus(beta * x) / beta


class FeatureTransform(nn.Module):
    """h' = gamma * h + beta, gamma = 1 + e1 * softplus(theta_gamma),
    beta = e2 * softplus(theta_beta), e ~ N(0, 1) per channel, shared over the batch and the
    spatial positions."""

    init_gamma: float = 0.3
    init_beta: float = 0.5

    @nn.compact
    def __call__(self, h, *, active: bool):
        c = h.shape[-1]
        theta_gamma = self.param("theta_gamma", nn.initializers.constant(self.init_gamma), (c,))
        theta_beta = self.param("theta_beta", nn.initializers.constant(self.init_beta), (c,))
        if not active:
            return h
        e = jax.random.normal(self.make_rng("ft"), (2, c), h.dtype)
        gamma = 1.0 + e[0] * sharp_softplus(theta_gamma)
        beta = e[1] * sharp_softplus(theta_beta)
        return gamma * h + beta


def feature_transform(init_scale: float, name: str) -> FeatureTransform:
    """A FeatureTransform whose initial thetas are `init_scale` times the defaults."""
    return FeatureTransform(init_gamma=init_scale * FeatureTransform.init_gamma,
                            init_beta=init_scale * FeatureTransform.init_beta, name=name)


class DownConv(nn.Module):
    """Conv(4x4, stride 2, pad 1), the parameters of nn.Conv. impl 'xla': lax convolution;
    'matmul': patches @ kernel (sbirjax/nets/patchconv.py; fast when vmapped over per-task
    weights)."""

    features: int
    use_bias: bool = True
    impl: str = "xla"

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", nn.initializers.lecun_normal(),
                            (4, 4, x.shape[-1], self.features))
        if self.impl == "matmul":
            y = patchconv.down_conv(x, kernel)
        elif self.impl == "xla":
            y = jax.lax.conv_general_dilated(x, kernel.astype(x.dtype), (2, 2), ((1, 1), (1, 1)),
                                             dimension_numbers=("NHWC", "HWIO", "NHWC"))
        else:
            raise ValueError(f"conv impl must be 'xla' or 'matmul', got {self.impl!r}")
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(y.dtype)
        return y


class ConvEncoder(nn.Module):
    widths: Sequence[int] = (32, 64, 128, 256, 256)
    hidden: int = 512
    dropout: float = 0.5
    ft: bool = False
    ft_init_scale: float = 1.0  # times FeatureTransform's initial thetas
    norm_affine: bool = True  # learned scale/bias in InstanceNorm (PyTorch's default has none)
    conv_impl: str = "xla"     # or 'matmul' (see DownConv)

    @nn.compact
    def __call__(self, images, *, train: bool, ft_active: bool = False):
        x = to_float(images)
        for i, w in enumerate(self.widths):
            # A bias in front of InstanceNorm is cancelled exactly (its gradient is pure rounding
            # noise, which Adam would amplify), so only the un-normalised first conv has one.
            x = DownConv(w, use_bias=i == 0, impl=self.conv_impl, name=f"conv{i}")(x)
            if i > 0:
                x = nn.InstanceNorm(epsilon=INSTANCE_NORM_EPS, use_scale=self.norm_affine,
                                    use_bias=self.norm_affine, name=f"norm{i}")(x)
                if self.ft:
                    x = feature_transform(self.ft_init_scale, f"ft{i}")(x, active=ft_active)
            x = nn.leaky_relu(x, 0.2)
        x = x.reshape(x.shape[0], -1)
        x = nn.Dense(self.hidden, name="fc")(x)
        return nn.Dropout(self.dropout, deterministic=not train)(x)
