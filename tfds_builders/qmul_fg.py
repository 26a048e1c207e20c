"""TFDS builders for QMUL-ShoeV2 and QMUL-ChairV2 (fine-grained SBIR, SketchX release).

Read from the manual directory, exactly as released (see MANUAL_DOWNLOAD_INSTRUCTIONS):
  <Name>/<Name>_Coordinate   pickle: {'/train/<photo_id>_<k>' or '/test/<photo_id>_<k>':
                             float array (N, 3) = (x, y, pen) on a 256 canvas, pen=1 ends a stroke}
  <Name>/photo/<photo_id>.png
photo_id = '_'.join(basename.split('_')[:-1]); k is the index of the sketch of that photo (1, 2,
3, sometimes 4..70, and on ChairV2 a few crowd-worker ids). The pickle is read with a restricted
unpickler (tfds_builders/safe_pickle.py), so a tampered file cannot run code.

Configs (tfds_builders/common.py): 'sketches' and 'photos'; 'sketches_skipbad' and
'photos_skipbad' skip (and list) unreadable records instead of stopping.
Features: sketches have sketch_id (the key's basename '<photo_id>_<k>'), photo_id, category (one
class: 'shoe' or 'chair'), user (k, the style proxy; -1 when k is not a number) and strokes
(float32 (N, 3)); photos have photo_id, category and image (PNG; non-RGB files are converted).

Splits, for both configs (a photo split holds the photos its sketch split refers to):
  train, test                   every sketch of the split: the standard protocol
  train_3sketch, test_3sketch   the filtered protocol of the StyleMeUp code: only photos that have
                                sketches with k = 1, 2 and 3, and only those three sketches each
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import io
import os

import numpy as np
import PIL.Image
import tensorflow_datasets as tfds

from tfds_builders import common, safe_pickle

VERSION = tfds.core.Version("1.0.0")
SPLITS = ("train", "test", "train_3sketch", "test_3sketch")
STYLE_KS = (1, 2, 3)
RELEASE = "SketchX_Shoe_ChairV2"


def layout(folder: str) -> str:
    return (f"  {RELEASE + '/':<30}<- the manual directory may be this folder\n"
            f"    {folder + '/':<28}<- or this one\n"
            f"      {folder + '_Coordinate':<26}a pickled dict: '/train/<photo_id>_<k>' or "
            "'/test/<photo_id>_<k>' -> float array (N, 3)\n"
            f"      {'photo/<photo_id>.png':<26}the photos (PNG)")


def instructions(folder: str) -> str:
    return f"""\
QMUL-{folder} is distributed by the SketchX lab (Queen Mary University of London) in the
archive {RELEASE} (SketchX downloads page, https://sketchx.eecs.qmul.ac.uk/downloads/).
It cannot be downloaded by code: download and extract it by hand, then point the manual
directory (--manual_dir, or config.data.manual_dir) at either the extracted {RELEASE}/
folder or the {folder}/ folder inside it. Expected layout:
{layout(folder)}
"""


def resolve_root(manual_dir: str, folder: str) -> str:
    """The `<folder>/` directory inside `manual_dir`, which may be it, its parent or grandparent."""
    manual_dir = os.path.expanduser(str(manual_dir))
    candidates = (manual_dir, os.path.join(manual_dir, folder),
                  os.path.join(manual_dir, RELEASE, folder))
    root = next((c for c in candidates
                 if os.path.isfile(os.path.join(c, f"{folder}_Coordinate"))), None)
    if root is None:
        common.require(manual_dir, "manual directory", layout(folder))
        if os.path.basename(os.path.normpath(manual_dir)) == folder:
            root = manual_dir
        else:
            root = next((c for c in candidates[1:] if os.path.isdir(c)), candidates[1])
        common.require(root, f"{folder} folder", layout(folder))
    common.require(os.path.join(root, f"{folder}_Coordinate"), f"{folder} coordinate pickle",
                   layout(folder))
    common.require(os.path.join(root, "photo"), f"{folder} photo folder", layout(folder))
    return root


@dataclasses.dataclass(frozen=True)
class Sketch:
    key: str            # the pickle key, e.g. '/train/2525993170_1'
    split: str          # 'train' | 'test'
    sketch_id: str      # '<photo_id>_<k>'
    photo_id: str
    user: int           # k, or -1 when k is not a number
    strokes: np.ndarray  # float32 (N, 3)


@dataclasses.dataclass(frozen=True)
class Catalog:
    sketches: dict      # split -> list[Sketch]
    photos: dict        # split -> list[photo_id]
    photo_paths: dict   # photo_id -> path of its PNG
    skipped: tuple      # (path, reason) of every skipped record


def parse_key(key) -> tuple[str, str, str, str]:
    """'/train/<photo_id>_<k>' -> (split, basename, photo_id, k); ValueError when malformed."""
    parts = key.strip("/").split("/") if isinstance(key, str) else []
    if len(parts) != 2 or parts[0] not in ("train", "test"):
        raise ValueError("key is not '/train/<photo_id>_<k>' or '/test/<photo_id>_<k>'")
    base = parts[1]
    photo_id, k = "_".join(base.split("_")[:-1]), base.split("_")[-1]
    if not photo_id or not k:
        raise ValueError("key does not end in '<photo_id>_<k>'")
    return parts[0], base, photo_id, k


def check_strokes(value) -> np.ndarray:
    """float32 (N, 3) strokes, or ValueError saying what is wrong."""
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu":
        raise ValueError(f"expected a numeric array, got {type(value).__name__}"
                         + (f" of {value.dtype}" if isinstance(value, np.ndarray) else ""))
    if value.ndim != 2 or value.shape[1] != 3:
        raise ValueError(f"expected shape (N, 3), got {value.shape}")
    if value.shape[0] < 1:
        raise ValueError("empty stroke array (0 points)")
    if not np.all(np.isfinite(value)):
        raise ValueError(f"{int(np.sum(~np.isfinite(value)))} non-finite coordinates (NaN/inf)")
    if not np.all(np.isin(value[:, 2], (0, 1))):
        raise ValueError("pen column holds values other than 0 and 1")
    return value.astype(np.float32)


def check_photo(path: str) -> None:
    """Raise ValueError when the file is not a complete, decodable image."""
    try:
        with open(path, "rb") as f:
            data = f.read()
        with PIL.Image.open(io.BytesIO(data)) as im:
            im.verify()  # chunk structure and checksums
        with PIL.Image.open(io.BytesIO(data)) as im:
            im.load()    # full decode: catches truncated pixel data
    except (OSError, SyntaxError, ValueError, EOFError, PIL.Image.DecompressionBombError) as e:
        raise ValueError(f"not a readable image ({type(e).__name__}: {e})") from None


def photo_png(path: str) -> bytes:
    """The file's bytes when it is an RGB PNG, else the image converted to an RGB PNG."""
    with open(path, "rb") as f:
        data = f.read()
    with PIL.Image.open(io.BytesIO(data)) as im:
        if im.format == "PNG" and im.mode == "RGB":
            return data
        buf = io.BytesIO()
        im.convert("RGB").save(buf, format="PNG")
        return buf.getvalue()


def three_sketch(sketches: list) -> list:
    """Sketches k = 1, 2, 3 of the photos that have all three (the StyleMeUp code's filter)."""
    by_photo = collections.defaultdict(set)
    for s in sketches:
        if s.user in STYLE_KS:
            by_photo[s.photo_id].add(s.user)
    keep = {p for p, ks in by_photo.items() if ks.issuperset(STYLE_KS)}
    return [s for s in sketches if s.photo_id in keep and s.user in STYLE_KS]


def _photos_of(sketches: list) -> list:
    return list(dict.fromkeys(s.photo_id for s in sketches))


def _stamp(path: str) -> tuple:
    st = os.stat(path)
    return st.st_mtime_ns, st.st_size


def scan(root: str, folder: str, dataset: str, skip_bad: bool, log=print) -> Catalog:
    """Read and check everything once (both configs of one build share it)."""
    pickle_path = os.path.join(root, f"{folder}_Coordinate")
    return _scan(root, folder, dataset, skip_bad, _stamp(pickle_path), log)


@functools.lru_cache(maxsize=2)
def _scan(root, folder, dataset, skip_bad, stamp, log) -> Catalog:
    del stamp  # only part of the cache key: a rewritten pickle is read again
    pickle_path = os.path.join(root, f"{folder}_Coordinate")
    bad = common.BadRecords(dataset, skip_bad, log=log)
    coords = safe_pickle.load(pickle_path)
    if not isinstance(coords, dict):
        raise ValueError(f"{pickle_path}: expected a pickled dict of key -> (N, 3) array, got "
                         f"{type(coords).__name__}")
    sketches = {"train": [], "test": []}
    for key in sorted(coords, key=str):
        where = f"{pickle_path} [{key!r}]"
        try:
            split, base, photo_id, k = parse_key(key)
            strokes = check_strokes(coords[key])
        except ValueError as e:
            bad.report(where, str(e))
            continue
        user = int(k) if k.isascii() and k.isdigit() else -1
        sketches[split].append(Sketch(key, split, base, photo_id, user, strokes))

    photo_dir = os.path.join(root, "photo")
    photo_paths, unusable = {}, set()
    keys_of = collections.defaultdict(list)  # photo_id -> keys of its sketches
    for s in sketches["train"] + sketches["test"]:
        keys_of[s.photo_id].append(s.key)
    for photo_id, keys in keys_of.items():
        path = os.path.join(photo_dir, f"{photo_id}.png")
        try:
            if not os.path.isfile(path):
                raise ValueError(f"photo file missing, needed by {len(keys)} sketch(es): "
                                 + ", ".join(keys[:5]) + (" ..." if len(keys) > 5 else ""))
            check_photo(path)
        except ValueError as e:
            bad.report(path, str(e))
            unusable.add(photo_id)
            continue
        photo_paths[photo_id] = path
    for split in ("train", "test"):
        sketches[split] = [s for s in sketches[split] if s.photo_id not in unusable]
        sketches[f"{split}_3sketch"] = three_sketch(sketches[split])
    shared = set(_photos_of(sketches["train"])) & set(_photos_of(sketches["test"]))
    if shared:
        log(f"WARNING {dataset}: {len(shared)} photos have sketches in both train and test, "
            f"e.g. {sorted(shared)[:3]}")
    on_disk = {f[:-4] for f in os.listdir(photo_dir) if f.endswith(".png")}
    if on_disk - set(keys_of):
        log(f"{dataset}: {len(on_disk - set(keys_of))} photos in {photo_dir} have no sketch; "
            "they are not part of any split")
    bad.summary()
    return Catalog(sketches=sketches, photos={s: _photos_of(v) for s, v in sketches.items()},
                   photo_paths=photo_paths, skipped=tuple(bad.items))


class QmulFineGrained(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of the ShoeV2 / ChairV2 builders; subclasses set FOLDER, CATEGORY, EXPECTED_COUNTS."""

    FOLDER = ""
    CATEGORY = ""
    EXPECTED_COUNTS: dict = {}   # kind -> split -> documented count
    VERSION = VERSION

    def check_manual_dir(self, manual_dir: str) -> str:
        """The dataset folder inside `manual_dir`; DatasetLayoutError naming what is missing."""
        return resolve_root(manual_dir, self.FOLDER)

    def _info(self):
        kind = self.builder_config.kind
        features = (common.sketch_features([self.CATEGORY], strokes=True) if kind == "sketches"
                    else common.photo_features([self.CATEGORY]))
        return tfds.core.DatasetInfo(
            builder=self, features=features,
            description=f"QMUL-{self.FOLDER} {kind} (SketchX release {RELEASE}). Splits: train, "
                        "test (standard); train_3sketch, test_3sketch (photos with sketches "
                        "k=1,2,3 only, the StyleMeUp code's filter).")

    def _split_generators(self, dl_manager):
        try:
            manual_dir = dl_manager.manual_dir
        except AssertionError as e:  # TFDS: the folder is missing or empty
            raise common.DatasetLayoutError(
                f"{e}\nExpected layout:\n{layout(self.FOLDER)}") from None
        root = self.check_manual_dir(os.fspath(manual_dir))
        config = self.builder_config
        catalog = scan(root, self.FOLDER, self.name, config.skip_bad)
        kind = config.kind
        items = catalog.sketches if kind == "sketches" else catalog.photos
        common.check_counts(f"{self.name}/{kind}", {s: len(items[s]) for s in SPLITS},
                            self.EXPECTED_COUNTS.get(kind, {}))
        return {split: self._generate_examples(catalog, items[split]) for split in SPLITS}

    def _generate_examples(self, catalog: Catalog, items):
        if self.builder_config.kind == "sketches":
            for s in items:
                yield s.key, {"sketch_id": s.sketch_id, "photo_id": s.photo_id, "category": 0,
                              "user": s.user, "strokes": s.strokes}
        else:
            for photo_id in items:
                yield photo_id, {"photo_id": photo_id, "category": 0,
                                 "image": photo_png(catalog.photo_paths[photo_id])}


class Shoev2(QmulFineGrained):
    """QMUL-ShoeV2: 2,000 shoe photos and their sketches (fine-grained SBIR)."""

    FOLDER = "ShoeV2"
    CATEGORY = "shoe"
    MANUAL_DOWNLOAD_INSTRUCTIONS = instructions("ShoeV2")
    BUILDER_CONFIGS = common.standard_configs(VERSION, "QMUL-ShoeV2")
    # Documented: 1,800 / 200 photos; test 666 sketches. The train sketch count is only known
    # approximately (about 6,730 in all), so it is not checked.
    EXPECTED_COUNTS = {"sketches": {"test": 666}, "photos": {"train": 1800, "test": 200}}


class Chairv2(QmulFineGrained):
    """QMUL-ChairV2: 400 chair photos and 1,275 sketches (fine-grained SBIR)."""

    FOLDER = "ChairV2"
    CATEGORY = "chair"
    MANUAL_DOWNLOAD_INSTRUCTIONS = instructions("ChairV2")
    BUILDER_CONFIGS = common.standard_configs(VERSION, "QMUL-ChairV2")
    # Documented: 952 / 323 sketches over 300 / 100 photos; docs/parity.md: the 3-sketch filter
    # leaves 237 test sketches over 79 photos.
    EXPECTED_COUNTS = {"sketches": {"train": 952, "test": 323, "test_3sketch": 237},
                       "photos": {"train": 300, "test": 100, "test_3sketch": 79}}
