"""Miniature QMUL-ShoeV2 / ChairV2 copies in the exact layout of the SketchX release.

  <tmp>/SketchX_Shoe_ChairV2/<Name>/<Name>_Coordinate
      a pickled dict {'/train/<photo_id>_<k>' or '/test/<photo_id>_<k>': float64 (N, 3)}
  <tmp>/SketchX_Shoe_ChairV2/<Name>/photo/<photo_id>.png

Coordinates lie on a 256 canvas; pen=1 marks the last point of each stroke. `write` returns what
it wrote, so tests can compare every built record with its source.
"""
from __future__ import annotations

import dataclasses
import os
import pickle

import numpy as np
import PIL.Image

RELEASE = "SketchX_Shoe_ChairV2"

# split -> photo_id -> sketch suffixes k. The photos with only some of k = 1, 2, 3 are left out
# of the 3-sketch splits.
SHOE = {
    "train": {"2525993170": ["1", "2", "3"], "2525993171": ["1", "2", "3", "4"],
              "2525993172": ["1", "2"], "2525993173": ["1", "2", "3", "12"]},
    "test": {"3061421001": ["1", "2", "3"], "3061421002": ["2", "3", "5"],
             "3061421003": ["1", "2", "3", "40"]},
}
CHAIR = {
    "train": {"CHABRA003GRY-UK_v1_PearlGrey": ["1", "2", "3", "A2NWM33YRH533Q"],
              "CHAEME001BLK_v2_Black": ["1", "2", "3"], "CHAOAK007_Oak": ["1", "3"]},
    "test": {"CHAKIN002WHT-UK_v1_White": ["1", "2", "3", "4"],
             "CHALUX010_v3_Soft_Blue": ["1", "2"], "CHANOR004_Natural": ["1", "2", "3"]},
}
SPECS = {"ShoeV2": SHOE, "ChairV2": CHAIR}


@dataclasses.dataclass
class Written:
    root: str            # the <Name>/ folder
    release: str         # the SketchX_Shoe_ChairV2/ folder above it
    coords: dict         # pickle key -> float64 (N, 3)
    photos: dict         # photo_id -> uint8 (H, W, 3) as written
    spec: dict           # split -> photo_id -> [k, ...]

    @property
    def coordinate_file(self) -> str:
        return os.path.join(self.root, f"{os.path.basename(self.root)}_Coordinate")

    def photo_path(self, photo_id: str) -> str:
        return os.path.join(self.root, "photo", f"{photo_id}.png")


def strokes(rng: np.random.Generator, *, max_strokes: int = 4, max_points: int = 12) -> np.ndarray:
    """Absolute (x, y, pen) on a 256 canvas; every stroke's last point has pen = 1."""
    rows = []
    for _ in range(int(rng.integers(1, max_strokes + 1))):
        n = int(rng.integers(2, max_points + 1))
        xy = np.clip(rng.normal(128, 50, size=(2,)) + np.cumsum(rng.normal(0, 12, (n, 2)), 0),
                     1, 255)
        pen = np.zeros((n, 1))
        pen[-1] = 1
        rows.append(np.concatenate([np.round(xy, 2), pen], axis=1))
    return np.concatenate(rows).astype(np.float64)


def photo(rng: np.random.Generator, size: int) -> np.ndarray:
    img = np.full((size, size, 3), 255, np.uint8)
    y0, x0 = rng.integers(0, size // 2, size=2)
    img[y0:y0 + size // 2, x0:x0 + size // 2] = rng.integers(0, 255, size=3, dtype=np.uint8)
    img[rng.integers(0, size, 40), rng.integers(0, size, 40)] = 0
    return img


def write(tmp: str, name: str = "ShoeV2", spec: dict | None = None, *, photo_size: int = 24,
          seed: int = 0, **stroke_kw) -> Written:
    spec = SPECS[name] if spec is None else spec
    rng = np.random.default_rng(seed)
    release = os.path.join(str(tmp), RELEASE)
    root = os.path.join(release, name)
    os.makedirs(os.path.join(root, "photo"), exist_ok=True)
    coords, photos = {}, {}
    for split, by_photo in spec.items():
        for photo_id, ks in by_photo.items():
            photos[photo_id] = photo(rng, photo_size)
            PIL.Image.fromarray(photos[photo_id]).save(os.path.join(root, "photo",
                                                                    f"{photo_id}.png"))
            for k in ks:
                coords[f"/{split}/{photo_id}_{k}"] = strokes(rng, **stroke_kw)
    with open(os.path.join(root, f"{name}_Coordinate"), "wb") as f:
        pickle.dump(coords, f)
    return Written(root=root, release=release, coords=coords, photos=photos, spec=spec)


def scaled_spec(num_photos: int, sketches_per_photo: int = 3, test_fraction: float = 0.1,
                *, chair_ids: bool = False) -> dict:
    """A larger spec for benchmarks: num_photos photos, k = 1..sketches_per_photo each."""
    n_test = max(1, int(round(num_photos * test_fraction)))
    ks = [str(k) for k in range(1, sketches_per_photo + 1)]
    ids = [f"CHA{i:05d}-UK_v1_Grey" if chair_ids else f"{2525990000 + i}"
           for i in range(num_photos)]
    return {"train": {p: list(ks) for p in ids[n_test:]},
            "test": {p: list(ks) for p in ids[:n_test]}}


def rewrite_coords(written: Written, coords: dict) -> None:
    """Replace the coordinate pickle (for bad-input tests)."""
    with open(written.coordinate_file, "wb") as f:
        pickle.dump(coords, f)
