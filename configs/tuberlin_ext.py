"""StyleMeUp on TU-Berlin-extended, category-level SBIR under the DSH protocol.

  python -m sbirjax.main --config=configs/tuberlin_ext.py --config.data.manual_dir=~/data/TUBerlin
  python -m sbirjax.main --config=configs/tuberlin_ext.py:triplet_sn   # the Triplet-SN baseline

DSH protocol: 10 query sketches per class held out ('dsh_test', 2,500 sketches), the rest train
('dsh_train'); the gallery and the training photos are all 204,489 photos ('dsh_gallery').
Category level: a task is a photo, a photo of another class and three sketches of the photo's
class (data.pairing='category'; the datasets carry no user ids, so every sketch is its own style).
Metrics as in the paper's table: mAP@all (non-interpolated, scikit-learn convention) and P@200
(relevant in the top 200 / 200), Euclidean distance on z_inv. Published: 0.778 / 0.795.
The argument is a StyleMeUp ablation (defaults.STYLEMEUP_ABLATIONS) or 'triplet_sn'.
"""
from sbirjax import defaults


def get_config(arg="full"):
    c = defaults.stylemeup_category_dsh("tuberlin", arg)
    # About 15 epochs over the 204,489 photos at 12 tasks a step (the paper gives no count for
    # the category-level runs).
    c.total_steps = 250000
    c.log_every = 200
    c.eval_every = 25000
    c.checkpoint_every = 5000
    return c
