"""StyleMeUp (Sain et al., CVPR 2021): a style-agnostic cross-modal VAE, meta-trained.

An image (sketch or photo) is encoded into a modality-invariant code z_inv (L2-normalised; used
for retrieval) and a Gaussian modality/style code z_var; the decoder reconstructs from
z_f = z_var + z_inv (a sum, as in the official code). Meta-training (sbirjax/methods/meta.py)
adapts the model on two sketching styles of a photo with feature-wise transformation (FT) layers
active and a learned element-wise L1 regulariser on the invariant head, then scores the adapted
model on a held-out style with FT off and no regulariser. The meta-gradient is second order by
default, so the regulariser and the FT parameters are trained; the official code is first order,
which leaves both untouched (`config.meta.first_order=True` reproduces that).

Parameter groups (leaf paths): 'reg_P' the regulariser weights, 'encoder/ft<i>/...' the FT layers,
everything else the model Omega, which is what the inner step updates.

With `trunk` set to an EfficientNet-Lite variant (config.model.backbone), the ImageNet trunk
(sbirjax/nets/efficientnet.py, under 'backbone/') replaces the conv encoder and its hidden layer:
the heads read its pooled 1280-d feature, L2-normalised and scaled to unit RMS (then dropout),
FT layers sit in every MBConv block ('backbone/blocks_<i>/ft/...'), and the regulariser is
(1281, latent). The decoder is unchanged, trained from scratch, and reconstructs the image on the
project's [-1, 1] scale. The inner step adapts the trunk too, as the official code's MAML adapts
its whole model, but at the trunk's learning-rate multiplier (model.backbone_lr_mult, as in the
outer optimiser; `inner_lr_scale`); the trunk's BatchNorm statistics stay frozen.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import traverse_util

from sbirjax.methods import losses, meta, registry
from sbirjax.nets import efficientnet, efficientnet_weights
from sbirjax.nets.convnet import INSTANCE_NORM_EPS, ConvEncoder, to_float
from sbirjax.nets.upconv import UpConv


class Decoder(nn.Module):
    """Dense -> (s, s, widths[0]) -> Dropout -> [ConvT(4, s2) -> InstanceNorm -> ReLU]* -> ConvT
    -> tanh.

    ConvT is the official ConvTranspose2d(4, stride 2, pad 1), computed by UpConv (four phase
    convolutions: same function and parameters, much faster gradients on CPU)."""

    image_size: int
    widths: tuple = (256, 256, 128, 64, 32)
    dropout: float = 0.5
    norm_affine: bool = False
    conv_impl: str = "xla"

    @nn.compact
    def __call__(self, z, *, train: bool):
        s = self.image_size // 2 ** len(self.widths)
        x = nn.Dense(s * s * self.widths[0], name="fc")(z).reshape(z.shape[0], s, s, self.widths[0])
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        for i, w in enumerate(self.widths[1:]):
            x = UpConv(w, use_bias=False, impl=self.conv_impl, name=f"deconv{i}")(x)
            x = nn.relu(nn.InstanceNorm(epsilon=INSTANCE_NORM_EPS, use_scale=self.norm_affine,
                                        use_bias=self.norm_affine, name=f"norm{i}")(x))
        x = UpConv(3, impl=self.conv_impl, name="out")(x)
        return jnp.tanh(x)


class StyleMeUp(nn.Module):
    image_size: int = 64
    widths: tuple = (32, 64, 128, 256, 256)
    hidden: int = 512
    latent: int = 64
    dropout: float = 0.5
    ft: bool = True
    ft_init_scale: float = 1.0  # times the FT layers' initial thetas (config.model.ft_init_scale)
    reg_init_scale: float = 1.0  # P starts U(0, reg_init_scale) (config.model.reg_init_scale)
    norm_affine: bool = False  # the official code's InstanceNorm2d(affine=False)
    conv_impl: str = "xla"     # 'matmul': convolutions as patches @ kernel (nets/patchconv.py)
    trunk: str = "scratch"     # or an EfficientNet-Lite variant (module docstring)

    def setup(self):
        if self.trunk == "scratch":
            self.encoder = ConvEncoder(self.widths, self.hidden, self.dropout, ft=self.ft,
                                       ft_init_scale=self.ft_init_scale,
                                       norm_affine=self.norm_affine, conv_impl=self.conv_impl)
            features = self.hidden
        else:
            self.backbone = efficientnet.EfficientNetLite(self.trunk, num_classes=0, ft=self.ft,
                                                          ft_init_scale=self.ft_init_scale)
            self.backbone_dropout = nn.Dropout(self.dropout)
            features = efficientnet.HEAD_FEATURES
        self.inv = nn.Dense(self.latent)
        self.mu = nn.Dense(self.latent)
        self.logvar = nn.Dense(self.latent)
        self.decoder = Decoder(self.image_size, tuple(reversed(self.widths)), self.dropout,
                               self.norm_affine, self.conv_impl)
        # Regulariser weights P, shaped like [W_inv; b_inv], U(0, 1) as in the official code.
        self.reg_P = self.param("reg_P", nn.initializers.uniform(self.reg_init_scale),
                                (features + 1, self.latent))

    def encode(self, images, *, train: bool, ft_active: bool = False):
        if self.trunk == "scratch":
            h = self.encoder(images, train=train, ft_active=ft_active)
        else:
            h = self.backbone(images, ft_active=ft_active)["pooled"]
            # L2-normalised, as the official code's pretrained backbones return it, then scaled
            # to unit RMS so the heads start on the scale they have from scratch. Raw, the pooled
            # ImageNet feature puts the initial KL at 18-28 and the logvar head's inner
            # gradient at 1e3-1e4, and meta-training diverges (docs/stylemeup_styles.md).
            h = losses.l2_normalize(h) * jnp.sqrt(jnp.asarray(h.shape[-1], h.dtype))
            h = self.backbone_dropout(h, deterministic=not train)
        return losses.l2_normalize(self.inv(h)), self.mu(h), self.logvar(h)

    def decode(self, z, *, train: bool):
        return self.decoder(z, train=train)

    def __call__(self, images, *, train: bool = False):
        z_inv, mu, _ = self.encode(images, train=train)
        return z_inv, self.decode(z_inv + mu, train=train)


def regulariser(params):
    """R(Omega_inv) = sum(P * |[W_inv; b_inv]|)."""
    w = jnp.concatenate([params["inv"]["kernel"], params["inv"]["bias"][None, :]], axis=0)
    return jnp.sum(params["reg_P"] * jnp.abs(w))


def kl_standard_normal(mu, logvar):
    """KL(N(mu, exp(logvar)) || N(0, I)), mean over elements."""
    return jnp.mean(-0.5 * (1.0 + logvar - mu ** 2 - jnp.exp(logvar)))


def task_losses(module, params, task, rng, weights, margin, *, sketch_slots, ft_active, train=True,
                triplet_eps=0.0, noise=None):
    """All StyleMeUp terms for one task on two of its sketches.

    task: 'sketches' (S, H, W, 3) uint8 (S styles of one photo), 'photo' and 'negative' (H, W, 3).
    sketch_slots: the two sketch indices used, e.g. (0, 1) for meta-train, (0, 2) for meta-test.
    triplet_eps: the triplet distance's eps (losses.pairwise_distance).
    noise: the N(0, 1) draws of z_var, (4, latent) for (sketch a, sketch b, photo, negative);
    None draws them from rng (given, they let a test feed another implementation the same draws).
    """
    a, b = sketch_slots
    x = jnp.stack([task["sketches"][a], task["sketches"][b], task["photo"], task["negative"]])
    r_ft, r_drop, r_eps = jax.random.split(rng, 3)
    rngs = {"ft": r_ft, "dropout": r_drop}
    z_inv, mu, logvar = module.apply({"params": params}, x, train=train, ft_active=ft_active,
                                     method=StyleMeUp.encode, rngs=rngs)
    if noise is None:
        noise = jax.random.normal(r_eps, mu.shape, mu.dtype)
    z_var = mu + jnp.exp(0.5 * logvar) * noise
    z_f = z_inv + z_var
    s1, s2, p, n = 0, 1, 2, 3
    # Five decodes, batched, each output shared by every term that compares it with an image, as
    # in the official code: the two cross-style codes, then z_f of each sketch and of the photo.
    codes = jnp.stack([z_inv[s1] + z_var[s2], z_inv[s2] + z_var[s1], z_f[s1], z_f[s2], z_f[p]])
    recon = module.apply({"params": params}, codes, train=train, method=StyleMeUp.decode,
                         rngs={"dropout": jax.random.fold_in(r_drop, 1)})
    images = to_float(x).astype(recon.dtype)

    def err(i, j):  # decode i against image j
        return jnp.mean((recon[i] - images[j]) ** 2)

    terms = {
        "kl": kl_standard_normal(mu, logvar),
        "cross_style": (err(0, s2) + err(1, s1)) / 2,
        "cross_domain": (err(2, p) + err(3, p) + err(4, s1) + err(4, s2)) / 4,
        "triplet_inv": losses.triplet_margin(z_inv[:2], z_inv[p][None], z_inv[n][None], margin,
                                             triplet_eps),
        "triplet_f": losses.triplet_margin(z_f[:2], z_f[p][None], z_f[n][None], margin,
                                           triplet_eps),
    }
    # The self-reconstruction also decodes the negative. The official code computes it at weight 0
    # and multiplies it by 0; at weight 0 sbirjax neither decodes nor logs it. A call of its own,
    # with its own dropout key, leaves every other value as it is.
    if weights["self_recon"]:
        recon_n = module.apply({"params": params}, z_f[n][None], train=train,
                               method=StyleMeUp.decode,
                               rngs={"dropout": jax.random.fold_in(r_drop, 2)})
        err_n = jnp.mean((recon_n[0] - images[n]) ** 2)
        terms["self_recon"] = (err(2, s1) + err(3, s2) + err(4, p) + err_n) / 4
    total = sum(weights[k] * v for k, v in terms.items() if weights[k])
    return total, terms


def build(model_config) -> StyleMeUp:
    if model_config.backbone != "scratch":
        efficientnet.variant(model_config.backbone)  # an unknown name fails here, listing all
    return StyleMeUp(image_size=model_config.image_size, widths=tuple(model_config.widths),
                     hidden=model_config.hidden, latent=model_config.embed_dim,
                     dropout=model_config.dropout, ft=model_config.ft,
                     ft_init_scale=model_config.ft_init_scale,
                     reg_init_scale=model_config.reg_init_scale,
                     norm_affine=model_config.norm_affine,
                     conv_impl=model_config.conv_impl, trunk=model_config.backbone)


def init(module, rng, image_shape):
    return module.init({"params": rng}, jnp.zeros((1, *image_shape), jnp.uint8))["params"]


def load_pretrained(params, model_config):
    """The trunk's ImageNet weights over a fresh init; the FT layers, heads, decoder and
    regulariser keep their initial values."""
    if model_config.backbone == "scratch":
        return params
    return {**params, "backbone": efficientnet_weights.load(model_config.backbone,
                                                            params["backbone"])}


def _is_ft(path: str) -> bool:
    """An FT layer's leaf: 'encoder/ft<i>/...' or 'backbone/blocks_<i>/ft/...'."""
    return "/ft" in f"/{path}"


def inner_mask(params):
    """True on the leaves the inner step adapts (Omega): not the regulariser, not FT layers."""
    flat = traverse_util.flatten_dict(params, sep="/")
    return traverse_util.unflatten_dict(
        {k: not (k == "reg_P" or _is_ft(k)) for k in flat}, sep="/")


def inner_lr_scale(params, model_config):
    """The inner step's per-leaf learning-rate multipliers, or None (all 1). A pretrained trunk
    adapts at model.backbone_lr_mult, as in the outer optimiser (0 freezes it in both loops):
    at the full inner rate one SGD step over the 16 pretrained blocks breaks the trunk and
    meta-training diverges (docs/stylemeup_styles.md, "On the ImageNet trunk")."""
    if model_config.backbone == "scratch":
        return None
    mult = float(model_config.backbone_lr_mult)
    flat = traverse_util.flatten_dict(params, sep="/")
    return traverse_util.unflatten_dict(
        {k: mult if k.startswith("backbone/") and not _is_ft(k) else 1.0
         for k in flat}, sep="/")


def episode_parts(task):
    """((inner part, its sketch slots), (outer part, its sketch slots)) of a task.

    The official episode (sbirjax/data/episodes.py) is one photo, its negative and three sketches:
    inner on slots (0, 1), outer on the meta-train sketch 0 and the held-out sketch 2. The other
    designs carry their outer part apart ('outer_*'), two sketches each."""
    if "outer_photo" not in task:
        return (task, (0, 1)), (task, (0, 2))
    outer = {"sketches": task["outer_sketches"], "photo": task["outer_photo"],
             "negative": task["outer_negative"]}
    inner = {k: task[k] for k in ("sketches", "photo", "negative")}
    return (inner, (0, 1)), (outer, (0, 1))


def inner_and_outer(module, config):
    """The per-task (inner, outer) losses of meta-training: (params, task, rng) -> (loss, terms).
    Inner: the meta-train part, FT on, plus the regulariser; outer: the meta-test part (the
    held-out style; `episode_parts`), FT off, no regulariser."""
    m, w, margin = config.meta, dict(config.loss.weights), config.loss.margin
    eps = config.loss.triplet_eps

    def inner(p, task, key):
        (part, slots), _ = episode_parts(task)
        loss, terms = task_losses(module, p, part, key, w, margin, sketch_slots=slots,
                                  ft_active=module.ft, triplet_eps=eps)
        if m.regulariser:
            reg = regulariser(p)
            loss, terms = loss + reg, dict(terms, reg=reg)
        return loss, terms

    def outer(p, task, key):
        _, (part, slots) = episode_parts(task)
        return task_losses(module, p, part, key, w, margin, sketch_slots=slots, ft_active=False,
                           triplet_eps=eps)

    return inner, outer


def meta_objective(module, params, tasks, rng, config):
    """The outer (meta-test) loss averaged over tasks, through `config.meta.inner_steps` inner
    steps."""
    m = config.meta
    inner, outer = inner_and_outer(module, config)
    return meta.maml_loss(params, tasks, rng, inner_loss=inner, outer_loss=outer, lr=m.inner_lr,
                          steps=m.inner_steps, mask=inner_mask(params), first_order=m.first_order,
                          task_chunk=m.task_chunk, remat=m.remat,
                          unroll_chunks=m.unroll_chunks,
                          model_first_order=m.model_first_order,
                          unadapted_weight=m.unadapted_weight,
                          update=m.update_rule, lr_scale=inner_lr_scale(params, config.model),
                          hessian=m.hessian)


def loss(module, params, batch, rng, config):
    value, terms = meta_objective(module, params, batch, rng, config)
    return value, dict(terms, meta_loss=value)


def embed(module, params, images, modality):
    del modality  # one encoder for sketches and photos; retrieval uses z_inv
    z_inv, _, _ = module.apply({"params": params}, images, train=False, method=StyleMeUp.encode)
    return z_inv


METHOD = registry.register(registry.Method(
    name="stylemeup", build=build, init=init, loss=loss, embed=embed, train_inputs="meta_task",
    load_pretrained=load_pretrained,
    pretrained_source=lambda m: "" if m.backbone == "scratch" else m.backbone))
