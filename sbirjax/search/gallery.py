"""The photos an index holds: a folder of image files, or a TFDS photo split of the run's dataset.

A gallery item is (path, key, load): `key` names the exact file version (path, size, mtime), so a
rerun reuses an embedding only while its file is unchanged; `load()` -> (uint8 (H, W, 3), info)
or raises. TFDS items are named tfds:<builder full name>/<split>/<index>.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import numpy as np
import PIL.Image
import PIL.ImageOps

PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
TFDS_PREFIX = "tfds:"


@dataclasses.dataclass(frozen=True)
class Item:
    path: str
    key: str
    load: Callable[[], tuple[np.ndarray, dict]]


def read_photo(path: str) -> tuple[np.ndarray, dict]:
    """uint8 RGB (H, W, 3) as a viewer shows it (EXIF orientation applied; transparency on white),
    and {width, height, bytes}."""
    with PIL.Image.open(path) as im:
        im.load()  # decode now: a truncated file fails here, not later
        im = PIL.ImageOps.exif_transpose(im)
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            im = im.convert("RGBA")
            im = PIL.Image.alpha_composite(PIL.Image.new("RGBA", im.size, (255,) * 4), im)
        image = np.asarray(im.convert("RGB"))
    return image, {"width": int(image.shape[1]), "height": int(image.shape[0]),
                   "bytes": os.path.getsize(path)}


def folder_items(folder: str) -> list[Item]:
    """Every photo under `folder` (recursive), by sorted absolute path."""
    folder = os.path.abspath(folder)
    paths = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        paths.extend(os.path.join(root, f) for f in files
                     if os.path.splitext(f)[1].lower() in PHOTO_EXTENSIONS)
    items = []
    for path in sorted(paths):
        st = os.stat(path)
        items.append(Item(path, f"{path}|{st.st_size}|{st.st_mtime_ns}",
                          lambda p=path: read_photo(p)))
    return items


def split_items(data_config, split: str, log=print) -> list[Item]:
    """Every photo of the TFDS photo split `split` of the run's dataset (built first if needed)."""
    from sbirjax.data import tfds_io
    _, photos = tfds_io.prepared_builders(data_config, log=log)
    if split not in photos.info.splits:
        raise ValueError(f"split {split!r} not in {photos.info.full_name}; it has "
                         f"{sorted(photos.info.splits)}")
    source = photos.as_data_source(split=split)
    prefix = f"{TFDS_PREFIX}{photos.info.full_name}/{split}/"

    def load(i):
        record = source[i]
        image = np.asarray(record["image"])
        if image.ndim == 2 or image.shape[2] == 1:
            image = np.repeat(image.reshape(image.shape[0], image.shape[1], 1), 3, axis=2)
        pid = record.get("photo_id", b"")
        return image[:, :, :3], {"width": int(image.shape[1]), "height": int(image.shape[0]),
                                 "bytes": None,
                                 "photo_id": pid.decode() if isinstance(pid, bytes) else str(pid)}

    return [Item(prefix + str(i), prefix + str(i), lambda i=i: load(i)) for i in range(len(source))]


def display_images(paths, data_config=None) -> list[np.ndarray]:
    """The photos of manifest rows, for a results grid; each TFDS split is opened once."""
    splits, out = {}, []
    for path in paths:
        if path.startswith(TFDS_PREFIX):
            _, split, index = path[len(TFDS_PREFIX):].rsplit("/", 2)
            if split not in splits:
                splits[split] = split_items(data_config, split, log=lambda *_: None)
            out.append(splits[split][int(index)].load()[0])
        else:
            out.append(read_photo(path)[0])
    return out
