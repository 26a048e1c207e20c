"""StyleMeUp on the synthetic sketch-photo world (fine-grained, unseen users at test time).

Defaults follow the paper where it and the official code disagree (sbirjax/defaults.py,
`stylemeup`: FT layers, second-order meta-gradient, d = 64); the rest follows the official code.

One value departs from both: the inner learning rate is 5e-4, a tenth of the code's. Measured
(docs/stylemeup_synthetic.md): at 5e-3 the inner step solves each task by itself
and the model stays at chance, first or second order; at 5e-4 it learns a little on one seed of
three (the others end at or near chance), and no setting tried reaches the `inner0` ablation.
--config.meta.inner_lr=5e-3 gives the code's value. The random-resized crop
(data.augment.crop_scale_min 0.85) also stays on here, though the official pipeline has none:
the synthetic table (docs/stylemeup_synthetic.md) was measured with it
(--config.data.augment.crop_scale_min=1.0 turns it off).

The argument is 'ablation[,styles]'. The ablation (docs/stylemeup_synthetic.md):
  full (default) | no_ft | no_reg | fixed_ft | first_order | model_first_order | mldg |
  inner0 .. inner4
  python -m sbirjax.main --config=configs/synthetic_stylemeup.py:no_ft
',styles' trains and evaluates on the second world, whose 48 users have persistent person-specific
styles (docs/stylemeup_styles.md), e.g. with another episode design and update:
  python -m sbirjax.main --config=configs/synthetic_stylemeup.py:full,styles \
      --config.meta.episode=disjoint --config.meta.update_rule=tseng
"""
from sbirjax import defaults


def get_config(arg="full"):
    tokens = [t for t in (arg or "full").split(",") if t]
    if any(t != "styles" for t in tokens[1:]):
        raise ValueError(f"configs/synthetic_stylemeup.py: argument {arg!r}; "
                         "use 'ablation[,styles]'")
    c = defaults.stylemeup(tokens[0] if tokens else "full")
    c.data.name = "synthetic"
    c.data.image.size = 64
    # 400 meta-steps of 12 tasks (14,400 sketches seen; the Triplet-SN default sees 25,600).
    c.meta.inner_lr = 5e-4  # the code's 5e-3 leaves the model at chance here (see above)
    # A random-resized crop (the official pipeline has none): the synthetic table
    # (docs/stylemeup_synthetic.md) was measured with it.
    c.data.augment.crop_scale_min = 0.85
    c.total_steps = 400
    c.log_every = 25
    c.eval_every = 200
    c.checkpoint_every = 50
    c.eval.splits = {"test": ("test", "test"), "test_seen_users": ("test_seen_users", "test")}
    if "styles" in tokens[1:]:
        c.data.synthetic.update(defaults.STYLES_WORLD)
    return c
