"""TFDS builders for category-level SBIR: Sketchy, TU-Berlin (both extended), QuickDraw-extended.

TFDS names 'sketchy', 'tuberlin', 'quickdraw'. Each has the configs of tfds_builders/common.py:
'sketches' and 'photos', and 'sketches_skipbad' / 'photos_skipbad', which skip (and list)
unreadable images instead of stopping. Read from the manual directory, in the released layouts:

  Sketchy    sketch/tx_000000000000/<class>/<photoid>-<n>.png
             photo/tx_000000000000/<class>/<photoid>.jpg          (the 12,500 original photos)
             extended_photo/<class>/*.jpg      (73,002: the originals again plus ext_<k>.jpg)
  TU-Berlin  png/<class name with spaces>/<id>.png
             ImageResized/<photo folder>/*.JPEG  (folder names differ from the class names in
                                                  places: class_lists.TUBERLIN_PHOTO_FOLDERS)
  QuickDraw  QuickDraw_sketches_final/<class>/<key_id>.png
             QuickDraw_images_final/<class>/*.jpg

Class folders are matched through class_lists.normalise_class, so 'hot-air_balloon',
'hot_air_balloon' and 'hot air balloon' are one class; image files are recognised by extension in
any case (.png, .jpg, .jpeg: '.JPEG' and '.jpg' alike). Folders that match no class are reported
with the closest class that has no folder; classes without a folder are listed.

Features (common.py): sketches have sketch_id '<class>/<file stem>', photo_id, category
(ClassLabel over the normalised class names of the full class list, so ids never depend on which
folders a download has), user and image; photos have photo_id '<class>/<file stem>', category and
image. Sketchy sketches link to their photo: photo_id = '<class>/<name before the last '-'>' and
user = the sketch index n after it (-1 when not a number); a sketch whose original photo is missing
from photo/tx_000000000000 is kept with photo_id '' and reported. TU-Berlin and QuickDraw have no
pairing: photo_id '' and user -1.

Images are stored as the encoded file bytes when TFDS decodes them to uint8 (H, W, 3) unchanged:
PNG or JPEG in RGB or grayscale mode (grayscale comes back with its channel repeated three times).
Every other image (RGBA, LA, palette, 16-bit, CMYK, bilevel) is converted with PIL and stored
re-encoded, PNG (or JPEG quality 95 for JPEG sources): transparent pixels are composed onto white,
so a transparent sketch comes out black on white. Every file is decoded completely once per build
before it is stored; a truncated or unreadable file stops the build with its path, or with
skip_bad is skipped and listed.

Splits (the same split name holds the sketches and the photos of the same protocol)
-------------------------------------------------------------------------------------
Sketchy (sketches: sketch/; photos: extended_photo/ unless marked 'original')
  zs1_train, zs1_test    zero-shot split 1 (Shen et al. 2018): 25 unseen classes in test
  zs2_train, zs2_test    zero-shot split 2 (Yelamarthi et al. 2018): 21 unseen classes in test
  zs1_test_original      photos only: the original photos (photo/tx_000000000000) of the split-1
  zs2_test_original      / split-2 unseen classes; the gallery of fine-grained ZS, and with
                         zs<k>_test the "common lists" gallery that counts the originals twice
                         (12,553 = 10,453 + 2,100 for split 2; 17,101 for split 1 is read the same)
  dsh_train, dsh_test    sketches only: the category-level DSH protocol, DSH_QUERIES_PER_CLASS
                         (50) query sketches per class held out as dsh_test, the rest dsh_train
  dsh_gallery            photos only: all extended photos, the DSH retrieval gallery; the protocol
                         holds out no photos, so training under DSH also reads this split
  gzs2_gallery           photos only: generalised ZS for split 2: every zs2_test photo plus a
                         seeded GZS_SEEN_FRACTION (20%) of the photos of each seen class
TU-Berlin (sketches: png/; photos: ImageResized/)
  zs_train, zs_test          the standard 30-class zero-shot list (Shen et al. 2018; SAKE)
  zs_mas_train, zs_mas_test  MA-SBIR's own 30-class list
  dsh_train, dsh_test        sketches only: 10 query sketches per class held out (DSH)
  dsh_gallery                photos only: all photos
  gzs_gallery, gzs_mas_gallery  photos only: generalised ZS galleries of the two lists
QuickDraw (sketches: QuickDraw_sketches_final/; photos: QuickDraw_images_final/)
  zs_train, zs_test      80 seen / 30 unseen classes (Dey et al. 2019)
  gzs_gallery            photos only: generalised ZS gallery
Generalised ZS queries are the zs*_test sketches (unseen classes).

Protocol details the sources leave open, chosen here (constants below):
- DSH queries: per class, a seeded random choice (DSH_SEED, and the crc32 of the class name) of
  min(DSH_QUERIES_PER_CLASS, n) of the class's sketches sorted by file name. The evaluation is
  category-level: a gallery photo is relevant when its class equals the query's (docs/metrics.md).
- GZS seen photos: per seen class, round(GZS_SEEN_FRACTION * n) photos (halves rounded up),
  a seeded choice (GZS_SEED, crc32 of the class) from the class's photos sorted by file name.
- Photos come from extended_photo for every Sketchy ZS split (MA-SBIR's gallery, 10,453 photos for
  split 2; the originals are part of it); the _original splits give the originals alone.

Validation: after building, the count of every split (and the documented sums of splits) is
printed and compared with the documented numbers (documented_counts below), with a warning
naming both numbers when they differ; a split that would be empty is left out with a warning.

Writing: the builders are TFDS ShardBasedBuilders. Records are written in class order (classes
sorted, files sorted by name within a class), SHARD_EXAMPLES records per shard, and are NOT
shuffled: TFDS's shuffling writer (GeneratorBasedBuilder) keeps up to 1 GB per split in memory and
then spills to disk through TensorFlow's file API, which fails without TensorFlow, and the larger
splits here (73k Sketchy photos, 204k TU-Berlin photos, ~330k QuickDraw sketches) pass 1 GB.
Readers link by photo_id and shuffle themselves (grain). One class folder is listed at a time and
records are yielded as they are read, so memory stays flat (TFDS holds one shard's records).
"""
from __future__ import annotations

import functools
import os

import numpy as np
import tensorflow_datasets as tfds

from tfds_builders import class_lists, common
from tfds_builders.category_files import (
    DSH_SEED, GZS_SEED, GZS_SEEN_FRACTION, BuildState, Split, dsh_queries, gzs_seen, list_images,
    match_class_folders)

VERSION = tfds.core.Version("1.0.0")
DSH_QUERIES_PER_CLASS = {"sketchy": 50, "tuberlin": 10}
SHARD_EXAMPLES = 2000                             # records per written shard (memory bound)


# ------------------------------------------------------------------------------ builders
class CategorySbir(tfds.core.ShardBasedBuilder, skip_registration=True):
    """Shared machinery; subclasses describe the layout, the class list and the splits."""

    VERSION = VERSION
    CLASSES: tuple = ()
    ROOT_NAMES: tuple = ()          # folder names the dataset root may have below manual_dir
    SOURCES: dict = {}              # source -> (relative folder(s), kind or 'both')
    LAYOUT = ""
    DESCRIPTION = ""
    HOMEPAGE = ""

    def __init__(self, *, file_format=None, **kwargs):
        # array_record unless told otherwise: writing TFRecord files needs TensorFlow.
        super().__init__(file_format=file_format or "array_record", **kwargs)

    # -- subclass hooks
    def split_specs(self) -> dict[str, Split]:
        raise NotImplementedError

    def documented_counts(self) -> dict[str, int]:
        raise NotImplementedError

    def sketch_link(self, cls: str, stem: str, path: str) -> tuple[str, int]:
        """(photo_id, user) of a sketch file; '' and -1 where the dataset has no pairing."""
        del cls, stem, path
        return "", -1

    def sources_needed(self) -> tuple[str, ...]:
        return tuple(s for s, (_, kind) in self.SOURCES.items()
                     if kind in (self.builder_config.kind, "both"))

    # -- layout
    def _source_dir(self, bases, source: str) -> str:
        """The folder of `source` under the first of `bases` that has it, else a clear error."""
        rels = self.SOURCES[source][0]
        rels = (rels,) if isinstance(rels, str) else rels
        for base in bases:
            for rel in rels:
                if os.path.isdir(os.path.join(base, rel)):
                    return os.path.join(base, rel)
        return common.require(os.path.join(bases[0], rels[0]), f"{self.name} folder {rels[0]}/",
                              self.LAYOUT)

    def _bases(self, manual_dir: str) -> tuple[str, ...]:
        """Where the source folders are looked for: the dataset root (the manual directory or its
        ROOT_NAMES child holding the first folder this config needs), then the manual directory."""
        manual_dir = os.path.expanduser(os.fspath(manual_dir))
        common.require(manual_dir, "manual directory", self.LAYOUT)
        first = self.SOURCES[self.sources_needed()[0]][0]
        first = (first,) if isinstance(first, str) else first
        candidates = [manual_dir] + [os.path.join(manual_dir, n) for n in self.ROOT_NAMES]
        root = next((c for c in candidates
                     if any(os.path.isdir(os.path.join(c, f)) for f in first)), manual_dir)
        return tuple(dict.fromkeys((root, manual_dir)))

    def check_manual_dir(self, manual_dir: str) -> dict[str, str]:
        """{source: folder} of the folders this config reads; DatasetLayoutError naming the
        first one missing, with the expected layout."""
        bases = self._bases(manual_dir)
        return {source: self._source_dir(bases, source) for source in self.sources_needed()}

    def _info(self):
        kind = self.builder_config.kind
        features = (common.sketch_features(self.CLASSES, strokes=False) if kind == "sketches"
                    else common.photo_features(self.CLASSES))
        return tfds.core.DatasetInfo(
            builder=self, features=features, homepage=self.HOMEPAGE,
            description=f"{self.DESCRIPTION} ({kind}). Splits and protocol: "
                        "tfds_builders/category_sbir.py.",
            metadata=tfds.core.MetadataDict(self.protocol_metadata()))

    def protocol_metadata(self) -> dict:
        return {"dsh_queries_per_class": DSH_QUERIES_PER_CLASS.get(self.name),
                "dsh_seed": DSH_SEED, "gzs_seen_fraction": GZS_SEEN_FRACTION,
                "gzs_seed": GZS_SEED}

    # -- building
    def _shard_iterators_per_split(self, dl_manager):
        try:
            manual_dir = dl_manager.manual_dir
        except AssertionError as e:  # TFDS: the folder is missing or empty
            raise common.DatasetLayoutError(f"{e}\nExpected layout:\n{self.LAYOUT}") from None
        folders = self.check_manual_dir(os.fspath(manual_dir))
        config = self.builder_config
        self._build = build = BuildState(self.name, config.skip_bad)
        for source, parent in folders.items():
            build.folders[source] = match_class_folders(
                parent, self.CLASSES, dataset=self.name, what=source, log=build.log,
                folder_of=self.photo_folder_of if source == "photos" else None)
            build.sizes[source] = {c: len(list_images(p, report=lambda m: None))
                                   for c, p in build.folders[source].items()}
            empty = sorted(c for c, n in build.sizes[source].items() if n == 0)
            if empty:  # the --skip_bad rule of unreadable files: stop, or go on and say so
                where = ", ".join(f"{c} ({build.folders[source][c]})" for c in empty)
                if not config.skip_bad:
                    raise common.DatasetLayoutError(
                        f"{self.name}: {len(empty)} {source} class folder(s) hold no image "
                        f"file: {where}. Put the class's files back, or build with --skip_bad "
                        "(config.data.skip_bad=True) to leave these classes out of the "
                        f"{source}")
                build.log(f"WARNING {self.name}/{config.kind}: {len(empty)} {source} class "
                          f"folder(s) hold no image file and are left out: {where}")
        shards_per_split = {}
        for split, spec in self.split_specs().items():
            shards = self._shards(spec)
            if not shards:
                build.log(f"WARNING {self.name}/{config.kind}: split {split} would be empty "
                          "(no image files for its classes); it is left out")
                continue
            shards_per_split[split] = [functools.partial(self._generate_examples, spec, shard)
                                       for shard in shards]
        return shards_per_split

    photo_folder_of = None   # TU-Berlin: class -> released photo folder name

    def _picked(self, spec: Split, cls: str, n: int) -> np.ndarray:
        """Indices into the class's n files (sorted by name) that the split holds."""
        if spec.pick == "all":
            return np.arange(n) if spec.classes is None or cls in spec.classes else np.arange(0)
        if spec.pick in ("dsh_test", "dsh_train"):
            test = dsh_queries(cls, n, DSH_QUERIES_PER_CLASS[self.name])
            return test if spec.pick == "dsh_test" else np.setdiff1d(np.arange(n), test)
        if spec.pick == "gzs":
            return np.arange(n) if cls in spec.unseen else gzs_seen(cls, n)
        raise ValueError(f"unknown pick {spec.pick!r}")

    def _shards(self, spec: Split) -> list[list[tuple[str, int, int]]]:
        """The split's shards: runs (class, lo, hi) of its picked files, SHARD_EXAMPLES at most
        per shard, classes in sorted order."""
        shards, current, size = [], [], 0
        for cls, n in sorted(self._build.sizes[spec.source].items()):
            total, lo = len(self._picked(spec, cls, n)), 0
            while lo < total:
                hi = min(total, lo + SHARD_EXAMPLES - size)
                current.append((cls, lo, hi))
                size += hi - lo
                lo = hi
                if size == SHARD_EXAMPLES:
                    shards.append(current)
                    current, size = [], 0
        return shards + ([current] if current else [])

    def _generate_examples(self, spec: Split, shard):
        build, kind = self._build, self.builder_config.kind
        for cls, lo, hi in shard:
            files = list_images(build.folders[spec.source][cls], report=build.report_once)
            picked = self._picked(spec, cls, len(files))
            key = (spec.source, cls)
            known = build.verified.get(key, 0)     # files[:known] were decoded earlier
            for i in picked[lo:hi]:
                stem, path = files[i]
                image = build.image(path, verify=i >= known)
                if image is None:
                    continue
                item_id = f"{cls}/{stem}"
                if kind == "sketches":
                    photo_id, user = self.sketch_link(cls, stem, path)
                    yield item_id, {"sketch_id": item_id, "photo_id": photo_id, "category": cls,
                                    "user": user, "image": image}
                else:
                    yield item_id, {"photo_id": item_id, "category": cls, "image": image}
            if spec.pick == "all" and known >= lo:
                build.verified[key] = max(known, hi)

    def _download_and_prepare(self, dl_manager, download_config=None):
        super()._download_and_prepare(dl_manager, download_config)
        build = self._build
        counts = {name: info.num_examples for name, info in self.info.splits.items()}
        expected = self.documented_counts()
        for key in expected:
            parts = key.split("+")
            if len(parts) > 1 and all(p in counts for p in parts):
                counts[key] = sum(counts[p] for p in parts)
        common.check_counts(f"{self.name}/{self.builder_config.kind}", counts, expected,
                            log=build.log)
        for split, n in counts.items():
            if n == 0:
                build.log(f"WARNING {self.name}/{self.builder_config.kind}: split {split} holds "
                          "no readable example; it cannot be opened")
        if build.unlinked:
            build.log(f"WARNING {self.name}: {build.unlinked} sketches name a photo that does not "
                      "exist; they are kept with photo_id ''")
        build.bad.summary()


def _classes_except(all_classes, unseen) -> frozenset:
    return frozenset(all_classes) - frozenset(unseen)


def _zs(source_sk: str, source_ph: str, kind: str, unseen, all_classes, prefix: str) -> dict:
    source = source_sk if kind == "sketches" else source_ph
    return {f"{prefix}_train": Split(source, _classes_except(all_classes, unseen)),
            f"{prefix}_test": Split(source, frozenset(unseen))}


class Sketchy(CategorySbir):
    """Sketchy and Sketchy-extended: 125 classes, 75,471 sketches, 73,002 photos."""

    CLASSES = class_lists.SKETCHY_CLASSES
    ROOT_NAMES = ("Sketchy", "sketchy", "256x256")
    SOURCES = {"sketches": ("sketch/tx_000000000000", "sketches"),
               "originals": ("photo/tx_000000000000", "both"),
               "photos": (("extended_photo", "EXTEND_image_sketchy"), "photos")}
    LAYOUT = """\
  Sketchy/                                   <- the manual directory (or its parent)
    sketch/tx_000000000000/<class>/<photoid>-<n>.png
    photo/tx_000000000000/<class>/<photoid>.jpg
    extended_photo/<class>/*.jpg            (the originals plus ext_<k>.jpg; the archive names
                                             this folder EXTEND_image_sketchy/, accepted too)"""
    DESCRIPTION = "Sketchy / Sketchy-extended category-level and zero-shot SBIR"
    HOMEPAGE = "https://sketchy.eye.gatech.edu/"
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Sketchy (Sangkloy et al., SIGGRAPH 2016) is distributed at https://sketchy.eye.gatech.edu/ (Sketches
and Photos, the 256x256 rendering: rendered_256x256.7z, which extracts to 256x256/ with sketch/ and
photo/). The extended photos (Liu et al., DSH, CVPR 2017) come as EXTEND_image_sketchy.zip from the
DSH / SAKE project pages. Neither can be downloaded by code. Extract both archives into one folder
and point the manual directory (--manual_dir, or config.data.manual_dir) at it: the folders are
found there or in its Sketchy/ (or 256x256/) child, whichever holds sketch/. Canonical layout:
{LAYOUT}
Class folders may spell hot-air_balloon / jack-o-lantern with hyphens or underscores."""
    BUILDER_CONFIGS = common.standard_configs(VERSION, "Sketchy")

    def split_specs(self):
        kind, c = self.builder_config.kind, self.CLASSES
        specs = {**_zs("sketches", "photos", kind, class_lists.SKETCHY_ZS1_UNSEEN, c, "zs1"),
                 **_zs("sketches", "photos", kind, class_lists.SKETCHY_ZS2_UNSEEN, c, "zs2")}
        if kind == "sketches":
            specs["dsh_train"] = Split("sketches", pick="dsh_train")
            specs["dsh_test"] = Split("sketches", pick="dsh_test")
        else:
            specs["zs1_test_original"] = Split("originals",
                                               frozenset(class_lists.SKETCHY_ZS1_UNSEEN))
            specs["zs2_test_original"] = Split("originals",
                                               frozenset(class_lists.SKETCHY_ZS2_UNSEEN))
            specs["dsh_gallery"] = Split("photos")
            specs["gzs2_gallery"] = Split("photos", pick="gzs",
                                          unseen=frozenset(class_lists.SKETCHY_ZS2_UNSEEN))
        return specs

    def documented_counts(self):
        if self.builder_config.kind == "sketches":
            return {"zs1_test": 15229, "zs2_test": 12694, "zs1_train+zs1_test": 75471,
                    "zs2_train+zs2_test": 75471, "dsh_train+dsh_test": 75471,
                    "dsh_test": DSH_QUERIES_PER_CLASS["sketchy"] * len(self.CLASSES)}
        return {"zs2_test": 10453, "zs2_test_original": 2100,
                "zs2_test+zs2_test_original": 12553, "zs1_test+zs1_test_original": 17101,
                "zs1_train+zs1_test": 73002, "zs2_train+zs2_test": 73002, "dsh_gallery": 73002}

    def protocol_metadata(self):
        return {**super().protocol_metadata(),
                "unseen": {"zs1": list(class_lists.SKETCHY_ZS1_UNSEEN),
                           "zs2": list(class_lists.SKETCHY_ZS2_UNSEEN),
                           "gzs2": list(class_lists.SKETCHY_ZS2_UNSEEN)}}

    def sketch_link(self, cls, stem, path):
        link, _, n = stem.rpartition("-")
        link = link or stem
        user = int(n) if n.isdigit() else -1
        build = self._build
        folder = build.folders["originals"].get(cls)
        if build.link_class != cls:   # the original photos of one class at a time
            build.link_class = cls
            build.link_stems = ({stem for stem, _ in list_images(folder, report=lambda m: None)}
                                if folder else set())
        if link not in build.link_stems:
            message = (f"WARNING {self.name}: sketch {path} names the photo {link!r}, which is not "
                       f"in {folder or 'photo/tx_000000000000/<class>'}; kept with photo_id ''")
            if message not in build.reported:
                build.unlinked += 1
            build.report_once(message)
            return "", user
        return f"{cls}/{link}", user


class Tuberlin(CategorySbir):
    """TU-Berlin sketches (250 classes x 80) with the TU-Berlin-extended photos (204,489)."""

    CLASSES = class_lists.TUBERLIN_CLASSES
    ROOT_NAMES = ("TU-Berlin", "TUBerlin", "tuberlin")
    SOURCES = {"sketches": ("png", "sketches"), "photos": ("ImageResized", "photos")}
    LAYOUT = """\
  TU-Berlin/                                 <- the manual directory (or its parent)
    png/<class name, with spaces>/<id>.png
    ImageResized/<photo folder>/*.JPEG       (photo folder names as released, e.g. flyingbird,
                                              spacesshuttle, tromobone, griaffe)"""
    DESCRIPTION = "TU-Berlin / TU-Berlin-extended category-level and zero-shot SBIR"
    HOMEPAGE = "https://cybertron.cg.tu-berlin.de/eitz/projects/classifysketch/"
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
The TU-Berlin sketches (Eitz et al., SIGGRAPH 2012) are distributed as sketches_png.zip at
https://cybertron.cg.tu-berlin.de/eitz/projects/classifysketch/ (it extracts to png/). The extended
photos (Zhang et al. 2016, used by DSH / SAKE) come as ImageResized/ from the DSH / SAKE project
pages. Neither can be downloaded by code. Put png/ and ImageResized/ side by side in one folder and
point the manual directory (--manual_dir, or config.data.manual_dir) at it. Expected layout:
{LAYOUT}
Photo folders are matched to classes through class_lists.TUBERLIN_PHOTO_FOLDERS; a folder that
matches no class is reported with the closest class."""
    BUILDER_CONFIGS = common.standard_configs(VERSION, "TU-Berlin")

    @staticmethod
    def photo_folder_of(cls: str) -> str:
        return class_lists.tuberlin_photo_folder(cls)

    def split_specs(self):
        kind, c = self.builder_config.kind, self.CLASSES
        specs = {**_zs("sketches", "photos", kind, class_lists.TUBERLIN_ZS_UNSEEN, c, "zs"),
                 **_zs("sketches", "photos", kind, class_lists.TUBERLIN_MASBIR_UNSEEN, c,
                       "zs_mas")}
        if kind == "sketches":
            specs["dsh_train"] = Split("sketches", pick="dsh_train")
            specs["dsh_test"] = Split("sketches", pick="dsh_test")
        else:
            specs["dsh_gallery"] = Split("photos")
            specs["gzs_gallery"] = Split("photos", pick="gzs",
                                         unseen=frozenset(class_lists.TUBERLIN_ZS_UNSEEN))
            specs["gzs_mas_gallery"] = Split("photos", pick="gzs",
                                             unseen=frozenset(class_lists.TUBERLIN_MASBIR_UNSEEN))
        return specs

    def documented_counts(self):
        if self.builder_config.kind == "sketches":
            return {"zs_test": 2400, "zs_mas_test": 2400, "zs_train+zs_test": 20000,
                    "zs_mas_train+zs_mas_test": 20000, "dsh_train+dsh_test": 20000,
                    "dsh_test": DSH_QUERIES_PER_CLASS["tuberlin"] * len(self.CLASSES)}
        return {"zs_test": 27989, "zs_mas_test": 25708, "dsh_gallery": 204489,
                "zs_train+zs_test": 204489, "zs_mas_train+zs_mas_test": 204489}

    def protocol_metadata(self):
        return {**super().protocol_metadata(),
                "unseen": {"zs": list(class_lists.TUBERLIN_ZS_UNSEEN),
                           "zs_mas": list(class_lists.TUBERLIN_MASBIR_UNSEEN),
                           "gzs": list(class_lists.TUBERLIN_ZS_UNSEEN),
                           "gzs_mas": list(class_lists.TUBERLIN_MASBIR_UNSEEN)}}


class Quickdraw(CategorySbir):
    """QuickDraw-extended (Dey et al., CVPR 2019): 110 classes, ~330k sketches."""

    CLASSES = class_lists.QUICKDRAW_CLASSES
    ROOT_NAMES = ("QuickDraw-Extended", "QuickDraw", "quickdraw")
    SOURCES = {"sketches": ("QuickDraw_sketches_final", "sketches"),
               "photos": ("QuickDraw_images_final", "photos")}
    LAYOUT = """\
  QuickDraw/                                 <- the manual directory (or its parent)
    QuickDraw_sketches_final/<class>/<key_id>.png
    QuickDraw_images_final/<class>/*.jpg"""
    DESCRIPTION = "QuickDraw-extended zero-shot SBIR"
    HOMEPAGE = "https://github.com/sounakdey/doodle2search"
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
QuickDraw-extended (Dey et al., Doodle to Search, CVPR 2019) is distributed by the CVC as
QuickDraw_sketches_final.zip and QuickDraw_images_final.zip (http://datasets.cvc.uab.es/QuickDraw/,
linked from the Doodle2Search project page). It cannot be downloaded by code. Extract both archives
into one folder and point the manual directory (--manual_dir, or config.data.manual_dir) at it.
Expected layout:
{LAYOUT}"""
    BUILDER_CONFIGS = common.standard_configs(VERSION, "QuickDraw-extended")

    def split_specs(self):
        kind = self.builder_config.kind
        specs = _zs("sketches", "photos", kind, class_lists.QUICKDRAW_UNSEEN, self.CLASSES, "zs")
        if kind == "photos":
            specs["gzs_gallery"] = Split("photos", pick="gzs",
                                         unseen=frozenset(class_lists.QUICKDRAW_UNSEEN))
        return specs

    def documented_counts(self):
        return {"zs_test": 92291} if self.builder_config.kind == "sketches" else {"zs_test": 54151}

    def protocol_metadata(self):
        return {**super().protocol_metadata(),
                "unseen": {"zs": list(class_lists.QUICKDRAW_UNSEEN),
                           "gzs": list(class_lists.QUICKDRAW_UNSEEN)}}
