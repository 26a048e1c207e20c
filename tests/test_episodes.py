"""StyleMeUp episode designs and the Tseng update: what each loss sees, shapes, exactness.

- The builders: every design's task has the documented keys and shapes; 'official' shares the
  photo and the negative between its two parts, 'disjoint' puts another photo sketched by the
  held-out user in the outer part, 'user_split' keeps the users of the two parts apart.
- The objective: 'official' tasks give exactly the objective written out by hand with the
  released code's slots (inner 0, 1; outer 0, 2); the outer part of a 'disjoint' task moves only
  the outer loss.
- update='tseng': the model's gradient is the gradient of its plain inner loss, the FT layers' and
  the regulariser's equal the MAML meta-gradient.
"""
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from sbirjax import defaults
from sbirjax.data import episodes, examples
from sbirjax.methods import meta, stylemeup
from tests import helpers


def _split(num_photos=12, num_users=8, per_photo=5, size=16, seed=0):
    """A tiny fine-grained split: every photo sketched by `per_photo` distinct users."""
    rng = np.random.default_rng(seed)
    sketch_photo, sketch_user = [], []
    for j in range(num_photos):
        for u in rng.choice(num_users, per_photo, replace=False):
            sketch_photo.append(j)
            sketch_user.append(int(u))
    n = len(sketch_photo)
    strokes = [{"strokes": np.array([[10, 10, 0], [200, 100 * (i % 3) + 20, 1]], np.float32)}
               for i in range(n)]
    photos = [{"image": rng.integers(0, 255, (size, size, 3), np.uint8)} for _ in range(num_photos)]
    return types.SimpleNamespace(
        name="train", sketches=strokes, photos=photos, num_sketches=n, num_photos=num_photos,
        sketch_photo=np.array(sketch_photo), sketch_user=np.array(sketch_user),
        sketch_category=np.zeros(n, np.int64), photo_category=np.zeros(num_photos, np.int64))


def _data_config(size=16):
    data = defaults.base().data
    data.image.size = size
    data.augment.update({"flip_prob": 0.0, "crop_scale_min": 1.0})
    return data


class _Spy:
    """The split's images replaced by their indices, so a task says which images it holds."""

    def __init__(self, split):
        self.split = split

    def builder(self, episode):
        b = examples.make("meta_task", self.split, _data_config(), episode)
        b._part = self._part_ids.__get__(b)
        return b

    @staticmethod
    def _part_ids(builder, rng, photo, sketches, flip):
        _, neg = builder._positive_negative(rng, 0, photo)
        return np.array(sketches), photo, neg


@pytest.mark.parametrize("episode", episodes.EPISODES)
def test_task_shapes(episode):
    b = examples.make("meta_task", _split(), _data_config(), episode)
    task = b(3, np.random.default_rng(0))
    if episode == "official":
        assert set(task) == {"sketches", "photo", "negative"}
        assert task["sketches"].shape == (3, 16, 16, 3)
    else:
        assert set(task) == {"sketches", "photo", "negative", "outer_sketches", "outer_photo",
                             "outer_negative"}
        assert task["sketches"].shape == task["outer_sketches"].shape == (2, 16, 16, 3)
        assert task["outer_photo"].shape == task["outer_negative"].shape == (16, 16, 3)
    assert task["photo"].shape == (16, 16, 3) and task["photo"].dtype == np.uint8


def test_disjoint_outer_is_another_photo_by_the_held_out_user():
    split = _split()
    b = _Spy(split).builder("disjoint")
    for i in range(len(b)):
        pos = int(b.task_photos[i])
        task_rng = np.random.default_rng(100 + i)
        t = b._episode(pos, task_rng)
        (isk, iph, ineg), (osk, oph, oneg) = _parts(t)
        assert iph == pos and oph != pos and ineg != iph and oneg != oph
        assert all(split.sketch_photo[s] == iph for s in isk)
        assert all(split.sketch_photo[s] == oph for s in osk)
        inner_users = set(split.sketch_user[isk].tolist())
        assert len(inner_users) == 2 and split.sketch_user[osk[1]] not in inner_users
        assert split.sketch_user[osk[0]] != split.sketch_user[osk[1]]


def test_user_split_keeps_the_users_apart():
    split = _split(num_users=10)
    b = _Spy(split).builder("user_split")
    for i in range(len(b)):
        pos = int(b.task_photos[i])
        t = b._episode(pos, np.random.default_rng(i))
        (isk, iph, _), (osk, oph, _) = _parts(t)
        assert iph == pos and oph != pos
        inner_users, outer_users = set(split.sketch_user[isk]), set(split.sketch_user[osk])
        assert len(inner_users) == 2 == len(outer_users) and not inner_users & outer_users


def _parts(t):
    return ((t["sketches"], t["photo"], t["negative"]),
            (t["outer_sketches"], t["outer_photo"], t["outer_negative"]))


def test_designs_the_data_cannot_serve_fail_early():
    with pytest.raises(ValueError, match="config.meta.episode='nope'.*official"):
        episodes.check("nope")
    with pytest.raises(ValueError, match="at least 4 training users"):
        episodes.check("user_split", num_users=3)
    with pytest.raises(ValueError, match="pairing='instance'"):
        episodes.check("user_split", pairing="category")
    with pytest.raises(ValueError, match="at least 4 training users"):  # 3 users in the data
        examples.make("meta_task", _split(num_users=3, per_photo=3), _data_config(), "user_split")
    qmul = defaults.base().data
    qmul.name = "shoev2"
    assert episodes.training_users(qmul) == 3


# ----------------------------------------------------------------------------- objectives
def _setup(update="maml", tasks=None):
    module = stylemeup.StyleMeUp(image_size=8, widths=(2, 3), hidden=4, latent=3, dropout=0.0,
                                 ft=True)
    params = stylemeup.init(module, jax.random.key(0), (8, 8, 3))
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
    config = helpers.stylemeup_config(
        meta={"inner_lr": 0.5, "inner_steps": 1, "first_order": False, "regulariser": True,
              "update_rule": update},
        loss={"margin": 0.2, "triplet_eps": 0.0,
              "weights": {"kl": 1.0, "cross_style": 1.0, "cross_domain": 1.0, "self_recon": 0.0,
                          "triplet_inv": 1.0, "triplet_f": 1.0}})
    return module, params, config


def _official_tasks(rng):
    return {"sketches": rng.uniform(-1, 1, (2, 3, 8, 8, 3)),
            "photo": rng.uniform(-1, 1, (2, 8, 8, 3)),
            "negative": rng.uniform(-1, 1, (2, 8, 8, 3))}


@pytest.mark.slow
def test_official_episode_is_the_released_objective_exactly():
    with jax.enable_x64(True):
        module, params, config = _setup()
        tasks = jax.tree.map(jnp.asarray, _official_tasks(np.random.default_rng(0)))
        w, margin = dict(config.loss.weights), config.loss.margin

        def inner(p, task, key):  # the released code's episode, written out: slots (0, 1) ...
            loss, terms = stylemeup.task_losses(module, p, task, key, w, margin,
                                                sketch_slots=(0, 1), ft_active=True)
            return loss + stylemeup.regulariser(p), terms

        def outer(p, task, key):  # ... then the meta-train sketch 0 and the held-out sketch 2
            return stylemeup.task_losses(module, p, task, key, w, margin, sketch_slots=(0, 2),
                                         ft_active=False)

        def by_hand(p):
            return meta.maml_loss(p, tasks, jax.random.key(1), inner_loss=inner,
                                  outer_loss=outer, lr=0.5, steps=1,
                                  mask=stylemeup.inner_mask(p), first_order=False)[0]

        def ours(p):
            return stylemeup.meta_objective(module, p, tasks, jax.random.key(1), config)[0]

        (v_ours, g_ours), (v_hand, g_hand) = (jax.jit(jax.value_and_grad(f))(params)
                                              for f in (ours, by_hand))
        assert float(v_ours) == float(v_hand)
        for a, b in zip(jax.tree.leaves(g_ours), jax.tree.leaves(g_hand)):
            np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_disjoint_outer_part_moves_only_the_outer_loss():
    with jax.enable_x64(True):
        module, params, config = _setup()
        rng = np.random.default_rng(0)
        t = {k: v[0] for k, v in _official_tasks(rng).items()}
        t = dict(t, sketches=t["sketches"][:2], outer_sketches=rng.uniform(-1, 1, (2, 8, 8, 3)),
                 outer_photo=rng.uniform(-1, 1, (8, 8, 3)),
                 outer_negative=rng.uniform(-1, 1, (8, 8, 3)))
        moved = dict(t, outer_photo=t["outer_photo"] * 0.5)
        inner, outer = (jax.jit(f) for f in stylemeup.inner_and_outer(module, config))
        key = jax.random.key(2)
        assert float(inner(params, t, key)[0]) == float(inner(params, moved, key)[0])
        assert float(outer(params, t, key)[0]) != float(outer(params, moved, key)[0])
        # the outer loss of a disjoint task is the loss of its outer part, slots (0, 1)
        part = {"sketches": t["outer_sketches"], "photo": t["outer_photo"],
                "negative": t["outer_negative"]}
        expect = jax.jit(lambda p, part, k: stylemeup.task_losses(
            module, p, part, k, dict(config.loss.weights), 0.2, sketch_slots=(0, 1),
            ft_active=False)[0])(params, part, key)
        assert float(outer(params, t, key)[0]) == float(expect)


@pytest.mark.slow
def test_tseng_update_model_takes_its_inner_gradient_ft_and_reg_the_meta_gradient():
    with jax.enable_x64(True):
        module, params, config = _setup("tseng")
        tasks = jax.tree.map(jnp.asarray, _official_tasks(np.random.default_rng(0)))
        rng = jax.random.key(1)
        g_tseng = jax.jit(jax.grad(
            lambda p: stylemeup.meta_objective(module, p, tasks, rng, config)[0]))(params)
        config.meta.update_rule = "maml"
        g_maml = jax.jit(jax.grad(
            lambda p: stylemeup.meta_objective(module, p, tasks, rng, config)[0]))(params)
        inner, _ = stylemeup.inner_and_outer(module, config)
        keys = jax.random.split(rng, 2)  # maml_loss: one key per task, then (inner, outer)

        def plain(p):
            losses = [inner(p, jax.tree.map(lambda a: a[i], tasks),
                            jax.random.fold_in(jax.random.split(keys[i])[0], 0))[0]
                      for i in range(2)]
            return jnp.mean(jnp.stack(losses))

        g_plain = jax.jit(jax.grad(plain))(params)
        mask = traverse_util.flatten_dict(stylemeup.inner_mask(params), sep="/")
        flat = [traverse_util.flatten_dict(g, sep="/") for g in (g_tseng, g_maml, g_plain)]
        assert not all(mask.values()) and any(mask.values())
        for path, is_model in mask.items():
            want = flat[2][path] if is_model else flat[1][path]
            np.testing.assert_allclose(flat[0][path], want, rtol=1e-10, atol=1e-13,
                                       err_msg=path)
        assert np.abs(flat[0]["reg_P"]).max() > 0


def test_unknown_update_is_refused():
    with pytest.raises(ValueError, match="config.meta.update_rule='nope'"):
        meta.maml_loss({}, {"x": jnp.zeros((1, 2))}, jax.random.key(0), inner_loss=None,
                       outer_loss=None, lr=0.1, steps=1, mask={}, first_order=False,
                       update="nope")
