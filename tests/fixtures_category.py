"""Miniature Sketchy, TU-Berlin and QuickDraw-extended copies in the exact released layouts.

  Sketchy    <root>/Sketchy/sketch/tx_000000000000/<class>/<photoid>-<n>.png
             <root>/Sketchy/photo/tx_000000000000/<class>/<photoid>.jpg
             <root>/Sketchy/extended_photo/<class>/*.jpg        (the originals plus ext_<k>.jpg)
  TU-Berlin  <root>/TU-Berlin/png/<class with spaces>/<id>.png
             <root>/TU-Berlin/ImageResized/<photo folder as released>/*.JPEG
  QuickDraw  <root>/QuickDraw/QuickDraw_sketches_final/<class>/<key_id>.png
             <root>/QuickDraw/QuickDraw_images_final/<class>/*.jpg

A few classes each (at least two unseen classes of every zero-shot list and a few seen ones) with
the awkward cases of the real releases: 'hot-air_balloon' in one tree and 'hot_air_balloon' in
another, 'jack-o-lantern' against 'jack_o_lantern', TU-Berlin's misspelt photo folders, '.JPEG'
next to '.jpg', sketches saved as grayscale, bilevel, palette, RGB and RGBA PNGs. Images are tiny
(16 x 16 by default). Each writer returns what it wrote, with the pixels every stored image must
decode to (uint8 (H, W, 3)), so tests can check every built record against its source.
"""
from __future__ import annotations

import dataclasses
import os
import zlib

import numpy as np
import PIL.Image

from tfds_builders.class_lists import normalise_class

SIZE = 16

# Sketchy: folder name in sketch/ -> (originals, sketches of each original, ext_<k>.jpg photos)
SKETCHY = {
    # split-1 unseen
    "airplane": (3, (1, 2, 1), 2), "teddy_bear": (2, (2, 1), 2),
    # split-2 unseen (scissors is unseen in both splits)
    "bat": (2, (2, 2), 2), "cabin": (3, (1, 1, 2), 2), "scissors": (2, (1, 2), 2),
    # seen in both splits
    "hot-air_balloon": (2, (2, 1), 2), "jack-o-lantern": (2, (1, 2), 2), "dog": (3, (2, 1, 2), 2),
}
SKETCHY_PHOTO_FOLDER = {"hot-air_balloon": "hot_air_balloon"}          # photo/tx_000000000000
SKETCHY_EXTENDED_FOLDER = {"jack-o-lantern": "jack_o_lantern"}         # extended_photo
# (the last ext_<k> photo of every class is written as .JPEG)

# TU-Berlin: sketch folder (png/) -> (photo folder as released, sketches, photos)
TUBERLIN = {
    # standard-list unseen (rollerblades is unseen in both lists)
    "trombone": ("tromobone", 3, 3), "space shuttle": ("spacesshuttle", 2, 2),
    "hot air balloon": ("hotairballoon", 2, 3), "t-shirt": ("tshirt", 3, 2),
    "rollerblades": ("rollerblades", 2, 2),
    # MA-SBIR-list unseen
    "door handle": ("doorhandle", 2, 3), "swan": ("swan", 3, 2),
    # seen in both lists
    "giraffe": ("griaffe", 3, 4), "flying bird": ("flyingbird", 2, 3),
    "airplane": ("airplane", 4, 5),
}

# QuickDraw: folder name (both trees) -> (sketches, photos)
QUICKDRAW = {
    "bat": (3, 2), "palm tree": (2, 3), "fire_hydrant": (2, 2),                  # unseen
    "airplane": (4, 5), "hot-air_balloon": (2, 3), "wine bottle": (3, 2), "sea_turtle": (2, 4),
}

SKETCH_MODES = ("L", "RGB", "1", "RGBA", "P")      # cycled over the sketch files


@dataclasses.dataclass
class Item:
    category: str            # normalised class name
    path: str
    pixels: np.ndarray | None  # uint8 (H, W, 3) the stored image must decode to (or None)
    photo_id: str = ""       # sketches: the linked photo ('' when none)
    user: int = -1


@dataclasses.dataclass
class Written:
    root: str                # the folder to give as manual_dir
    sketches: dict           # sketch_id -> Item
    photos: dict             # photo_id -> Item (the photos of the ZS / DSH / GZS splits)
    originals: dict = dataclasses.field(default_factory=dict)   # Sketchy: photo/tx_ photos

    def classes(self, what: str = "sketches") -> set:
        return {item.category for item in getattr(self, what).values()}


def _rgb(rng, size) -> np.ndarray:
    return rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)


def write_photo(path: str, rng, size: int = SIZE) -> np.ndarray:
    """A JPEG photo; returns the pixels PIL decodes from the file (what the builder stores)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    PIL.Image.fromarray(_rgb(rng, size)).save(path, format="JPEG", quality=90)
    with PIL.Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def write_sketch(path: str, rng, mode: str, size: int = SIZE) -> np.ndarray:
    """A PNG sketch in `mode`; returns the RGB pixels it must come out as."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    ink = rng.random((size, size)) < 0.3
    gray = np.where(ink, rng.integers(0, 100, (size, size)), 255).astype(np.uint8)
    if mode == "L":
        PIL.Image.fromarray(gray, "L").save(path, compress_level=1)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode == "1":
        PIL.Image.fromarray(~ink).convert("1").save(path, compress_level=1)
        return np.repeat(np.where(ink, 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)
    if mode == "RGB":
        rgb = np.repeat(gray[:, :, None], 3, axis=2)
        rgb[ink, 0] = 200                                   # some red ink
        PIL.Image.fromarray(rgb, "RGB").save(path, compress_level=1)
        return rgb
    if mode == "RGBA":                                      # transparent paper, opaque ink
        rgba = np.zeros((size, size, 4), np.uint8)
        rgba[..., :3] = rng.integers(0, 256, (size, size, 3))    # colour under transparency
        rgba[ink, :3] = np.array([10, 20, 30], np.uint8)
        rgba[..., 3] = np.where(ink, 255, 0)
        PIL.Image.fromarray(rgba, "RGBA").save(path, compress_level=1)
        return np.where(ink[:, :, None], np.array([10, 20, 30], np.uint8), 255).astype(np.uint8)
    if mode == "P":
        palette = [255, 255, 255, 0, 0, 0, 0, 0, 255]          # white, black, blue
        idx = np.where(ink, rng.integers(1, 3, (size, size)), 0).astype(np.uint8)
        im = PIL.Image.fromarray(idx, "P")
        im.putpalette(palette + [0] * (768 - len(palette)))
        im.save(path, compress_level=1)
        return np.asarray(palette, np.uint8).reshape(-1, 3)[idx]
    raise ValueError(mode)


def _pick(spec: dict, classes) -> dict:
    return spec if classes is None else {k: v for k, v in spec.items() if k in classes}


def scaled_spec(name: str, n_classes: int = 20, per_class: int = 50) -> dict:
    """A larger spec for `name`: `n_classes` classes (unseen ones of every list first), about
    `per_class` sketches and `per_class` photos each."""
    from tfds_builders import class_lists as cl
    lists = {"sketchy": (cl.SKETCHY_CLASSES, (cl.SKETCHY_ZS2_UNSEEN, cl.SKETCHY_ZS1_UNSEEN)),
             "tuberlin": (cl.TUBERLIN_CLASSES, (cl.TUBERLIN_ZS_UNSEEN, cl.TUBERLIN_MASBIR_UNSEEN)),
             "quickdraw": (cl.QUICKDRAW_CLASSES, (cl.QUICKDRAW_UNSEEN,))}[name]
    all_classes, unseen = lists
    chosen = []
    for lst in unseen:
        chosen += [c for c in lst if c not in chosen][:max(2, n_classes // 4)]
    everything_unseen = set().union(*map(set, unseen))
    chosen += [c for c in all_classes if c not in everything_unseen][:n_classes - len(chosen)]
    chosen = chosen[:n_classes]
    if name == "sketchy":
        n_orig = max(1, per_class // 5)
        return {c.replace(" ", "_"): (n_orig, (5,), per_class - n_orig) for c in chosen}
    if name == "tuberlin":
        return {c: (cl.tuberlin_photo_folder(c), per_class, per_class) for c in chosen}
    return {c: (per_class, per_class) for c in chosen}


def write_sketchy(tmp: str, classes=None, size: int = SIZE, spec: dict | None = None,
                  keep_pixels: bool = True) -> Written:
    """Sketchy in its released layout (`spec` as SKETCHY, by default SKETCHY itself)."""
    rng = np.random.default_rng(0)
    keep = (lambda a: a) if keep_pixels else (lambda a: None)
    root = os.path.join(tmp, "Sketchy")
    sketches, photos, originals, k = {}, {}, {}, 0
    for folder, (n_orig, per_photo, n_ext) in _pick(spec or SKETCHY, classes).items():
        cls = normalise_class(folder)
        for i in range(n_orig):
            photo = f"n0{zlib.crc32(folder.encode()) % 10**7:07d}_{100 + i}"
            orig = os.path.join(root, "photo", "tx_000000000000",
                                SKETCHY_PHOTO_FOLDER.get(folder, folder), photo + ".jpg")
            pixels = write_photo(orig, rng, size)
            originals[f"{cls}/{photo}"] = Item(cls, orig, keep(pixels))
            ext = os.path.join(root, "extended_photo", SKETCHY_EXTENDED_FOLDER.get(folder, folder),
                               photo + ".jpg")
            os.makedirs(os.path.dirname(ext), exist_ok=True)
            with open(orig, "rb") as f_in, open(ext, "wb") as f_out:
                f_out.write(f_in.read())
            photos[f"{cls}/{photo}"] = Item(cls, ext, keep(pixels))
            for n in range(1, per_photo[i % len(per_photo)] + 1):
                path = os.path.join(root, "sketch", "tx_000000000000", folder, f"{photo}-{n}.png")
                pixels = write_sketch(path, rng, SKETCH_MODES[k % len(SKETCH_MODES)], size)
                k += 1
                sketches[f"{cls}/{photo}-{n}"] = Item(cls, path, keep(pixels), f"{cls}/{photo}", n)
        for j in range(1, n_ext + 1):
            ext_name = f"ext_{j}" + (".JPEG" if j == n_ext else ".jpg")
            path = os.path.join(root, "extended_photo", SKETCHY_EXTENDED_FOLDER.get(folder, folder),
                                ext_name)
            photos[f"{cls}/ext_{j}"] = Item(cls, path, keep(write_photo(path, rng, size)))
    return Written(root, sketches, photos, originals)


def write_tuberlin(tmp: str, classes=None, size: int = SIZE, spec: dict | None = None,
                   keep_pixels: bool = True) -> Written:
    """TU-Berlin in its released layout, photo folders misspelt as in ImageResized/."""
    rng = np.random.default_rng(1)
    keep = (lambda a: a) if keep_pixels else (lambda a: None)
    root = os.path.join(tmp, "TU-Berlin")
    sketches, photos, sid = {}, {}, 1
    for folder, (photo_folder, n_sk, n_ph) in _pick(spec or TUBERLIN, classes).items():
        cls = normalise_class(folder)
        for _ in range(n_sk):
            path = os.path.join(root, "png", folder, f"{sid}.png")
            pixels = write_sketch(path, rng, SKETCH_MODES[sid % 3], size)   # L, RGB, 1
            sketches[f"{cls}/{sid}"] = Item(cls, path, keep(pixels))
            sid += 1
        for j in range(n_ph):
            name = f"n0{4000000 + 17 * j}_{j}"
            ext = ".jpg" if j == 1 else ".JPEG"
            path = os.path.join(root, "ImageResized", photo_folder, name + ext)
            photos[f"{cls}/{name}"] = Item(cls, path, keep(write_photo(path, rng, size)))
    return Written(root, sketches, photos)


def write_quickdraw(tmp: str, classes=None, size: int = SIZE, spec: dict | None = None,
                    keep_pixels: bool = True) -> Written:
    """QuickDraw-extended in its released layout."""
    rng = np.random.default_rng(2)
    keep = (lambda a: a) if keep_pixels else (lambda a: None)
    root = os.path.join(tmp, "QuickDraw")
    sketches, photos, key = {}, {}, 4503599627370496
    for folder, (n_sk, n_ph) in _pick(spec or QUICKDRAW, classes).items():
        cls = normalise_class(folder)
        for i in range(n_sk):
            key += 7919
            path = os.path.join(root, "QuickDraw_sketches_final", folder, f"{key}.png")
            pixels = write_sketch(path, rng, "L" if i % 2 else "RGB", size)
            sketches[f"{cls}/{key}"] = Item(cls, path, keep(pixels))
        for j in range(n_ph):
            name = f"{folder.replace(' ', '_')}_{j:04d}"
            path = os.path.join(root, "QuickDraw_images_final", folder, name + ".jpg")
            photos[f"{cls}/{name}"] = Item(cls, path, keep(write_photo(path, rng, size)))
    return Written(root, sketches, photos)


WRITERS = {"sketchy": write_sketchy, "tuberlin": write_tuberlin, "quickdraw": write_quickdraw}


def truncate(path: str, keep: float = 0.5) -> None:
    """Cut a file to `keep` of its length (a broken download)."""
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[:max(1, int(len(data) * keep))])
