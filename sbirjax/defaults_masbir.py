"""MA-SBIR values shared by configs/masbir_*.py and configs/synthetic_masbir.py. Only assembles
values.

Follows the official code (docs/parity.md) unless marked:
  - transformers' AdamW (optim.name 'adamw_hf': eps 1e-6 added to sqrt(v) before the bias
    correction, decay applied to the updated weights; sbirjax/optim.py), weight decay 0.1 on every
    parameter, lr 5e-3 for the modality table and the discriminator; CLIP at 5e-3 x 1e-5 = 5e-8
    (optim.groups); warmup int(5% of the steps), linear from 0, then constant; batch 256;
    100 epochs. optax's AdamW stays a choice: --config.optim.name=adamw --config.optim.eps=1e-8
  - loss weights clip 1, sem 0.1, disc 0.1, rec 0.02, orth 0, normalised by their sum (1.22);
    logit scale fixed at 2.6592 (x14.3); arange CLIP targets (loss.class_aware=False)
  - CLIP preprocessing: centre square resized to 224, CLIP mean/std (inside the model); no
    flip or crop augmentation
  - captions, text max length 30. The caption of a photo is 'a photo of a {}.' (table row 3, the
    text modality the code uses at test); the caption of a sketch is 'a sketch of a {}.' on row 2,
    the row the released files never show (docs/parity.md, sketch captions): data.text
  - sbirjax, not the code: the loader is shuffled every epoch, and the checkpoint is selected on
    a seeded 10% per-class hold-out of the SEEN classes ('val', data.holdout_fraction), never on
    test classes (the code selects by loss on the test classes)
CLIP modes (optim.groups, first match wins):
  'code'            every CLIP weight at the base lr x clip_multiplier (the code: 1e-5)
  'frozen'          CLIP fixed, only the table and the discriminator learn
  'layernorm_only'  CLIP fixed except its LayerNorm scales and biases, which learn at base lr x
                    LAYERNORM_MULTIPLIER (1e-2 = 5e-5: an sbirjax choice, not from the paper)
CLIP's own logit_scale parameter is never used (the scale is fixed) and is kept frozen.
"""
import ml_collections

from sbirjax import defaults

CLIP_B32 = "openai/clip-vit-base-patch32"
LAYERNORM = r"^clip/.*(layer_norm|layernorm)[^/]*/(scale|bias)$"
LAYERNORM_MULTIPLIER = 1e-2


def clip_groups(mode: str, clip_multiplier: float = 1e-5) -> tuple:
    groups = {
        "code": (("^clip/logit_scale$", 0.0), ("^clip/", clip_multiplier)),
        "frozen": (("^clip/", 0.0),),
        "layernorm_only": (("^clip/logit_scale$", 0.0), (LAYERNORM, LAYERNORM_MULTIPLIER),
                           ("^clip/", 0.0)),
    }
    if mode not in groups:
        raise ValueError(f"unknown CLIP mode {mode!r}; use one of {sorted(groups)}")
    return groups[mode]


def base(*, pretrained: str = CLIP_B32, image_size: int = 224) -> ml_collections.ConfigDict:
    c = defaults.base()
    c.method = "masbir"
    c.batch_size = 256
    c.log_every = 100
    c.eval_every = 5000
    c.checkpoint_every = 5000

    c.data.image.size = image_size
    c.data.image.center_crop = True
    c.data.augment = ml_collections.ConfigDict({"flip_prob": 0.0, "crop_scale_min": 1.0})
    c.data.holdout_fraction = 0.1
    snapshot = ml_collections.FieldReference(pretrained)
    vocab_size = ml_collections.FieldReference(49408)
    max_length = ml_collections.FieldReference(30)
    c.data.text = ml_collections.ConfigDict({
        "templates": {"photo": "a photo of a {}.", "sketch": "a sketch of a {}."},
        "modality": {"photo": 3, "sketch": 2},
        "max_length": max_length,
        # Follows model.pretrained until set itself ('' -> a vocabulary generated from the
        # captions); setting it leaves model.pretrained alone (a one-way reference).
        "tokenizer": snapshot + "",
        "vocab_size": vocab_size,    # only for the generated vocabulary
    })

    # With a snapshot its config.json fixes the architecture; the sizes below (ViT-B/32) are used
    # when pretrained == '' (random weights: benchmarks, from-scratch runs).
    c.model = ml_collections.ConfigDict({
        "pretrained": snapshot, "dtype": "float32", "image_size": c.data.image.get_ref("size"),
        # base()'s keys (an ImageNet trunk is Triplet-SN's; MA-SBIR refuses one)
        "backbone": c.model.backbone, "backbone_lr_mult": c.model.backbone_lr_mult,
        "act": "quick_gelu", "projection_dim": 512,
        "vision": {"patch_size": 32, "width": 768, "layers": 12, "heads": 12, "mlp_dim": 3072},
        "text": {"vocab_size": vocab_size, "max_positions": 77, "width": 512, "layers": 12,
                 "heads": 8, "mlp_dim": 2048},
    })
    c.loss = ml_collections.ConfigDict({
        "weights": {"clip": 1.0, "sem": 0.1, "disc": 0.1, "rec": 0.02, "orth": 0.0},
        "logit_scale": 2.6592, "class_aware": False})
    c.optim.update({
        "name": "adamw_hf", "lr": 5e-3, "b1": 0.9, "b2": 0.999, "eps": 1e-6, "weight_decay": 0.1,
        "warmup_steps": 0, "warmup_fraction": 0.05, "schedule": "constant", "grad_clip": 0.0,
        "groups": clip_groups("code")})

    c.eval.protocol = "category"
    c.eval.similarity = "cosine"
    c.eval.batch_size = 256
    c.eval.ks = (1, 5, 10)
    return c


def apply_options(c: ml_collections.ConfigDict, options) -> ml_collections.ConfigDict:
    """Comma-separated config-argument options shared by the MA-SBIR configs:
      frozen          the zero-shot baseline: no training (total_steps 0), evaluate CLIP as loaded
      clip_frozen     train with CLIP fixed;  layernorm_only: train CLIP's LayerNorms only
      bf16            bfloat16 compute;       class_aware: same-class pairs are CLIP positives
    """
    for option in options:
        if option == "frozen":
            c.total_steps = 0
        elif option == "clip_frozen":
            c.optim.groups = clip_groups("frozen")
        elif option == "layernorm_only":
            c.optim.groups = clip_groups("layernorm_only")
        elif option == "bf16":
            c.model.dtype = "bfloat16"
        elif option == "class_aware":
            c.loss.class_aware = True
        else:
            raise ValueError(f"unknown option {option!r}; use frozen, clip_frozen, "
                             "layernorm_only, bf16 or class_aware")
    return c
