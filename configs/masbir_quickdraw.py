"""MA-SBIR on QuickDraw-extended, zero-shot: 80 seen / 30 unseen classes (Dey et al.), pretrained
CLIP ViT-B/32 (shared values and their sources: sbirjax/defaults_masbir.py). Needs the manual
download (--config.data.manual_dir).

Metrics: mAP@all = 'map_voc@all' (VOC AP) and P@200 = 'p_minr@200' (top min(K, R) items), on 'zs'
(unseen sketches against unseen photos) and 'gzs' (against the generalised gallery). Raw and
converted queries are both reported; the checkpoint is selected on 'val' (10% of the seen
classes). Options after the (empty) setting: masbir_quickdraw.py:zs,frozen | zs,bf16 | ...
(frozen, clip_frozen, layernorm_only, bf16, class_aware).
"""
from sbirjax import defaults_masbir


def get_config(arg="zs"):
    setting, *options = (arg or "zs").split(",")
    if setting != "zs":
        raise ValueError(f"unknown setting {setting!r}; QuickDraw has one: 'zs'")
    c = defaults_masbir.base()
    c.data.name = "quickdraw"
    c.data.train_sketches = c.data.train_photos = "zs_train"
    c.total_steps = 136_000  # 100 epochs at batch 256 of (237,709 + 149,849) x 0.9 items
    c.eval.splits = {"zs": ("zs_test", "zs_test"), "gzs": ("zs_test", "gzs_gallery")}
    c.eval.category_metrics = ("map_voc@all", "p_minr@200")
    c.eval.select = "val/map_voc@all"
    return defaults_masbir.apply_options(c, options)
