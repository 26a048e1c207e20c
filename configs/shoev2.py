"""StyleMeUp on QMUL-ShoeV2 (fine-grained SBIR), the paper's main setting.

  python -m sbirjax.main --config=configs/shoev2.py --config.data.manual_dir=~/data/SketchX_Shoe_ChairV2
  python -m sbirjax.main --config=configs/shoev2.py:no_ft            # an ablation
  python -m sbirjax.main --config=configs/shoev2.py:full,3sketch     # the official code's test filter
  python -m sbirjax.main --config=configs/shoev2.py:triplet_sn       # the Triplet-SN baseline

The argument is comma-separated: a StyleMeUp ablation (defaults.STYLEMEUP_ABLATIONS: full,
no_ft, no_reg, fixed_ft, first_order, inner0..inner4) or 'triplet_sn', and optionally '3sketch'.
Test protocol: the standard full test split by default (ShoeV2: 200 photos, every test sketch);
'3sketch' keeps only photos with three sketches, train and test, as the official code does.
Model defaults follow the paper (defaults.stylemeup); the latent size d is
--config.model.embed_dim (the paper's ablation: 32, 64, 128). Published (acc@1 / acc@10):
Triplet-SN 28.71 / 71.56, StyleMeUp 36.47 / 81.83. The dataset is built on first use from the
manual download (README, "Datasets").
"""
from sbirjax import defaults


def get_config(arg="full"):
    tokens = [t for t in (arg or "full").split(",") if t]
    method = tokens[0] if tokens else "full"
    split = "_3sketch" if "3sketch" in tokens[1:] else ""
    c = defaults.base() if method == "triplet_sn" else defaults.stylemeup(method)
    c.data.name = "shoev2"
    c.data.image.size = 256
    c.data.train_sketches = c.data.train_photos = "train" + split
    c.eval.splits = {"test": ("test" + split, "test" + split)}
    c.eval.protocol = "fine_grained"
    c.eval.ks = (1, 5, 10)
    # 200 epochs as the official code: 1,800 train photos / 12 tasks = 150 steps an epoch.
    c.total_steps = 30000
    c.log_every = 100
    c.eval_every = 1500
    c.checkpoint_every = 1500
    if method == "triplet_sn":
        c.batch_size = 32
    return c
