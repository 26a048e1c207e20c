"""The Flax CLIP against Hugging Face's PyTorch CLIPModel, through the committed fixture.

tests/fixtures/clip_tiny/ was written by tests/fixtures/make_clip_fixture.py (torch, run
separately); these tests need neither torch nor a network.
"""
import functools
import json
import os
import shutil

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import save_file

from sbirjax.data import clip_tokenizer
from sbirjax.nets import clip_weights
from sbirjax.nets.clip import CLIP, ClipConfig, PatchEmbedding, eos_positions

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "clip_tiny")
OUTPUTS = ("image_embeds", "text_embeds", "logits_per_image")
FLOAT32_TOL = 1e-5


@pytest.fixture(scope="module")
def expected():
    return dict(np.load(os.path.join(FIXTURE, "expected.npz")))


@pytest.fixture(scope="module")
def pretrained():
    return clip_weights.load_pretrained(FIXTURE)


@functools.cache
def _forward(config, dtype):
    model = CLIP(config, dtype=dtype)
    return jax.jit(lambda params, *args: model.apply({"params": params}, *args))


def run(config, params, expected, dtype=jnp.float32):
    pixels = expected["pixel_values_nchw"].transpose(0, 2, 3, 1)  # HF is NCHW, Flax NHWC
    out = _forward(config, dtype)(params, pixels, expected["input_ids"], expected["attention_mask"])
    return {k: np.asarray(v) for k, v in out._asdict().items()}


def max_diffs(out, expected):
    return {k: float(np.abs(out[k] - expected[k]).max()) for k in OUTPUTS}


def test_float32_matches_pytorch(pretrained, expected):
    config, params = pretrained
    assert all(leaf.dtype == np.float32 for leaf in jax.tree.leaves(params))
    diffs = max_diffs(run(config, params, expected), expected)
    assert all(d <= FLOAT32_TOL for d in diffs.values()), diffs


@pytest.mark.parametrize("variant, tol", [("fp16", (3e-3, 3e-2)), ("bf16", (2e-2, 0.3))])
def test_half_precision_files_load(variant, tol, pretrained, expected):
    """Same weights stored in 16 bits: loads as float32, outputs within the storage precision."""
    config, params16 = clip_weights.load_pretrained(FIXTURE, variant=variant)
    assert config == pretrained[0]
    assert all(leaf.dtype == np.float32 for leaf in jax.tree.leaves(params16))
    diffs = max_diffs(run(config, params16, expected), expected)
    embed_tol, logit_tol = tol
    assert diffs["image_embeds"] <= embed_tol and diffs["text_embeds"] <= embed_tol, diffs
    assert diffs["logits_per_image"] <= logit_tol, diffs
    assert diffs["image_embeds"] > 0  # really the rounded copy


def test_bfloat16_compute_stays_close(pretrained, expected):
    config, params = pretrained
    out = run(config, params, expected, dtype=jnp.bfloat16)
    assert all(out[k].dtype == np.float32 for k in OUTPUTS)
    diffs = max_diffs(out, expected)
    assert diffs["image_embeds"] <= 2e-2 and diffs["text_embeds"] <= 2e-2, diffs
    assert diffs["logits_per_image"] <= 0.3, diffs


def test_eos_positions():
    """HF pools at the first EOS; legacy configs (eos_token_id == 2) at the largest id, which is the
    same place with CLIP's vocabulary (EOS is its last token) and with the fixture's."""
    ids = jnp.array([[9, 5, 7, 3, 3], [9, 3, 8, 3, 3]])  # 3 = EOS, also the padding
    np.testing.assert_array_equal(eos_positions(ids, 3), [3, 1])  # first EOS
    np.testing.assert_array_equal(eos_positions(ids, 2), [0, 0])  # legacy: largest id


def test_tokenizer_matches_reference(expected):
    tokenizer = clip_tokenizer.load_tokenizer(FIXTURE)
    ids, mask = clip_tokenizer.tokenize(tokenizer, list(expected["captions"]), max_length=16)
    assert ids.dtype == mask.dtype == np.int32
    np.testing.assert_array_equal(ids, expected["input_ids"])
    np.testing.assert_array_equal(mask, expected["attention_mask"])
    ids, mask = clip_tokenizer.tokenize(tokenizer, ["a photo of a shoe. " * 10], max_length=16)
    # cut, EOS kept
    assert ids.shape == (1, 16) and mask.all() and ids[0, -1] == tokenizer.eos_token_id


def test_tokenizer_without_vocabulary_raises(tmp_path):
    """transformers 5 builds a 2-3 token vocabulary instead of failing when the files are absent."""
    with pytest.raises(ValueError, match="vocabulary files were not read"):
        clip_tokenizer.load_tokenizer(str(tmp_path))


def _fixture_copy(tmp_path, edit):
    """The fixture's config and weights in tmp_path, the weights dict passed through `edit`."""
    shutil.copy(os.path.join(FIXTURE, "config.json"), tmp_path)
    tensors = clip_weights.read_safetensors(os.path.join(FIXTURE, "model.safetensors"))
    save_file(edit(tensors), str(tmp_path / "model.safetensors"))
    return str(tmp_path)


def test_missing_and_unexpected_keys_are_named(tmp_path):
    def edit(tensors):
        tensors.pop("vision_model.pre_layrnorm.bias")
        tensors["text_model.extra_head.weight"] = np.zeros((2, 2), np.float32)
        return tensors

    directory = _fixture_copy(tmp_path, edit)
    with pytest.raises(ValueError) as err:
        clip_weights.load_pretrained(directory)
    message = str(err.value)
    for part in ("vision_model.pre_layrnorm.bias", "text_model.extra_head.weight",
                 "model.safetensors"):
        assert part in message


def test_position_id_buffers_are_ignored_and_shapes_checked(tmp_path):
    def edit(tensors):
        tensors["text_model.embeddings.position_ids"] = np.arange(16, dtype=np.int64)[None]
        return tensors

    directory = _fixture_copy(tmp_path, edit)
    clip_weights.load_pretrained(directory)
    with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
    config["projection_dim"] = 8
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f)
    with pytest.raises(ValueError, match="text_projection.weight has shape"):
        clip_weights.load_pretrained(directory)


def test_missing_checkpoint_says_what_to_download(monkeypatch, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        clip_weights.load_pretrained(str(tmp_path / "absent"))
    shutil.copy(os.path.join(FIXTURE, "config.json"), tmp_path)
    with pytest.raises(FileNotFoundError, match="model.safetensors not found"):
        clip_weights.load_pretrained(str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("no network")

    import huggingface_hub
    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(FileNotFoundError, match="https://huggingface.co/openai/clip-vit-base-patch32"):
        clip_weights.load_pretrained("openai/clip-vit-base-patch32")


def test_config_from_hf_dict():
    """Missing keys take Hugging Face's defaults (ViT-B/32); legacy *_config_dict entries
    override."""
    config = ClipConfig.from_hf_dict({"text_config": {"eos_token_id": 2},
                                      "vision_config_dict": {"hidden_act": "gelu"}})
    assert config.text.eos_token_id == 2 and config.vision.act == "gelu"
    assert (config.vision.width, config.vision.patch_size, config.text.width,
            config.projection_dim) == (768, 32, 512, 512)
    with pytest.raises(ValueError, match="unsupported hidden_act"):
        ClipConfig.from_hf_dict({"text_config": {"hidden_act": "relu"}})
    shapes = clip_weights.param_shapes(ClipConfig.tiny())
    assert shapes[("vision_model", "patch_embedding", "kernel")] == (8, 8, 3, 32)
    assert shapes[("logit_scale",)] == ()


def test_patch_embedding_is_the_strided_convolution():
    """The matmul over patches equals flax's stride-p convolution: same kernel, same initial draw,
    same output (row-major patch grid) and same kernel gradient."""
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 12, 8, 3)), jnp.float32)
    conv = nn.Conv(5, (4, 4), strides=4, padding="VALID", use_bias=False)
    matmul = PatchEmbedding(5, 4)
    params = conv.init(jax.random.key(3), x)
    np.testing.assert_array_equal(params["params"]["kernel"],
                                  matmul.init(jax.random.key(3), x)["params"]["kernel"])
    want = conv.apply(params, x).reshape(2, -1, 5)
    np.testing.assert_allclose(matmul.apply(params, x), want, rtol=1e-5, atol=1e-6)
    w = jnp.asarray(np.random.default_rng(1).normal(size=want.shape), jnp.float32)
    grads = [jax.grad(lambda p, m=m: jnp.sum(w * m.apply(p, x).reshape(want.shape)))(params)
             for m in (conv, matmul)]
    np.testing.assert_allclose(grads[1]["params"]["kernel"], grads[0]["params"]["kernel"],
                               rtol=1e-5, atol=1e-5)
