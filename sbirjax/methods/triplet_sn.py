"""Triplet-SN: the siamese fine-grained baseline (Yu et al., CVPR 2016, as re-run in StyleMeUp).

One shared conv encoder for sketches and photos, a linear embedding head, L2 normalisation, and a
triplet loss (margin 0.2, Euclidean) with the sketch as anchor, its photo as positive and another
photo as negative.

With `backbone` set to an EfficientNet-Lite variant, the ImageNet trunk (sbirjax/nets/
efficientnet.py, no classifier) replaces the conv encoder and its hidden layer: the 1280-d pooled
feature goes through dropout to the head. load_pretrained fills it with the ImageNet weights.
With embed_dim = 0 there is no head: the (pooled) feature itself, L2-normalised, is the
embedding; untrained on the trunk that is the zero-training floor (frozen ImageNet features).
"""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from sbirjax.methods import losses, registry
from sbirjax.nets import efficientnet, efficientnet_weights
from sbirjax.nets.convnet import ConvEncoder


class TripletSN(nn.Module):
    widths: tuple = (32, 64, 128, 256, 256)
    hidden: int = 512
    embed_dim: int = 64
    dropout: float = 0.5
    norm_affine: bool = True
    backbone: str = "scratch"  # or an EfficientNet-Lite variant

    @nn.compact
    def __call__(self, images, *, train: bool = False):
        if self.backbone == "scratch":
            h = ConvEncoder(self.widths, self.hidden, self.dropout, norm_affine=self.norm_affine,
                            name="encoder")(images, train=train)
        else:
            h = efficientnet.EfficientNetLite(self.backbone, num_classes=0,
                                              name="backbone")(images)["pooled"]
            h = nn.Dropout(self.dropout, deterministic=not train)(h)
        if self.embed_dim:
            h = nn.Dense(self.embed_dim, name="head")(h)
        return losses.l2_normalize(h)


def build(model_config) -> TripletSN:
    backbone = model_config.backbone
    if backbone != "scratch":
        efficientnet.variant(backbone)  # an unknown name fails here, with the known ones
    return TripletSN(widths=tuple(model_config.widths), hidden=model_config.hidden,
                     embed_dim=model_config.embed_dim, dropout=model_config.dropout,
                     norm_affine=model_config.norm_affine,
                     backbone=backbone)


def init(module, rng, image_shape):
    return module.init({"params": rng}, jnp.zeros((1, *image_shape), jnp.uint8))["params"]


def load_pretrained(params, model_config):
    """The backbone's ImageNet weights over a fresh init; the head keeps its initial values."""
    if model_config.backbone == "scratch":
        return params
    return {**params, "backbone": efficientnet_weights.load(model_config.backbone,
                                                            params["backbone"])}


def loss(module, params, batch, rng, config):
    # One forward pass over the stacked triplet so InstanceNorm statistics stay per image and the
    # encoder runs as one large batch.
    n = batch["sketch"].shape[0]
    images = jnp.concatenate([batch["sketch"], batch["positive"], batch["negative"]])
    z = module.apply({"params": params}, images, train=True, rngs={"dropout": rng})
    anchor, pos, neg = z[:n], z[n:2 * n], z[2 * n:]
    value = losses.triplet_margin(anchor, pos, neg, config.loss.margin,
                                  config.loss.triplet_eps)
    d_pos = losses.euclidean(anchor, pos)
    d_neg = losses.euclidean(anchor, neg)
    return value, {"triplet": value, "d_pos": jnp.mean(d_pos), "d_neg": jnp.mean(d_neg),
                   "triplet_acc": jnp.mean((d_pos < d_neg).astype(jnp.float32))}


def embed(module, params, images, modality):
    del modality  # siamese: one encoder for both
    return module.apply({"params": params}, images, train=False)


METHOD = registry.register(registry.Method(
    name="triplet_sn", build=build, init=init, loss=loss, embed=embed, train_inputs="triplet",
    load_pretrained=load_pretrained,
    pretrained_source=lambda m: "" if m.backbone == "scratch" else m.backbone))
