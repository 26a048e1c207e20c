"""MA-SBIR on Sketchy-extended, zero-shot (pretrained CLIP ViT-B/32; shared values and their
sources: sbirjax/defaults_masbir.py). Needs the manual download (--config.data.manual_dir).

Settings (the argument; metric conventions: docs/metrics.md):
  split2 (default)  21 unseen classes (Yelamarthi et al.): mAP@200 = 'map_voc@200' (VOC AP on the
                    top 200, R_K = min(K, R)) and P@200 = 'p_minr@200' (top min(K, R) items)
  split1            25 unseen classes (Shen et al.): mAP@all = 'map_voc@all', P@100 = 'p_minr@100'
  gzs               split-2 training; 'zs' as split2, and 'gzs': the same queries against the
                    builder's gzs2_gallery (unseen photos plus a seeded 20% of each seen class)
  fg                split-2 training; fine-grained ZS: acc@1 / acc@5 of the query's own photo among
                    the photos of its class ('fine_grained_within_class'), gallery = the original
                    Sketchy photos of the unseen classes (zs2_test_original)
Galleries are the extended photos of the unseen classes (zs<k>_test: MA-SBIR's 10,453 for split 2).
Every setting reports the raw sketch query unprefixed and the converted query as 'converted/...';
the checkpoint is selected on 'val' (a 10% hold-out of the seen classes), never on test classes.
Options after a comma: frozen (the frozen-CLIP baseline: no training), clip_frozen,
layernorm_only, bf16, class_aware, e.g.
  python -m sbirjax.main --config=configs/masbir_sketchy.py:split1,bf16 --workdir=...
"""
from sbirjax import defaults_masbir

SETTINGS = {
    # setting: (train split, eval splits, metrics, total steps = 100 epochs at batch 256 of the
    #           training sketches + extended photos less the 10% hold-out)
    "split1": ("zs1_train", {"zs": ("zs1_test", "zs1_test")}, ("map_voc@all", "p_minr@100"),
               41_700),   # (60,242 + 58,401) x 0.9 / 256 x 100
    "split2": ("zs2_train", {"zs": ("zs2_test", "zs2_test")}, ("map_voc@200", "p_minr@200"),
               44_100),   # (62,777 + 62,549) x 0.9 / 256 x 100
    "gzs": ("zs2_train", {"zs": ("zs2_test", "zs2_test"), "gzs": ("zs2_test", "gzs2_gallery")},
            ("map_voc@200", "p_minr@200"), 44_100),
    "fg": ("zs2_train", {"fgzs": ("zs2_test", "zs2_test_original")}, (), 44_100),
}


def get_config(arg="split2"):
    setting, *options = (arg or "split2").split(",")
    if setting not in SETTINGS:
        raise ValueError(f"unknown setting {setting!r}; use one of {sorted(SETTINGS)}")
    train, evals, metrics, steps = SETTINGS[setting]
    c = defaults_masbir.base()
    c.data.name = "sketchy"
    c.data.train_sketches = c.data.train_photos = train
    c.total_steps = steps
    c.eval.splits = evals
    if setting == "fg":
        c.eval.protocol = "fine_grained_within_class"
        c.eval.ks = (1, 5)
        c.eval.category_metrics = ()
        c.eval.select = "val/acc@1"
    else:
        c.eval.category_metrics = metrics
        c.eval.select = f"val/{metrics[0]}"
    return defaults_masbir.apply_options(c, options)
