"""Image preparation and augmentation on uint8 HWC numpy arrays (host side)."""
from __future__ import annotations

import numpy as np
import PIL.Image

from sbirjax.data import raster


def resize(image: np.ndarray, size: int) -> np.ndarray:
    if image.shape[0] == size and image.shape[1] == size:
        return image
    return np.asarray(PIL.Image.fromarray(image).resize((size, size), PIL.Image.BILINEAR))


def sketch_image(record, image_config) -> np.ndarray:
    """A sketch record (strokes or image) -> uint8 (size, size, 3)."""
    size = image_config.size
    if "strokes" in record:
        r = image_config.raster
        canvas = r.canvas
        direct = canvas % size == 0 or size % canvas == 0
        img = raster.rasterize(record["strokes"], size=size if direct else canvas, canvas=canvas,
                               line_width=r.line_width, polarity=r.polarity)
        return resize(img, size)
    return photo_image(record, image_config)


def center_square(image: np.ndarray) -> np.ndarray:
    """The centred square of side min(H, W)."""
    h, w = image.shape[:2]
    side = min(h, w)
    y, x = (h - side) // 2, (w - side) // 2
    return np.ascontiguousarray(image[y:y + side, x:x + side])


def photo_image(record, image_config) -> np.ndarray:
    """An image record -> uint8 (size, size, 3). With image_config.center_crop the centred square
    is taken first (CLIP's preprocessing: short side to size, centre crop), else the image is
    stretched to a square."""
    img = np.asarray(record["image"])
    if img.ndim == 2:
        img = img[:, :, None]
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    if image_config.center_crop:
        img = center_square(img)
    return resize(img[:, :, :3], image_config.size)


def random_resized_crop(image: np.ndarray, rng: np.random.Generator,
                        scale=(0.85, 1.0)) -> np.ndarray:
    """Crop a random square covering `scale` of the side, resized back to the input size."""
    lo, hi = scale
    if hi <= lo and lo >= 1.0:
        return image
    size = image.shape[0]
    side = max(1, int(round(size * rng.uniform(lo, hi))))
    y, x = rng.integers(0, size - side + 1, size=2)
    return resize(np.ascontiguousarray(image[y:y + side, x:x + side]), size)


def maybe_flip(image: np.ndarray, flip: bool) -> np.ndarray:
    return np.ascontiguousarray(image[:, ::-1]) if flip else image
