"""StyleMeUp on QMUL-ChairV2 (fine-grained SBIR), the paper's second fine-grained setting.

  python -m sbirjax.main --config=configs/chairv2.py \
      --config.data.manual_dir=~/data/SketchX_Shoe_ChairV2
  python -m sbirjax.main --config=configs/chairv2.py:no_ft            # an ablation
  python -m sbirjax.main --config=configs/chairv2.py:full,3sketch     # the official code's 3-sketch
                                                                      # filter (train and test)
  python -m sbirjax.main --config=configs/chairv2.py:triplet_sn       # the Triplet-SN baseline

The argument is comma-separated: a StyleMeUp ablation (defaults.STYLEMEUP_ABLATIONS: full,
no_ft, no_reg, fixed_ft, first_order, model_first_order, mldg, inner0..inner4) or 'triplet_sn', and
optionally '3sketch'.
Test protocol: the standard full test split by default (ChairV2: 100 photos, 323 sketches);
'3sketch' keeps only photos with three sketches, train and test, as the official code does
(79 photos, 237 sketches).
Model defaults follow the paper (defaults.stylemeup); the latent size d is
--config.model.embed_dim (the paper tuned it on ShoeV2). Published (acc@1 / acc@10):
Triplet-SN 47.65 / 84.24, StyleMeUp 62.86 / 91.14. The dataset is built on first use from the
manual download (docs/datasets.md).
"""
from sbirjax import defaults


def get_config(arg="full"):
    c = defaults.stylemeup_fine_grained("chairv2", arg)
    # 200 epochs as the official code: 300 train photos / 12 tasks = 25 steps an epoch.
    c.total_steps = 5000
    c.log_every = 100
    c.eval_every = 250
    c.checkpoint_every = 250
    return c
