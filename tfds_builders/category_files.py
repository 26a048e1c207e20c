"""Files of the category-level SBIR downloads: reading and checking images, finding class
folders, and the seeded per-class choices of the DSH and GZS splits (category_sbir.py builds
the datasets from these)."""
from __future__ import annotations

import dataclasses
import difflib
import io
import os
import zlib

import numpy as np
import PIL.Image

from tfds_builders import class_lists, common
from tfds_builders.class_lists import normalise_class

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")      # compared in lower case
DSH_SEED = 0
GZS_SEEN_FRACTION = 0.2
GZS_SEED = 0
JPEG_QUALITY = 95                                 # only for JPEGs that must be converted
PNG_COMPRESS_LEVEL = 1                            # converted PNGs: fast zlib, a little larger


# ------------------------------------------------------------------------------ images
def encoded_image(path: str, *, verify: bool = True) -> bytes:
    """Bytes that TFDS's Image feature decodes to uint8 (H, W, 3).

    The file's own bytes when it is an RGB or grayscale PNG/JPEG, else a converted copy (RGB, or
    8-bit grayscale when the three channels are equal). With `verify` the image is decoded
    completely first (and a PNG's chunk checksums checked); ValueError when it is not readable.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
        if verify and data.startswith(b"\x89PNG\r\n\x1a\n"):
            with PIL.Image.open(io.BytesIO(data)) as im:
                im.verify()             # chunk structure and checksums up to IEND
        with PIL.Image.open(io.BytesIO(data)) as im:
            if verify:
                im.load()
            if im.format in ("PNG", "JPEG") and im.mode in ("RGB", "L"):
                return data
            if not verify:
                im.load()
            return _convert(im)
    except (OSError, SyntaxError, ValueError, EOFError, PIL.Image.DecompressionBombError) as e:
        raise ValueError(f"not a readable image ({type(e).__name__}: {e})") from None


def _convert(im: PIL.Image.Image) -> bytes:
    """An RGB (or 8-bit grayscale) re-encoding of any PIL image; transparency composed on white."""
    fmt = "JPEG" if im.format == "JPEG" else "PNG"
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        out = PIL.Image.new("RGB", rgba.size, (255, 255, 255))
        out.paste(rgba, mask=rgba.getchannel("A"))
    elif im.mode.startswith("I") or im.mode == "F":      # 16/32-bit or float grayscale
        a = np.asarray(im).astype(np.float64)
        top = 65535.0 if a.max(initial=0) > 255 else 255.0
        out = PIL.Image.fromarray(np.clip(np.round(a * 255.0 / top), 0, 255).astype(np.uint8))
    elif im.mode in ("1", "L"):
        out = im.convert("L")
    else:
        out = im.convert("RGB")
    if out.mode == "RGB":
        rgb = np.asarray(out)
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
            out = PIL.Image.fromarray(np.ascontiguousarray(rgb[..., 0]), "L")  # same decode
    buf = io.BytesIO()
    out.save(buf, format=fmt, **({"quality": JPEG_QUALITY} if fmt == "JPEG"
                                 else {"compress_level": PNG_COMPRESS_LEVEL}))
    return buf.getvalue()


def list_images(folder: str, report=print) -> list[tuple[str, str]]:
    """Sorted (stem, path) of the image files in `folder`; a repeated stem keeps its first file."""
    files = sorted(e.name for e in os.scandir(folder)
                   if e.is_file() and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS)
    out, seen = [], {}
    for name in files:
        stem = os.path.splitext(name)[0]
        if stem in seen:
            report(f"WARNING: {os.path.join(folder, name)} has the same name as {seen[stem]}; "
                   "only the first is used")
            continue
        seen[stem] = name
        out.append((stem, os.path.join(folder, name)))
    return out


def _rng(seed: int, cls: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(cls.encode())])


def dsh_queries(cls: str, n: int, per_class: int) -> np.ndarray:
    """Sorted indices (into the class's files sorted by name) of its DSH query sketches."""
    k = min(per_class, n)
    return np.sort(_rng(DSH_SEED, cls).permutation(n)[:k])


def gzs_seen(cls: str, n: int) -> np.ndarray:
    """Sorted indices of a seen class's photos in the generalised ZS gallery."""
    k = int(np.floor(GZS_SEEN_FRACTION * n + 0.5))
    return np.sort(_rng(GZS_SEED, cls).choice(n, size=k, replace=False))


# ------------------------------------------------------------------------------ folders
def match_class_folders(parent: str, classes, *, dataset: str, what: str, log=print,
                        folder_of=None) -> dict[str, str]:
    """{class: folder path} for the class folders in `parent`.

    A folder matches a class when their normalised names are equal, when its name is the class's
    name with everything but letters and digits removed, or (with `folder_of`) when it is the
    folder name `folder_of(class)` gives. Unmatched folders are reported with the closest class
    that has no folder; two folders for one class are an error.
    """
    by_name = {normalise_class(c): c for c in classes}
    alias = {class_lists.squash(c): c for c in classes}
    if folder_of is not None:
        alias.update({folder_of(c): c for c in classes})
    found, unmatched = {}, []
    for entry in sorted(os.scandir(parent), key=lambda e: e.name):
        if not entry.is_dir() or entry.name.startswith((".", "__")):
            continue
        cls = (by_name.get(normalise_class(entry.name)) or alias.get(entry.name)
               or alias.get(class_lists.squash(entry.name)))
        if cls is None:
            unmatched.append(entry.name)
        elif cls in found:
            raise common.DatasetLayoutError(
                f"{dataset}: two {what} folders for the class {cls!r}: {found[cls]} and "
                f"{entry.path}; keep one")
        else:
            found[cls] = entry.path
    missing = [c for c in classes if c not in found]
    for name in unmatched:
        close = difflib.get_close_matches(normalise_class(name), missing, n=1, cutoff=0.5)
        hint = ""
        if close:
            expected = folder_of(close[0]) if folder_of else close[0]
            hint = (f"; the closest class without a folder is {close[0]!r} (folder expected as "
                    f"{expected!r})")
        log(f"WARNING {dataset}: {what} folder {os.path.join(parent, name)!r} matches no class"
            f"{hint}; its images are not used")
    if missing:
        log(f"WARNING {dataset}: {len(missing)} of {len(classes)} classes have no {what} folder "
            f"under {parent}: {', '.join(missing[:12])}{' ...' if len(missing) > 12 else ''}")
    return found


@dataclasses.dataclass(frozen=True)
class Split:
    """Which files of one source a split holds: whole classes, the DSH hold-out or a GZS gallery."""
    source: str                       # key of the builder's SOURCES
    classes: frozenset | None = None  # pick='all': these classes whole (None: every class)
    pick: str = "all"                 # 'all' | 'dsh_test' | 'dsh_train' | 'gzs'
    unseen: frozenset = frozenset()   # pick='gzs': classes taken whole; the others sampled


class BuildState:
    """State of one build: folders, class sizes, unreadable files, reports already made."""

    def __init__(self, dataset: str, skip_bad: bool, log=print):
        self.dataset, self.log = dataset, log
        self.bad = common.BadRecords(dataset, skip_bad, log=log)
        self.bad_paths: set[str] = set()
        self.verified: dict[tuple[str, str], int] = {}  # (source, class) -> files[:k] decoded
        self.folders: dict[str, dict[str, str]] = {}
        self.sizes: dict[str, dict[str, int]] = {}
        self.reported: set[str] = set()
        self.unlinked = 0
        self.link_class, self.link_stems = None, set()   # Sketchy: originals of one class

    def report_once(self, message: str) -> None:
        if message not in self.reported:
            self.reported.add(message)
            self.log(message)

    def image(self, path: str, verify: bool) -> bytes | None:
        if path in self.bad_paths:
            return None
        try:
            return encoded_image(path, verify=verify)
        except ValueError as e:
            self.bad_paths.add(path)
            self.bad.report(path, str(e))   # raises unless skipping
            return None
