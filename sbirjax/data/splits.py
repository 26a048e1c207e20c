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
            raise ValueError(f"split {s!r} not in {b.info.full_name}; it has {sorted(b.info.splits)}")
    sketches = sketch_builder.as_data_source(split=sketch_split)
    photos = photo_builder.as_data_source(split=photo_split)
    photo_ids = np.array([_text(photos[j]["photo_id"]) for j in range(len(photos))])
    photo_category = np.array([int(photos[j]["category"]) for j in range(len(photos))], np.int64)
    where = {pid: j for j, pid in enumerate(photo_ids)}
    recs = [sketches[i] for i in range(len(sketches))]
    sketch_photo = np.array([where.get(_text(r["photo_id"]), -1) for r in recs], np.int64)
    names = tuple(sketch_builder.info.features["category"].names)
    return RetrievalSplit(
        name=f"{sketch_split}/{photo_split}", sketches=sketches, photos=photos,
        sketch_photo=sketch_photo,
        sketch_category=np.array([int(r["category"]) for r in recs], np.int64),
        sketch_user=np.array([int(r.get("user", -1)) for r in recs], np.int64),
        photo_category=photo_category, photo_ids=photo_ids, category_names=names)


def _text(x) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)
