"""MA-SBIR on TU-Berlin-extended, zero-shot (pretrained CLIP ViT-B/32; shared values and their
sources: sbirjax/defaults_masbir.py). Needs the manual download (--config.data.manual_dir).

Settings (the argument): which 30 unseen classes
  standard (default)  the Shen / SAKE list (builder splits zs_train / zs_test, gzs_gallery)
  masbir              MA-SBIR's own list (zs_mas_train / zs_mas_test, gzs_mas_gallery)
Metrics: mAP@all = 'map_voc@all' (VOC AP) and P@100 = 'p_minr@100' (top min(K, R) items), on 'zs'
(unseen sketches against unseen photos) and 'gzs' (the same queries against the generalised
gallery: unseen photos plus a seeded 20% of each seen class). Captions drop the article, as the
code does for TU-Berlin ('a photo of {}.'). Raw and converted queries are both reported; the
checkpoint is selected on 'val' (10% of the seen classes). Options as configs/masbir_sketchy.py
(frozen, clip_frozen, layernorm_only, bf16, class_aware), e.g. masbir_tuberlin.py:masbir,frozen
"""
from sbirjax import defaults_masbir

SETTINGS = {
    # setting: (split prefix, GZS gallery, total steps = 100 epochs at batch 256 of the training
    #           sketches + photos less the 10% hold-out)
    "standard": ("zs", "gzs_gallery", 68_200),       # (17,600 + 176,500) x 0.9 / 256 x 100
    "masbir": ("zs_mas", "gzs_mas_gallery", 69_000),  # (17,600 + 178,781) x 0.9 / 256 x 100
}


def get_config(arg="standard"):
    setting, *options = (arg or "standard").split(",")
    if setting not in SETTINGS:
        raise ValueError(f"unknown setting {setting!r}; use one of {sorted(SETTINGS)}")
    prefix, gzs_gallery, steps = SETTINGS[setting]
    c = defaults_masbir.base()
    c.data.name = "tuberlin"
    c.data.train_sketches = c.data.train_photos = f"{prefix}_train"
    c.data.text.templates = {"photo": "a photo of {}.", "sketch": "a sketch of {}."}
    c.total_steps = steps
    c.eval.splits = {"zs": (f"{prefix}_test", f"{prefix}_test"),
                     "gzs": (f"{prefix}_test", gzs_gallery)}
    c.eval.category_metrics = ("map_voc@all", "p_minr@100")
    c.eval.select = "val/map_voc@all"
    return defaults_masbir.apply_options(c, options)
