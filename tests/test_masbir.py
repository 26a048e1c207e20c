"""MA-SBIR: loss terms on hand-made vectors, conversion, parameter groups, captions, the generated
BPE vocabulary, the seen-class hold-out, and one jitted train step of a tiny model."""
import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import traverse_util

from sbirjax import defaults_masbir, optim, steps
from sbirjax import state as state_lib
from sbirjax.data import bpe_vocab, captions, splits, synthetic
from sbirjax.methods import masbir, registry
from sbirjax.nets import clip_weights
from tests.helpers import CLIP_FIXTURE as FIXTURE

R2 = np.sqrt(0.5)
TEXT = dict(templates={"photo": "a photo of a {}.", "sketch": "a sketch of a {}."},
            modality={"photo": 3, "sketch": 2}, max_length=16, tokenizer="", vocab_size=600)


def tiny_config(vocab_size=64, image_size=16):
    c = defaults_masbir.base(pretrained="", image_size=image_size)
    c.batch_size = 8
    c.data.text.max_length = 8
    c.model.projection_dim = 8
    c.model.vision = {"patch_size": 8, "width": 16, "layers": 1, "heads": 2, "mlp_dim": 32}
    c.model.text = {"vocab_size": vocab_size, "max_positions": 8, "width": 16, "layers": 1,
                    "heads": 2, "mlp_dim": 32}
    return c


def init(module, size):
    return jax.jit(lambda rng: masbir.init(module, rng, (size, size, 3)))(jax.random.key(0))


@functools.cache
def tiny_model():
    c = tiny_config()
    module = masbir.build(c.model)
    return c, module, init(module, 16)


# ------------------------------------------------------------------ losses, known answers
def test_semantic_and_reconstruction_known_answers():
    s_img, s_txt = jnp.array([[1.0, 0.0]]), jnp.array([[0.0, 1.0]])
    centre = jnp.array([[R2, R2]])
    np.testing.assert_allclose(masbir.semantic_loss(s_img, s_txt, centre), 2 * (1 - R2), rtol=1e-6)
    np.testing.assert_allclose(masbir.semantic_loss(centre, 3 * centre, centre), 0.0, atol=1e-6)
    # s_txt + m_img = (0, 2) against z_img = (1, 0): cos 0; s_img + m_txt = (2, 2) against (1, 1): 1
    value = masbir.reconstruction_loss(s_img, s_txt, jnp.array([[0.0, 1.0]]),
                                       jnp.array([[1.0, 2.0]]), jnp.array([[1.0, 0.0]]),
                                       jnp.array([[R2, R2]]))
    np.testing.assert_allclose(value, 1.0, rtol=1e-6)


def test_discriminator_excludes_the_source_modality():
    eye = 30.0 * jnp.eye(4)                      # converted to k -> confidently k: CE ~ 0
    wrong = eye.at[1].set(30.0 * jnp.eye(4)[0])  # but the row of target 1 says 0
    src = jnp.array([1])
    assert float(masbir.discriminator_loss(wrong[None], src)) < 1e-6  # row 1 is the source: unused
    assert float(masbir.discriminator_loss(wrong[None], jnp.array([2]))) == pytest.approx(
        30 / 3, rel=1e-3)
    np.testing.assert_allclose(masbir.discriminator_loss(jnp.zeros((2, 4, 4)), jnp.array([0, 3])),
                               np.log(4), rtol=1e-6)


def test_orthogonality_and_clip_loss():
    table = jnp.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.0, 0.0]])
    # summed over d, averaged over the 4 rows: (1 + 0 + 0.5 + 0) / 4
    np.testing.assert_allclose(masbir.orthogonality_loss(jnp.array([[1.0, 0.0]]), table), 1.5 / 4)
    centres = jnp.array([[1.0, 0.0], [0.0, 1.0]])  # two rows: (1.5 + 1.5) / 8
    np.testing.assert_allclose(masbir.orthogonality_loss(centres, table), 3.0 / 8)
    z, s = jnp.eye(2), 2.0
    arange = masbir.clip_loss(z, z, jnp.array([0, 0]), s)
    np.testing.assert_allclose(arange, np.log1p(np.exp(-s)), rtol=1e-5)
    p = np.exp(s) / (np.exp(s) + 1)  # same class: both captions are positives (targets 1/2)
    aware = masbir.clip_loss(z, z, jnp.array([0, 0]), s, class_aware=True)
    np.testing.assert_allclose(aware, -0.5 * np.log(p) - 0.5 * np.log(1 - p), rtol=1e-5)
    np.testing.assert_allclose(masbir.clip_loss(z, z, jnp.array([0, 1]), s, class_aware=True),
                               arange, rtol=1e-6)


def test_loss_terms_and_weighted_total():
    rng = np.random.default_rng(0)
    z_img = masbir.l2_normalize(jnp.asarray(rng.normal(size=(4, 8)), jnp.float32))
    z_txt = masbir.l2_normalize(jnp.asarray(rng.normal(size=(4, 8)), jnp.float32))
    mod_img, mod_txt, labels = jnp.array([0, 1, 0, 1]), jnp.array([3, 2, 3, 2]), jnp.arange(4)
    terms = masbir.loss_terms(z_img, z_txt, jnp.zeros((4, 8)), mod_img, mod_txt, labels,
                              lambda v: jnp.zeros(v.shape[:-1] + (4,)), scale=14.3)
    cos = jnp.sum(z_img * z_txt, -1)  # a zero table: s = z, so rec = 2 (1 - cos(z_img, z_txt))
    np.testing.assert_allclose(terms["rec"], 2 * jnp.mean(1 - cos), rtol=1e-5)
    np.testing.assert_allclose(terms["disc"], np.log(4), rtol=1e-6)
    assert float(terms["orth"]) == 0.0
    weights = dict(defaults_masbir.base().loss.weights)
    assert sum(weights.values()) == pytest.approx(1.22)
    t = {"clip": 2.0, "sem": 1.0, "disc": 3.0, "rec": 5.0, "orth": 7.0}
    expected = (2.0 + 0.1 * 1.0 + 0.1 * 3.0 + 0.02 * 5.0) / 1.22
    assert masbir.weighted_total(t, weights) == pytest.approx(expected)


# ------------------------------------------------------------------ model
def test_registered_with_converted_queries():
    m = registry.get("masbir")
    assert m.embed_modalities == ("sketch", "photo", "converted")
    assert m.train_inputs == "image_text" and m.load_pretrained is masbir.load_pretrained


@pytest.mark.slow
def test_converted_embedding():
    _, module, params = tiny_model()
    images = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    raw = masbir.embed(module, params, images, "sketch")
    conv = masbir.embed(module, params, images, "converted")
    m = params["modality"]
    want = (raw - m[masbir.SKETCH] + m[masbir.PHOTO])
    want = want / jnp.linalg.norm(want, axis=-1, keepdims=True)
    np.testing.assert_allclose(conv, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(jnp.linalg.norm(conv, axis=-1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(raw, masbir.embed(module, params, images, "photo"))


def test_from_scratch_init_follows_the_reference_stds():
    _, module, params = tiny_model()
    tower = params["clip"]["vision_model"]["layers_0"]
    width, depth = 16, 2 ** -0.5  # one layer: (2 L)^-1/2
    for leaf, std in ((tower["self_attn"]["q_proj"]["kernel"], width ** -0.5 * depth),
                      (tower["self_attn"]["out_proj"]["kernel"], width ** -0.5),
                      (tower["mlp"]["fc1"]["kernel"], (2 * width) ** -0.5),
                      (tower["mlp"]["fc2"]["kernel"], width ** -0.5 * depth)):
        assert float(jnp.std(leaf)) == pytest.approx(std, rel=0.2)
    np.testing.assert_array_equal(tower["layer_norm1"]["scale"], 1.0)
    np.testing.assert_array_equal(tower["mlp"]["fc1"]["bias"], 0.0)


@pytest.mark.slow
def test_load_pretrained_fills_the_clip_subtree():
    c = tiny_config(image_size=32)
    c.model.pretrained = FIXTURE  # the snapshot's config.json fixes the architecture
    module = masbir.build(c.model)
    params = init(module, 32)
    loaded = masbir.load_pretrained(params, c.model)
    _, weights = clip_weights.load_pretrained(FIXTURE)
    jax.tree.map(np.testing.assert_array_equal, loaded["clip"], weights)
    assert loaded["modality"] is params["modality"]
    c.model.pretrained = ""
    assert masbir.load_pretrained(params, c.model) is params
    c.model.pretrained, c.data.image.size = FIXTURE, 64
    with pytest.raises(ValueError, match="32 px"):
        masbir.build(c.model)


def multipliers(params, groups) -> dict:
    labels = optim.param_path_labels(params, groups)
    flat = traverse_util.flatten_dict(labels, sep="/")
    return {k: 1.0 if v == "default" else groups[int(v)][1] for k, v in flat.items()}


@pytest.mark.parametrize("mode", ["code", "frozen", "layernorm_only"])
def test_clip_groups(mode):
    _, _, params = tiny_model()
    mult = multipliers(params, defaults_masbir.clip_groups(mode))
    new = {k: v for k, v in mult.items() if not k.startswith("clip/")}
    assert set(new) == {"modality", "discriminator/kernel", "discriminator/bias"}
    assert all(v == 1.0 for v in new.values())  # the base lr, 5e-3
    clip = {k: v for k, v in mult.items() if k.startswith("clip/")}
    norms = {k for k in clip if "layer_norm" in k or "layernorm" in k}
    # scale and bias of: 2 per block (1 block per tower), pre/post (vision), final (text)
    assert len(norms) == 2 * (2 + 2 + 2 + 1)
    assert clip["clip/logit_scale"] == 0.0     # the scale is fixed: never trained
    others = set(clip) - norms - {"clip/logit_scale"}
    if mode == "code":
        assert {clip[k] for k in others | norms} == {1e-5}
    elif mode == "frozen":
        assert set(clip.values()) == {0.0}
    else:
        assert {clip[k] for k in norms} == {defaults_masbir.LAYERNORM_MULTIPLIER}
        assert {clip[k] for k in others} == {0.0}


@pytest.mark.slow
def test_one_jitted_train_step_is_finite_and_keeps_frozen_weights():
    _, module, params = tiny_model()
    c = tiny_config()
    c.optim.groups = defaults_masbir.clip_groups("frozen")
    tx = optim.make_optimizer(c.optim, 10, params)
    step = jax.jit(functools.partial(steps.train_step, method=registry.get("masbir"), module=module,
                                     tx=tx, config=c))
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 63, (8, 8)).astype(np.int32)
    ids[:, -1] = 63
    batch = {"image": rng.integers(0, 256, (8, 16, 16, 3), dtype=np.uint8),
             "modality": np.array([0, 1] * 4, np.int32),
             "text_modality": np.array([3, 2] * 4, np.int32),
             "label": np.array([0, 0, 1, 1, 2, 2, 3, 3], np.int32), "input_ids": ids,
             "attention_mask": np.ones((8, 8), np.int32)}
    state, metrics = step(state_lib.create(params, tx), batch, jax.random.key(0))
    state, metrics = step(state, batch, jax.random.key(0))  # after warmup's zero-lr first step
    assert all(np.isfinite(float(v)) for v in metrics.values()), metrics
    jax.tree.map(np.testing.assert_array_equal, state.params["clip"], params["clip"])
    assert not np.allclose(state.params["modality"], params["modality"])


# ------------------------------------------------------------------ data
def fake_split(category_names, sketch_cat, photo_cat, sketch_photo=None):
    rng = np.random.default_rng(0)
    img = lambda: {"image": rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)}
    s = len(sketch_cat)
    return splits.RetrievalSplit(
        name="fake", sketches=[img() for _ in sketch_cat], photos=[img() for _ in photo_cat],
        sketch_photo=np.full(s, -1) if sketch_photo is None else np.asarray(sketch_photo),
        sketch_category=np.asarray(sketch_cat), sketch_user=np.full(s, -1),
        photo_category=np.asarray(photo_cat), photo_ids=np.array([f"p{j}" for j in photo_cat]),
        category_names=tuple(category_names))


def test_caption_examples():
    split = fake_split(["hot_air balloon", "cup"], [1, 0, 1], [0, 1])
    text = ml_collections.ConfigDict(TEXT)
    ex = captions.ImageTextExamples(
        split, ml_collections.ConfigDict({"size": 16, "center_crop": False}),
        ml_collections.ConfigDict({"flip_prob": 0.5, "crop_scale_min": 0.9}), text)
    assert len(ex) == 5
    tok = bpe_vocab.tokenizer_for(
        [t for m in ("photo", "sketch") for t in captions.captions(split.category_names,
                                                                    TEXT["templates"])[m]], 600)
    rng = np.random.default_rng(0)
    want = [(1, 2, 1, "a sketch of a cup."), (1, 2, 0, "a sketch of a hot air balloon."),
            (1, 2, 1, "a sketch of a cup."), (0, 3, 0, "a photo of a hot air balloon."),
            (0, 3, 1, "a photo of a cup.")]  # sketches first, then photos
    for i, (modality, text_modality, label, caption) in enumerate(want):
        e = ex(i, rng)
        assert e["image"].shape == (16, 16, 3) and e["image"].dtype == np.uint8
        assert (int(e["modality"]), int(e["text_modality"]), int(e["label"])) == (
            modality, text_modality, label)
        assert e["input_ids"].shape == e["attention_mask"].shape == (16,)
        assert e["input_ids"].dtype == np.int32
        n = int(e["attention_mask"].sum())
        assert tok.decode(e["input_ids"][1:n - 1]) == caption.replace(".", " .")  # CLIP's decode
        assert e["input_ids"][n - 1] == 599 and np.all(e["input_ids"][n:] == 599)


def test_bpe_vocabulary_round_trip():
    names = [synthetic.category_name(b, p) for b, p in synthetic.all_category_words()]
    texts = [t.format(n) for n in names for t in TEXT["templates"].values()]
    vocab, merges = bpe_vocab.build(texts, 600)
    assert len(vocab) == 600 and vocab["<|endoftext|>"] == 599 and vocab["<|startoftext|>"] == 598
    assert (vocab, merges) == bpe_vocab.build(list(reversed(texts)), 600)  # deterministic
    tok = bpe_vocab.tokenizer_for(texts, 600)
    assert len(tok) == 600 and tok.eos_token_id == 599
    for text in texts:
        ids = tok(text)["input_ids"]
        assert ids[0] == 598 and ids[-1] == 599
        assert len(ids) == len(text.replace(".", " .").split()) + 2  # one token per word
        assert tok.decode(ids[1:-1]) == text.replace(".", " .")  # CLIP decodes words apart
    with pytest.raises(ValueError, match="vocab_size"):
        bpe_vocab.build(texts, 520)


def test_holdout_by_class_deterministic_disjoint():
    cats = np.repeat(np.arange(3), [10, 20, 1])
    split = fake_split(["a", "b", "c"], cats, cats)
    train, val = splits.holdout(split, 0.2, seed=0)
    again, _ = splits.holdout(split, 0.2, seed=0)
    np.testing.assert_array_equal(train.sketches.indices, again.sketches.indices)
    assert not np.array_equal(splits.holdout(split, 0.2, seed=1)[1].photos.indices,
                              val.photos.indices)
    for part in ("sketches", "photos"):
        a, b = getattr(train, part).indices, getattr(val, part).indices
        assert not set(a) & set(b) and sorted(set(a) | set(b)) == list(range(31))
    np.testing.assert_array_equal(np.bincount(val.photo_category, minlength=3), [2, 4, 0])
    np.testing.assert_array_equal(np.bincount(val.sketch_category, minlength=3), [2, 4, 0])
    assert val.photos[0] is split.photos[int(val.photos.indices[0])]


def test_holdout_keeps_pairs_together():
    photo_cat = np.repeat([0, 1], 5)
    sketch_photo = np.repeat(np.arange(10), 2)  # two sketches per photo
    split = fake_split(["a", "b"], photo_cat[sketch_photo], photo_cat, sketch_photo)
    for part in splits.holdout(split, 0.4, seed=3):
        assert np.all(part.sketch_photo >= 0)
        original = part.photos.indices[part.sketch_photo]  # the link, re-indexed, is the same photo
        np.testing.assert_array_equal(original, sketch_photo[part.sketches.indices])
    assert splits.holdout(split, 0.4, seed=3)[1].num_photos == 4
