"""The two convolutions of the StyleMeUp VAE written as patch extraction + matrix multiply.

  down_conv: Conv(4x4, stride 2, pad 1), kernel HWIO (4, 4, C_in, C_out)
  up_conv:   ConvTranspose(4x4, stride 2, pad 1) as in PyTorch, same kernel layout as
             sbirjax.nets.upconv (out[2i + u - 1, 2j + v - 1] += x[i, j] @ kernel[u, v])

Why: meta-learning gives every task its own adapted weights. Vmapped over tasks, a convolution
with per-task kernels becomes a grouped convolution, which XLA on CPU runs on a slow path; run one
task after another instead and every convolution sees a batch of 4-9 images, far too small to
use the machine. As patches @ kernel, the per-task kernels become one batched matrix multiply
(dot_general with a batch axis), a fast path on every backend, and the tasks batch together.
Same parameters and same function as the convolutions (tests/test_patchconv.py); the price is
the shifted slices in memory (up to 4x the input of each layer).
"""
from __future__ import annotations

import jax.numpy as jnp


def space_to_depth(x, block: int = 2):
    """(N, kA, kB, C) -> (N, A, B, k*k*C) for block k, channel order (row in block, column in
    block, c): each block's pixels as one vector, as an HWIO kernel flattens."""
    n, h, w, c = x.shape
    x = x.reshape(n, h // block, block, w // block, block, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(n, h // block, w // block, block * block * c)


# Below this many input channels down_conv concatenates its four slices into one patch tensor
# (one matmul); from it on it sums four matmuls of the slices, which skips writing the patch
# tensor. Measured on 2 CPU cores, fwd+bwd of StyleMeUp's encoder layers at 256 px, 4 tasks x
# 10 images: the sum is 4-8% faster for 32-256 channels, 17% slower for the 3-channel first layer.
SUM_FROM_CHANNELS = 16


def down_conv(x, kernel):
    """x (N, H, W, C_in) with H, W even; kernel (4, 4, C_in, C_out) -> (N, H/2, W/2, C_out).

    Padded input rows 2m..2m+3 feed output row m: in space-to-depth blocks, blocks m and m+1.
    So the conv is a 2x2 stride-1 conv over 4C channels: 4 shifted slices, each @ a (4C, O) matrix.
    """
    n, h, w, c = x.shape
    if h % 2 or w % 2:
        raise ValueError(f"down_conv needs even height and width, got {h}x{w}")
    s = space_to_depth(jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))))  # (N, H/2+1, W/2+1, 4C)
    oh, ow = h // 2, w // 2
    slices = [s[:, da:da + oh, db:db + ow] for da in (0, 1) for db in (0, 1)]
    # kernel rows u = 2 * da + r, columns v = 2 * db + s  ->  order (da, db, r, s, c)
    k = kernel.reshape(2, 2, 2, 2, c, -1).transpose(0, 2, 1, 3, 4, 5).reshape(4, 4 * c, -1)
    k = k.astype(x.dtype)
    if c < SUM_FROM_CHANNELS:
        return jnp.concatenate(slices, -1) @ k.reshape(16 * c, -1)
    return sum(part @ k[i] for i, part in enumerate(slices))


_TAPS = ((3, 1), (2, 0))  # kernel rows used by output phase 0 and 1 (see upconv.py)


def up_conv(x, kernel):
    """x (N, H, W, C_in), kernel (4, 4, C_in, C_out) -> (N, 2H, 2W, C_out).

    Output phase (a, b) reads the 2x2 neighbourhood starting at padded offset (a, b) through
    kernel taps _TAPS[a] x _TAPS[b]: a sum of four (C, O) matrix multiplies of shifted slices
    (18% faster fwd+bwd over StyleMeUp's decoder at 256 px than concatenating the slices into a
    4C patch tensor first, and faster at every layer), the four phases interleaved."""
    n, h, w, c = x.shape
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    kernel = kernel.astype(x.dtype)
    rows = []
    for a in (0, 1):
        cols = []
        for b in (0, 1):
            cols.append(sum(xp[:, a + i:a + i + h, b + j:b + j + w] @ kernel[_TAPS[a][i],
                                                                            _TAPS[b][j]]
                            for i in (0, 1) for j in (0, 1)))
        rows.append(jnp.stack(cols, axis=3))          # (N, H, W, 2, O)
    y = jnp.stack(rows, axis=2)                       # (N, H, 2, W, 2, O)
    return y.reshape(n, 2 * h, 2 * w, -1)
