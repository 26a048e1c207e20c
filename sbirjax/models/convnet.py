"""The from-scratch conv encoder trunk of StyleMeUp (and of the Triplet-SN baseline here).

Blocks of Conv(4x4, stride 2, pad 1) -> InstanceNorm (none on block 1) -> LeakyReLU(0.2), then
flatten -> Dense(hidden) -> Dropout. Widths default to the official 32-64-128-256-256; a tiny
variant (a few channels) runs the same code path in tests.
"""
from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp


def to_float(images):
    """uint8 [0, 255] -> float32 [-1, 1]; float inputs pass through unchanged."""
    if images.dtype == jnp.uint8:
        return images.astype(jnp.float32) / 127.5 - 1.0
    return images


class ConvEncoder(nn.Module):
    widths: Sequence[int] = (32, 64, 128, 256, 256)
    hidden: int = 512
    dropout: float = 0.5

    @nn.compact
    def __call__(self, images, *, train: bool):
        x = to_float(images)
        for i, w in enumerate(self.widths):
            # A bias in front of InstanceNorm is cancelled exactly (its gradient is pure rounding
            # noise, which Adam would amplify), so only the un-normalised first conv has one.
            x = nn.Conv(w, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)), use_bias=i == 0,
                        name=f"conv{i}")(x)
            if i > 0:
                x = nn.InstanceNorm(name=f"norm{i}")(x)
            x = nn.leaky_relu(x, 0.2)
        x = x.reshape(x.shape[0], -1)
        x = nn.Dense(self.hidden, name="fc")(x)
        return nn.Dropout(self.dropout, deterministic=not train)(x)
