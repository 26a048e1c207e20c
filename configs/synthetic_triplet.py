"""The embedded default: Triplet-SN fine-grained retrieval on the synthetic sketch-photo world.

Needs no download: the dataset is generated on first use (seconds). Test sketches are drawn by
users never seen in training ('test'); 'test_seen_users' shows the same photos sketched by
training users, so the gap between the two is the cost of unseen styles.
Runs on 2 CPU cores in about 8 minutes (dataset build included):
  python -m sbirjax.main --config=configs/synthetic_triplet.py

The argument 'styles' trains and evaluates on the second world instead, whose 48 simulated users
have persistent person-specific styles (sbirjax/data/synthetic_styles.py; docs/stylemeup_styles.md):
  python -m sbirjax.main --config=configs/synthetic_triplet.py:styles
"""
from sbirjax import defaults


def get_config(arg=None):
    if arg not in (None, "", "styles"):
        raise ValueError(f"configs/synthetic_triplet.py: unknown argument {arg!r}; "
                         "use 'styles' or none")
    c = defaults.base()
    c.method = "triplet_sn"
    c.data.name = "synthetic"
    c.data.image.size = 64
    c.total_steps = 800
    c.batch_size = 32
    c.log_every = 100
    c.eval_every = 400
    c.checkpoint_every = 200
    c.optim.lr = 3e-4
    # InstanceNorm keeps a learned scale and bias here (docs/results.md's numbers were measured so);
    # the official trunk has none (StyleMeUp's configs follow the official code).
    c.model.norm_affine = True
    c.eval.splits = {"test": ("test", "test"), "test_seen_users": ("test_seen_users", "test")}
    if arg == "styles":
        c.data.synthetic.update(defaults.STYLES_WORLD)
    return c
