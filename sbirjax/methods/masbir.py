"""MA-SBIR (Lyou et al., WACV 2024): modality-aware zero-shot SBIR through text, on a Flax CLIP.

One CLIP image tower embeds sketches and photos, the text tower embeds a caption of each image's
class; z_img, z_txt are the L2-normalised projections. A learned table m of 4 modality vectors
(rows: 0 photo, 1 sketch, 2 sketch-caption text, 3 photo-caption text; N(0, 1) init as PyTorch's
nn.Embedding) is subtracted to get semantics s = z - m[mod]; the semantic centre is
c = normalize((z_img + z_txt) / 2) (not detached, as the code); converting to modality k is
normalize(s + m[k]); a Dense(d -> 4) discriminator names the modality of converted vectors.

Losses (official code; each weight is config.loss.weights[name], total = sum(w L) / sum(w), which
with the code's weights is the code's division by 1.22):
  clip  symmetric InfoNCE at the fixed scale exp(config.loss.logit_scale) (2.6592 -> 14.3), arange
        targets (same-class captions are negatives, as the code); config.loss.class_aware makes
        every same-class pair a positive (uniform multi-positive target)
  sem   (1 - cos(s_txt, c)) + (1 - cos(s_img, c))
  rec   (1 - cos(s_txt + m[mod_img], z_img)) + (1 - cos(s_img + m[mod_txt], z_txt))
  disc  cross-entropy of the discriminator on s converted to every modality except the source's
        own, averaged over image and text sources; cooperative (no gradient reversal)
  orth  sum_d |c_d * m_k,d|, averaged over the batch and the 4 rows (the code divides the sum of
        every |c * m_k| element by 4B); weight 0 in the code
CLIP's own `logit_scale` parameter is unused (the scale is fixed).

Retrieval: gallery = photo z_img; queries 'sketch' = raw sketch z_img and 'converted' =
normalize(z_sk - m[sketch] + m[photo]). Images come in as uint8 and are CLIP-normalised here.

config.model: pretrained ('' = from scratch, else a Hugging Face CLIP snapshot directory or Hub id,
whose config.json fixes the architecture), dtype ('float32' | 'bfloat16' compute), image_size, and
for '' the sizes vision.{patch_size, width, layers, heads, mlp_dim}, text.{vocab_size,
max_positions, width, layers, heads, mlp_dim}, projection_dim, act. A from-scratch text tower pools
at id vocab_size - 1: the end token of the generated vocabulary (data/bpe_vocab.py), as in CLIP.
"""
from __future__ import annotations

import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import traverse_util

from sbirjax import hub
from sbirjax.methods import registry
from sbirjax.methods.losses import l2_normalize
from sbirjax.nets import clip_weights
from sbirjax.nets.clip import CLIP, ClipConfig, TextConfig, VisionConfig

PHOTO, SKETCH, SKETCH_TEXT, PHOTO_TEXT = 0, 1, 2, 3
NUM_MODALITIES = 4
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


class MaSbir(nn.Module):
    clip_config: ClipConfig
    dtype: str = "float32"

    def setup(self):
        self.clip = CLIP(self.clip_config, DTYPES[self.dtype])
        self.modality = self.param("modality", nn.initializers.normal(1.0),
                                   (NUM_MODALITIES, self.clip_config.projection_dim))
        self.discriminator = nn.Dense(NUM_MODALITIES)

    def encode_images(self, images):
        """uint8 NHWC -> z_img (b, d), L2-normalised float32."""
        x = (images.astype(jnp.float32) / 255.0 - jnp.array(CLIP_MEAN)) / jnp.array(CLIP_STD)
        return l2_normalize(self.clip.encode_image(x))

    def encode_texts(self, input_ids, attention_mask):
        return l2_normalize(self.clip.encode_text(input_ids, attention_mask))

    def discriminate(self, v):
        return self.discriminator(v)

    def __call__(self, images, input_ids, attention_mask):
        z_img = self.encode_images(images)
        return z_img, self.encode_texts(input_ids, attention_mask), self.discriminate(z_img)


# ------------------------------------------------------------------------------ pure losses
def cosine(a, b):
    """Row-wise cosine similarity."""
    return jnp.sum(l2_normalize(a) * l2_normalize(b), axis=-1)


def convert(z, table, source, target):
    """normalize(z - m[source] + m[target]); source/target: int or (b,) int."""
    return l2_normalize(z - table[source] + table[target])


def clip_loss(z_img, z_txt, labels, scale, class_aware: bool = False):
    """Symmetric InfoNCE over the batch; arange targets, or every same-class pair a positive."""
    logits = scale * z_img @ z_txt.T
    if class_aware:
        same = (labels[:, None] == labels[None, :]).astype(jnp.float32)
        targets = same / jnp.sum(same, axis=1, keepdims=True)  # symmetric: one matrix for both
    else:
        targets = jnp.eye(logits.shape[0], dtype=jnp.float32)
    return 0.5 * (jnp.mean(optax.softmax_cross_entropy(logits, targets))
                  + jnp.mean(optax.softmax_cross_entropy(logits.T, targets.T)))


def semantic_loss(s_img, s_txt, centre):
    return jnp.mean(1.0 - cosine(s_txt, centre)) + jnp.mean(1.0 - cosine(s_img, centre))


def reconstruction_loss(s_img, s_txt, m_img, m_txt, z_img, z_txt):
    """Each side's semantics plus the OTHER side's modality must give the other side back."""
    return (jnp.mean(1.0 - cosine(s_txt + m_img, z_img))
            + jnp.mean(1.0 - cosine(s_img + m_txt, z_txt)))


def discriminator_loss(logits, source):
    """logits (b, K, K): the discriminator on s converted to target k (axis 1); cross-entropy with
    label k, averaged over the (b, k) with k != source[b]."""
    b, k = logits.shape[:2]
    targets = jnp.broadcast_to(jnp.arange(k), (b, k))
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    keep = (targets != source[:, None]).astype(ce.dtype)
    return jnp.sum(ce * keep) / jnp.sum(keep)


def orthogonality_loss(centre, table):
    """Summed over the d dimensions, averaged over the (b, k) pairs, as the code (which divides by
    its count of nonzero centre rows, 4B, plus 1e-6)."""
    pairs = jnp.abs(centre[:, None, :] * table[None, :, :])  # (b, 4, d)
    return jnp.sum(pairs) / (pairs.shape[0] * pairs.shape[1])


def loss_terms(z_img, z_txt, table, mod_img, mod_txt, labels, discriminate, *, scale,
               class_aware=False):
    """Every MA-SBIR term (unweighted). discriminate: (..., d) -> (..., 4) logits."""
    s_img, s_txt = z_img - table[mod_img], z_txt - table[mod_txt]
    centre = l2_normalize((z_img + z_txt) / 2.0)
    to_all = lambda s: discriminate(l2_normalize(s[:, None, :] + table[None]))  # (b, 4, 4)
    return {
        "clip": clip_loss(z_img, z_txt, labels, scale, class_aware),
        "sem": semantic_loss(s_img, s_txt, centre),
        "rec": reconstruction_loss(s_img, s_txt, table[mod_img], table[mod_txt], z_img, z_txt),
        "disc": 0.5 * (discriminator_loss(to_all(s_img), mod_img)
                       + discriminator_loss(to_all(s_txt), mod_txt)),
        "orth": orthogonality_loss(centre, table),
    }


def weighted_total(terms, weights):
    """sum(w * L) / sum(w) over the weighted terms."""
    norm = sum(float(w) for w in weights.values())
    if norm <= 0:
        raise ValueError(f"config.loss.weights {dict(weights)} must have a positive sum")
    return sum(float(w) * terms[k] for k, w in weights.items()) / norm


# ------------------------------------------------------------------------------ method
def clip_config(model_config) -> ClipConfig:
    """The snapshot's architecture (config.json), or the from-scratch sizes of config.model."""
    m = model_config
    if m.pretrained:
        with open(os.path.join(hub.resolve(m.pretrained), "config.json")) as f:
            config = ClipConfig.from_hf_dict(json.load(f))
        if config.vision.image_size != m.image_size:
            raise ValueError(f"{m.pretrained} takes {config.vision.image_size} px images but "
                             f"config.data.image.size is {m.image_size}")
        return config
    v, t = m.vision, m.text
    return ClipConfig(
        vision=VisionConfig(image_size=m.image_size, patch_size=v.patch_size, width=v.width,
                            layers=v.layers, heads=v.heads, mlp_dim=v.mlp_dim, act=m.act),
        text=TextConfig(vocab_size=t.vocab_size, max_positions=t.max_positions, width=t.width,
                        layers=t.layers, heads=t.heads, mlp_dim=t.mlp_dim,
                        eos_token_id=t.vocab_size - 1, act=m.act),
        projection_dim=m.projection_dim)


def init_std(path: tuple[str, ...], config: ClipConfig) -> float | None:
    """The standard deviation Hugging Face's CLIP `_init_weights` (factor 1) draws a weight from,
    or None for LayerNorms (1, 0), biases (0) and the logit scale, kept as made. clip.py's flat
    N(0, 0.02) suits loading weights, but a small CLIP trained from scratch does not learn from it
    (configs/synthetic_masbir.py: no gain over chance in 3,000 steps; with this init, twice it)."""
    tower = config.vision if path[0] == "vision_model" else config.text
    width, depth = tower.width, (2 * tower.layers) ** -0.5
    leaf, owner = path[-1], path[-2] if len(path) > 1 else ""
    if leaf == "class_embedding":
        return width ** -0.5
    if leaf == "embedding" or owner == "patch_embedding":
        return 0.02
    if leaf != "kernel":
        return None
    if owner in ("q_proj", "k_proj", "v_proj", "fc2"):
        return width ** -0.5 * depth
    if owner == "out_proj":
        return width ** -0.5
    if owner == "fc1":
        return (2 * width) ** -0.5
    if owner == "visual_projection":
        return config.vision.width ** -0.5
    if owner == "text_projection":
        return config.text.width ** -0.5
    return None


def reference_init(clip_params, rng, config: ClipConfig):
    """clip_params with every weight redrawn from N(0, init_std(path)^2)."""
    flat = traverse_util.flatten_dict(clip_params)
    keys = dict(zip(flat, jax.random.split(rng, len(flat))))
    out = {}
    for path, value in flat.items():
        std = init_std(path, config)
        out[path] = value if std is None else std * jax.random.normal(keys[path], value.shape,
                                                                       value.dtype)
    return traverse_util.unflatten_dict(out)


def build(model_config) -> MaSbir:
    if model_config.dtype not in DTYPES:
        raise ValueError(f"config.model.dtype={model_config.dtype!r}: use one of {sorted(DTYPES)}")
    return MaSbir(clip_config(model_config), model_config.dtype)


def init(module, rng, image_shape):
    """Fresh parameters; the CLIP weights drawn as CLIP's reference implementation draws them."""
    init_rng, clip_rng = jax.random.split(rng)
    ids = jnp.zeros((1, 1), jnp.int32)
    params = module.init({"params": init_rng}, jnp.zeros((1, *image_shape), jnp.uint8), ids,
                         jnp.ones_like(ids))["params"]
    return {**params, "clip": reference_init(params["clip"], clip_rng, module.clip_config)}


def load_pretrained(params, model_config):
    """Put the snapshot's CLIP weights (float32 numpy) into params['clip']; '' keeps params."""
    if not model_config.pretrained:
        return params
    config, weights = clip_weights.load_pretrained(model_config.pretrained)
    expected = clip_config(model_config)
    if config != expected:
        raise ValueError(f"{model_config.pretrained} holds {config}, the model is {expected}")
    want = jax.tree.map(np.shape, params["clip"])
    got = jax.tree.map(np.shape, weights)
    if want != got:
        raise ValueError(f"{model_config.pretrained}: parameter tree differs from the model's")
    return {**params, "clip": weights}


def loss(module, params, batch, rng, config):
    del rng  # deterministic: no dropout in CLIP
    apply = lambda *a, method: module.apply({"params": params}, *a, method=method)
    z_img = apply(batch["image"], method=MaSbir.encode_images)
    z_txt = apply(batch["input_ids"], batch["attention_mask"], method=MaSbir.encode_texts)
    terms = loss_terms(z_img, z_txt, params["modality"], batch["modality"], batch["text_modality"],
                       batch["label"], lambda v: apply(v, method=MaSbir.discriminate),
                       scale=jnp.exp(config.loss.logit_scale),
                       class_aware=config.loss.class_aware)
    value = weighted_total(terms, config.loss.weights)
    retrieved = jnp.argmax(z_img @ z_txt.T, axis=1)
    same_class = batch["label"][retrieved] == batch["label"]  # image -> caption top-1, by class
    return value, dict(terms, clip_class_acc=jnp.mean(same_class.astype(jnp.float32)))


def embed(module, params, images, modality):
    z = module.apply({"params": params}, images, method=MaSbir.encode_images)
    if modality == "converted":
        return convert(z, params["modality"], SKETCH, PHOTO)
    if modality not in ("sketch", "photo"):
        raise ValueError(f"unknown embed modality {modality!r}")
    return z


METHOD = registry.register(registry.Method(
    name="masbir", build=build, init=init, loss=loss, embed=embed, train_inputs="image_text",
    embed_modalities=("sketch", "photo", "converted"), load_pretrained=load_pretrained,
    pretrained_source=lambda m: m.pretrained))
