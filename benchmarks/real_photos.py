"""The real photos that ship inside scikit-image, and one recipe to turn them into model inputs.

Used by the EfficientNet parity fixture (tests/fixtures/make_efficientnet_fixture.py, run with
torch), by its tests, and by benchmarks/photo_retrieval.py. Needs numpy, Pillow and scikit-image
only (no jax), so the fixture script can import it.

Recipe: the photo as RGB uint8 (grey photos repeated over three channels, transparent ones laid
on white), the largest centred square, resized with Pillow's bilinear filter.

GROUPS sorts the photos into a few categories by hand, for a category-level retrieval check.
Photos alone in their group (a cat, a coffee cup, ...) are only distractors.
"""
from __future__ import annotations

import numpy as np
import skimage.data
from PIL import Image

GROUPS = {
    "people": ("astronaut", "camera"),
    "textures": ("brick", "grass", "gravel"),
    "microscopy_and_retina": ("cell", "immunohistochemistry", "retina", "microaneurysms"),
    "text_pages": ("page", "text"),
    "astronomy": ("hubble_deep_field", "moon"),
    "vehicles": ("motorcycle", "rocket"),
    "graphics": ("colorwheel", "checkerboard_rgb", "shepp_logan_phantom", "logo"),
    "cat": ("chelsea",),
    "coffee": ("coffee",),
    "clock": ("clock",),
    "coins": ("coins",),
    "horse_silhouette": ("horse",),
}

# ImageNet class ids the photos unambiguously show (the official 1000-class order).
IMAGENET_TOP1 = {
    "chelsea": {281: "tabby cat", 282: "tiger cat", 285: "Egyptian cat"},
    "coffee": {967: "espresso"},
    "motorcycle": {665: "moped", 670: "motor scooter"},  # ImageNet has no 'motorcycle'
}


def _load(name: str) -> np.ndarray:
    if name == "motorcycle":
        return skimage.data.stereo_motorcycle()[0]  # the left view
    if name == "checkerboard_rgb":
        return np.repeat(skimage.data.checkerboard()[..., None], 3, axis=-1)
    image = getattr(skimage.data, name)()
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    elif image.dtype != np.uint8:  # floats in [0, 1]
        image = np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)
    return image


def rgb(name: str) -> np.ndarray:
    """The photo as (H, W, 3) uint8."""
    image = _load(name)
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=-1)
    if image.shape[-1] == 4:  # composite on white
        alpha = image[..., 3:].astype(np.float32) / 255.0
        image = np.round(image[..., :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return image


def square(image: np.ndarray, size: int) -> np.ndarray:
    """The largest centred square of `image`, resized to (size, size) (Pillow bilinear)."""
    h, w = image.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    crop = Image.fromarray(image[top:top + s, left:left + s])
    return np.asarray(crop.resize((size, size), Image.BILINEAR))


def batch(names, size: int) -> np.ndarray:
    """(N, size, size, 3) uint8 model inputs for the named photos."""
    return np.stack([square(rgb(n), size) for n in names])
