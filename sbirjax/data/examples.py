"""Training-example builders, one per method family, chosen by `Method.train_inputs`.

Each builder is a callable `(sketch_index, rng) -> dict of uint8 arrays` used by grain's
`random_map`, so an example depends only on its position in the stream and the seed: resumed and
multi-process runs see exactly the examples an uninterrupted single-process run sees.
"""
from __future__ import annotations

import numpy as np

from sbirjax.data import augment


class TripletExamples:
    """Anchor sketch, its photo (positive) and a different photo of the split (negative).

    Horizontal flip is applied jointly to the sketch and its photo; crops are independent.
    """

    def __init__(self, split, image_config, augment_config):
        self.split, self.image, self.aug = split, image_config, augment_config
        if np.any(split.sketch_photo < 0):
            bad = int(np.sum(split.sketch_photo < 0))
            raise ValueError(f"{bad} sketches of split {split.name} have no photo in the photo split")
        if split.num_photos < 2:
            raise ValueError(f"split {split.name} needs at least 2 photos for triplets")

    def _prepare(self, image, rng, flip):
        if self.aug.crop_scale_min < 1.0:
            image = augment.random_resized_crop(image, rng, (self.aug.crop_scale_min, 1.0))
        return augment.maybe_flip(image, flip)

    def __call__(self, index, rng: np.random.Generator):
        s = self.split
        index = int(index)
        pos = int(s.sketch_photo[index])
        neg = int(rng.integers(0, s.num_photos - 1))
        neg += neg >= pos  # uniform over the other photos
        flip = bool(rng.random() < self.aug.flip_prob)
        sketch = augment.sketch_image(s.sketches[index], self.image)
        positive = augment.photo_image(s.photos[pos], self.image)
        negative = augment.photo_image(s.photos[neg], self.image)
        return {"sketch": self._prepare(sketch, rng, flip),
                "positive": self._prepare(positive, rng, flip),
                "negative": self._prepare(negative, rng, bool(rng.random() < self.aug.flip_prob))}


BUILDERS = {"triplet": TripletExamples}


def make(kind: str, split, image_config, augment_config):
    if kind not in BUILDERS:
        raise KeyError(f"no example builder {kind!r}; known: {sorted(BUILDERS)}")
    return BUILDERS[kind](split, image_config, augment_config)
