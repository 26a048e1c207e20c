"""StyleMeUp on QMUL-ShoeV2 (fine-grained SBIR), the paper's main setting.

  python -m sbirjax.main --config=configs/shoev2.py \
      --config.data.manual_dir=~/data/SketchX_Shoe_ChairV2
  python -m sbirjax.main --config=configs/shoev2.py:no_ft            # an ablation
  python -m sbirjax.main --config=configs/shoev2.py:full,3sketch     # the official code's 3-sketch
                                                                     # filter (train and test)
  python -m sbirjax.main --config=configs/shoev2.py:triplet_sn       # the Triplet-SN baseline

The argument is comma-separated: a StyleMeUp ablation (defaults.STYLEMEUP_ABLATIONS: full,
no_ft, no_reg, fixed_ft, first_order, model_first_order, mldg, inner0..inner4) or 'triplet_sn', and
optionally '3sketch'.
Test protocol: the standard full test split by default (ShoeV2: 200 photos, every test sketch);
'3sketch' keeps only photos with three sketches, train and test, as the official code does.
Model defaults follow the paper (defaults.stylemeup); the latent size d is
--config.model.embed_dim (the paper's ablation: 32, 64, 128). Published (acc@1 / acc@10):
Triplet-SN 28.71 / 71.56, StyleMeUp 36.47 / 81.83. The dataset is built on first use from the
manual download (docs/datasets.md).
"""
from sbirjax import defaults


def get_config(arg="full"):
    c = defaults.stylemeup_fine_grained("shoev2", arg)
    # 200 epochs as the official code: 1,800 train photos / 12 tasks = 150 steps an epoch.
    c.total_steps = 30000
    c.log_every = 100
    c.eval_every = 1500
    c.checkpoint_every = 1500
    return c
