"""A retrieval split: random-access sketch and photo sources plus the metadata that links them."""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class RetrievalSplit:
    name: str
    sketches: Any               # random access: sketches[i] -> dict with 'strokes' or 'image'
    photos: Any                 # random access: photos[j] -> dict with 'image'
    sketch_photo: np.ndarray    # (S,) index into photos of each sketch's photo, -1 if absent
    sketch_category: np.ndarray  # (S,)
    sketch_user: np.ndarray     # (S,) user id, or sketch index k as the style proxy
    photo_category: np.ndarray  # (P,)
    photo_ids: np.ndarray       # (P,) str
    category_names: tuple

    @property
    def num_sketches(self) -> int:
        return len(self.sketch_photo)

    @property
    def num_photos(self) -> int:
        return len(self.photo_ids)


def load(sketch_builder, photo_builder, sketch_split: str, photo_split: str) -> RetrievalSplit:
    for b, s in ((sketch_builder, sketch_split), (photo_builder, photo_split)):
        if s not in b.info.splits:
            raise ValueError(f"split {s!r} not in {b.info.full_name}; "
                             f"it has {sorted(b.info.splits)}")
    sketches = sketch_builder.as_data_source(split=sketch_split)
    photos = photo_builder.as_data_source(split=photo_split)
    # Metadata through sources that leave images encoded: decoding every image of a real dataset
    # (75k Sketchy sketches, 73k photos) only to read ids would take minutes and many GB.
    photo_meta = _metadata_source(photo_builder, photo_split)
    photo_recs = [photo_meta[j] for j in range(len(photo_meta))]
    photo_ids = np.array([_text(r["photo_id"]) for r in photo_recs])
    photo_category = np.array([int(r["category"]) for r in photo_recs], np.int64)
    where = {pid: j for j, pid in enumerate(photo_ids)}
    sketch_meta = _metadata_source(sketch_builder, sketch_split)
    recs = [sketch_meta[i] for i in range(len(sketch_meta))]
    sketch_photo = np.array([where.get(_text(r["photo_id"]), -1) for r in recs], np.int64)
    names = tuple(sketch_builder.info.features["category"].names)
    return RetrievalSplit(
        name=f"{sketch_split}/{photo_split}", sketches=sketches, photos=photos,
        sketch_photo=sketch_photo,
        sketch_category=np.array([int(r["category"]) for r in recs], np.int64),
        sketch_user=np.array([int(r.get("user", -1)) for r in recs], np.int64),
        photo_category=photo_category, photo_ids=photo_ids, category_names=names)


def _metadata_source(builder, split):
    """A data source of `split` whose image features stay encoded bytes (no decoding)."""
    import tensorflow_datasets as tfds
    skip = {name: tfds.decode.SkipDecoding() for name, feature in builder.info.features.items()
            if isinstance(feature, tfds.features.Image)}
    return builder.as_data_source(split=split, decoders=skip or None)


def _text(x) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


class Subset:
    """Random-access view of `source` at `indices` (view[i] = source[indices[i]])."""

    def __init__(self, source, indices):
        self.source, self.indices = source, np.asarray(indices, np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i):
        return self.source[int(self.indices[i])]


def per_class_pick(labels: np.ndarray, seed: int, count) -> np.ndarray:
    """Sorted indices of a seeded pick of `count(n)` of the n items of each class. One random
    stream per (seed, class), so a class's pick does not depend on the other classes."""
    picked = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        order = np.random.default_rng([seed, int(c)]).permutation(members)
        picked.append(order[:count(len(members))])
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, np.int64)


def _per_class_pick(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A seeded `fraction` of each class's items: round(fraction * n) of the n items of a class,
    at least 1 when fraction > 0, and never all of a class (n - 1 at most)."""
    def count(n):
        k = int(np.floor(fraction * n + 0.5))
        return min(max(k, 1 if fraction > 0 else 0), n - 1)
    return per_class_pick(labels, seed, count)


def _restrict(split: RetrievalSplit, name: str, sketch_idx, photo_idx) -> RetrievalSplit:
    new_photo = np.full(split.num_photos, -1, np.int64)
    new_photo[photo_idx] = np.arange(len(photo_idx))
    links = split.sketch_photo[sketch_idx]
    return RetrievalSplit(
        name=name, sketches=Subset(split.sketches, sketch_idx),
        photos=Subset(split.photos, photo_idx),
        sketch_photo=np.where(links >= 0, new_photo[np.maximum(links, 0)], -1),
        sketch_category=split.sketch_category[sketch_idx],
        sketch_user=split.sketch_user[sketch_idx],
        photo_category=split.photo_category[photo_idx], photo_ids=split.photo_ids[photo_idx],
        category_names=split.category_names)


def holdout(split: RetrievalSplit, fraction: float,
            seed: int) -> tuple[RetrievalSplit, RetrievalSplit]:
    """(train, val): a seeded, per-class `fraction` of the split's photos and sketches held out for
    model selection, so selection never looks at test classes.

    Photos are picked per class. A sketch linked to a photo follows its photo (pairs stay together,
    so fine-grained protocols work on 'val'); an unlinked sketch (category-level datasets) is
    picked per class by its own seeded draw. Deterministic in (split, fraction, seed)."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"holdout fraction must be in [0, 1), got {fraction}")
    val_photo = np.zeros(split.num_photos, bool)
    val_photo[_per_class_pick(split.photo_category, fraction, seed)] = True
    linked = split.sketch_photo >= 0
    val_sketch = linked & val_photo[np.maximum(split.sketch_photo, 0)]
    unlinked = np.flatnonzero(~linked)
    val_sketch[unlinked[_per_class_pick(split.sketch_category[unlinked], fraction,
                                        seed + 1)]] = True
    parts = []
    for name, in_val in (("train", False), ("val", True)):
        parts.append(_restrict(split, f"{split.name}:{name}", np.flatnonzero(val_sketch == in_val),
                               np.flatnonzero(val_photo == in_val)))
    return parts[0], parts[1]
