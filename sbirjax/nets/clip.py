"""CLIP (ViT image tower + causal text tower) in Flax Linen, numerically equal to Hugging Face's
CLIPModel.

The parameter tree mirrors the Hugging Face checkpoint so that `clip_weights.load_pretrained` is a
mechanical renaming: towers `vision_model` / `text_model`, encoder blocks `layers_{i}` holding
`layer_norm1`, `self_attn/{q,k,v,out}_proj`, `layer_norm2`, `mlp/{fc1,fc2}`; then
`visual_projection`, `text_projection` (no bias) and the scalar `logit_scale`.

Images are NHWC (Hugging Face takes NCHW). Parameters are float32; `dtype` sets the compute dtype of
the matrix multiplications. LayerNorm, softmax and the residual stream stay in float32, and the
returned embeddings are float32.
"""
from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from sbirjax.nets.ops import gradient_barrier, l2_normalize
from sbirjax.nets.patchconv import space_to_depth

# Hugging Face `hidden_act` names -> functions. The tanh GELUs are one formula under three names.
ACTIVATIONS = {
    "quick_gelu": lambda x: x * jax.nn.sigmoid(1.702 * x),
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "gelu_python": lambda x: jax.nn.gelu(x, approximate=False),
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_fast": lambda x: jax.nn.gelu(x, approximate=True),
}
LEGACY_EOS_TOKEN_ID = 2  # configs saved before transformers PR #24773: pool at argmax(input_ids)


@dataclasses.dataclass(frozen=True)
class VisionConfig:
    image_size: int = 224
    patch_size: int = 32
    width: int = 768
    layers: int = 12
    heads: int = 12
    mlp_dim: int = 3072
    layer_norm_eps: float = 1e-5
    act: str = "quick_gelu"


@dataclasses.dataclass(frozen=True)
class TextConfig:
    vocab_size: int = 49408
    max_positions: int = 77
    width: int = 512
    layers: int = 12
    heads: int = 8
    mlp_dim: int = 2048
    layer_norm_eps: float = 1e-5
    eos_token_id: int = 49407
    act: str = "quick_gelu"


@dataclasses.dataclass(frozen=True)
class ClipConfig:
    """Defaults are Hugging Face's CLIPConfig defaults, i.e. ViT-B/32."""

    vision: VisionConfig = VisionConfig()
    text: TextConfig = TextConfig()
    projection_dim: int = 512
    logit_scale_init: float = 2.6592

    @classmethod
    def from_hf_dict(cls, d: dict) -> ClipConfig:
        """From a Hugging Face CLIP config.json; missing keys take Hugging Face's defaults."""
        v = {**(d.get("vision_config") or {}), **(d.get("vision_config_dict") or {})}
        t = {**(d.get("text_config") or {}), **(d.get("text_config_dict") or {})}
        dv, dt = VisionConfig(), TextConfig()
        vision = VisionConfig(
            image_size=v.get("image_size", dv.image_size),
            patch_size=v.get("patch_size", dv.patch_size),
            width=v.get("hidden_size", dv.width), layers=v.get("num_hidden_layers", dv.layers),
            heads=v.get("num_attention_heads", dv.heads),
            mlp_dim=v.get("intermediate_size", dv.mlp_dim),
            layer_norm_eps=v.get("layer_norm_eps", dv.layer_norm_eps),
            act=v.get("hidden_act", dv.act))
        text = TextConfig(
            vocab_size=t.get("vocab_size", dt.vocab_size),
            max_positions=t.get("max_position_embeddings", dt.max_positions),
            width=t.get("hidden_size", dt.width), layers=t.get("num_hidden_layers", dt.layers),
            heads=t.get("num_attention_heads", dt.heads),
            mlp_dim=t.get("intermediate_size", dt.mlp_dim),
            layer_norm_eps=t.get("layer_norm_eps", dt.layer_norm_eps),
            eos_token_id=t.get("eos_token_id", dt.eos_token_id), act=t.get("hidden_act", dt.act))
        for name, value in (("image_size", vision.image_size), ("patch_size", vision.patch_size)):
            if not isinstance(value, int):
                raise ValueError(f"only square images are supported, got {name}={value!r}")
        if vision.image_size % vision.patch_size:
            raise ValueError(f"image_size {vision.image_size} is not a multiple of "
                             f"patch_size {vision.patch_size}")
        if not isinstance(text.eos_token_id, int):
            raise ValueError(f"text eos_token_id must be one int, got {text.eos_token_id!r}")
        for act in (vision.act, text.act):
            if act not in ACTIVATIONS:
                raise ValueError(f"unsupported hidden_act {act!r}; known: {sorted(ACTIVATIONS)}")
        return cls(vision=vision, text=text,
                   projection_dim=d.get("projection_dim", cls.projection_dim),
                   logit_scale_init=d.get("logit_scale_init_value", cls.logit_scale_init))

    @classmethod
    def tiny(cls, vocab_size: int = 64, eos_token_id: int = 63) -> ClipConfig:
        """A few units wide and two layers deep: the real code path, fast on CPU."""
        return cls(
            vision=VisionConfig(image_size=32, patch_size=8, width=32, layers=2, heads=4,
                                mlp_dim=64),
            text=TextConfig(vocab_size=vocab_size, max_positions=16, width=32, layers=2, heads=4,
                            mlp_dim=64, eos_token_id=eos_token_id),
            projection_dim=16)


def _dense(features, dtype, name, use_bias=True):
    return nn.Dense(features, use_bias=use_bias, dtype=dtype, param_dtype=jnp.float32, name=name,
                    kernel_init=nn.initializers.normal(0.02))


def _layer_norm(eps, name):
    # Exact (two-pass) variance, as PyTorch computes it.
    return nn.LayerNorm(epsilon=eps, dtype=jnp.float32, param_dtype=jnp.float32,
                        use_fast_variance=False, name=name)


class Attention(nn.Module):
    width: int
    heads: int
    dtype: Any

    @nn.compact
    def __call__(self, x, mask=None):
        """x: (b, t, width); mask: bool (b, 1, t, t), True where a query may attend to a key."""
        head_dim = self.width // self.heads
        split = lambda y: y.reshape(*y.shape[:2], self.heads, head_dim)
        q = split(_dense(self.width, self.dtype, "q_proj")(x))
        k = split(_dense(self.width, self.dtype, "k_proj")(x))
        v = split(_dense(self.width, self.dtype, "v_proj")(x))
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, k).astype(jnp.float32) * head_dim**-0.5
        if mask is not None:
            scores = jnp.where(mask, scores, jnp.finfo(jnp.float32).min)
        probs = jax.nn.softmax(scores, axis=-1).astype(self.dtype)
        out = jnp.einsum("bhqk,bkhd->bqhd", probs, v).reshape(*x.shape[:2], self.width)
        return _dense(self.width, self.dtype, "out_proj")(out)


class Mlp(nn.Module):
    mlp_dim: int
    act: str
    dtype: Any

    @nn.compact
    def __call__(self, x):
        h = ACTIVATIONS[self.act](_dense(self.mlp_dim, self.dtype, "fc1")(x))
        return _dense(x.shape[-1], self.dtype, "fc2")(h)


class EncoderLayer(nn.Module):
    """Pre-LN block. The residual stream is float32: bf16 branch outputs are added to it."""

    width: int
    heads: int
    mlp_dim: int
    eps: float
    act: str
    dtype: Any

    @nn.compact
    def __call__(self, x, mask=None):
        x = gradient_barrier(x)  # keeps XLA:CPU from re-fusing the residual gradient (ops.py)
        h = _layer_norm(self.eps, "layer_norm1")(x)
        x = x + Attention(self.width, self.heads, self.dtype, name="self_attn")(h, mask)
        h = _layer_norm(self.eps, "layer_norm2")(x)
        return x + Mlp(self.mlp_dim, self.act, self.dtype, name="mlp")(h)


class PatchEmbedding(nn.Module):
    """The stride-p, p x p convolution of a ViT's patches, written as one matmul over the image cut
    into patches (row-major grid, as HF's flatten): (b, h, w, c) -> (b, h/p * w/p, features).
    The same kernel (HWIO, named `kernel`), initialiser and function as nn.Conv with VALID padding
    (for sizes divisible by p); on XLA:CPU the strided convolution with its kernel gradient took
    twice as long as this matmul."""

    features: int
    patch: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, pixels):
        b, h, w, ch = pixels.shape
        p = self.patch
        if h % p or w % p:
            raise ValueError(f"image size {h}x{w} is not a multiple of the patch size {p}")
        kernel = self.param("kernel", nn.initializers.lecun_normal(),
                            (p, p, ch, self.features), jnp.float32)
        x = space_to_depth(pixels, p).reshape(b, (h // p) * (w // p), p * p * ch)
        x = x.astype(self.dtype)
        return x @ kernel.reshape(p * p * ch, self.features).astype(self.dtype)


class VisionTower(nn.Module):
    """ViT: returns the post-LayerNorm class token, (b, width) float32."""

    config: VisionConfig
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, pixels):
        c = self.config
        if pixels.shape[1:3] != (c.image_size, c.image_size):
            raise ValueError(f"expected NHWC images of {c.image_size}x{c.image_size}, "
                             f"got shape {pixels.shape}")
        b = pixels.shape[0]
        patches = PatchEmbedding(c.width, c.patch_size, self.dtype,
                                 name="patch_embedding")(pixels).astype(jnp.float32)
        cls = self.param("class_embedding", nn.initializers.normal(c.width**-0.5), (c.width,))
        x = jnp.concatenate([jnp.broadcast_to(cls, (b, 1, c.width)), patches], axis=1)
        pos = nn.Embed(x.shape[1], c.width, param_dtype=jnp.float32, name="position_embedding")
        x = _layer_norm(c.layer_norm_eps, "pre_layernorm")(x + pos(jnp.arange(x.shape[1])))
        for i in range(c.layers):
            x = EncoderLayer(c.width, c.heads, c.mlp_dim, c.layer_norm_eps, c.act, self.dtype,
                             name=f"layers_{i}")(x)
        return _layer_norm(c.layer_norm_eps, "post_layernorm")(x[:, 0])


def eos_positions(input_ids, eos_token_id: int):
    """Where the text tower pools, as Hugging Face does: the first EOS token, or for legacy configs
    (eos_token_id == 2) the largest token id (the EOS of the original vocabulary)."""
    if eos_token_id == LEGACY_EOS_TOKEN_ID:
        return jnp.argmax(input_ids, axis=-1)
    return jnp.argmax((input_ids == eos_token_id).astype(jnp.int32), axis=-1)


class TextTower(nn.Module):
    """Causal transformer: returns the final-LayerNorm state at the EOS token, (b, width)
    float32."""

    config: TextConfig
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, input_ids, attention_mask=None):
        c = self.config
        b, t = input_ids.shape
        if t > c.max_positions:
            raise ValueError(f"sequence length {t} exceeds max_positions {c.max_positions}")
        tok = nn.Embed(c.vocab_size, c.width, param_dtype=jnp.float32, name="token_embedding")
        pos = nn.Embed(c.max_positions, c.width, param_dtype=jnp.float32, name="position_embedding")
        x = tok(input_ids) + pos(jnp.arange(t))
        mask = jnp.tril(jnp.ones((t, t), bool))[None, None]
        if attention_mask is not None:  # padding hides keys, as in HF's combined causal mask
            mask = mask & attention_mask.astype(bool)[:, None, None, :]
        for i in range(c.layers):
            x = EncoderLayer(c.width, c.heads, c.mlp_dim, c.layer_norm_eps, c.act, self.dtype,
                             name=f"layers_{i}")(x, mask)
        x = _layer_norm(c.layer_norm_eps, "final_layer_norm")(x)
        return x[jnp.arange(b), eos_positions(input_ids, c.eos_token_id)]


class ClipOutput(NamedTuple):
    image_embeds: jax.Array  # (n_images, projection_dim), L2-normalised
    text_embeds: jax.Array  # (n_texts, projection_dim), L2-normalised
    # (n_images, n_texts) = exp(logit_scale) * image_embeds @ text_embeds.T
    logits_per_image: jax.Array


class CLIP(nn.Module):
    config: ClipConfig
    dtype: Any = jnp.float32  # compute dtype; parameters are always float32

    def setup(self):
        c = self.config
        self.vision_model = VisionTower(c.vision, self.dtype)
        self.text_model = TextTower(c.text, self.dtype)
        self.visual_projection = _dense(c.projection_dim, self.dtype, None, use_bias=False)
        self.text_projection = _dense(c.projection_dim, self.dtype, None, use_bias=False)
        self.logit_scale = self.param("logit_scale", nn.initializers.constant(c.logit_scale_init),
                                      ())

    def encode_image(self, pixels):
        """NHWC float images (already CLIP-normalised) -> projected, unnormalised embeddings,
        float32."""
        return self.visual_projection(self.vision_model(pixels)).astype(jnp.float32)

    def encode_text(self, input_ids, attention_mask=None):
        """int token ids (b, t) and 0/1 mask -> projected, unnormalised embeddings, float32."""
        return self.text_projection(self.text_model(input_ids, attention_mask)).astype(jnp.float32)

    def __call__(self, pixels, input_ids, attention_mask=None) -> ClipOutput:
        img = l2_normalize(self.encode_image(pixels))
        txt = l2_normalize(self.encode_text(input_ids, attention_mask))
        return ClipOutput(img, txt, jnp.exp(self.logit_scale) * img @ txt.T)
