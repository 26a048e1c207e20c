"""Training-example builders, one per method family, chosen by `Method.train_inputs`.

Each builder is a callable `(item_index, rng) -> dict of uint8 arrays` used by grain's
`random_map`, and `len(builder)` is the number of items an epoch runs over (sketches for
triplets, photos for meta-learning tasks). An example depends only on its position in the stream
and the seed: resumed and multi-process runs see exactly the examples an uninterrupted
single-process run sees.
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

    def __len__(self):
        return self.split.num_sketches

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


class MetaTaskExamples(TripletExamples):
    """A StyleMeUp task: a photo, a negative photo, and `styles` sketches of the photo by
    distinct users (styles). The last sketch is the held-out (meta-test) style; the first two
    are the meta-train styles. One horizontal flip for the whole task, crops per image.

    Only photos with at least `styles` sketches by distinct users make tasks (the official code
    keeps photos with sketch indices 1, 2 and 3). A sketch of unknown user (-1) counts as its own
    style.
    """

    styles = 3

    def __init__(self, split, image_config, augment_config):
        super().__init__(split, image_config, augment_config)
        by_photo: dict[int, list[int]] = {}
        for i, j in enumerate(split.sketch_photo):
            by_photo.setdefault(int(j), []).append(i)
        users = np.where(split.sketch_user >= 0, split.sketch_user, -1 - np.arange(split.num_sketches))
        self.sketches_of = {j: np.asarray(ix) for j, ix in by_photo.items()
                            if len(set(users[ix])) >= self.styles}
        self.task_photos = np.array(sorted(self.sketches_of), np.int64)
        self.users = users
        if len(self.task_photos) == 0:
            raise ValueError(f"no photo of split {split.name} has sketches by {self.styles} "
                             "distinct users: meta-learning tasks cannot be formed")

    def __len__(self):
        return len(self.task_photos)

    def __call__(self, index, rng: np.random.Generator):
        s = self.split
        pos = int(self.task_photos[int(index)])
        chosen, seen = [], set()
        for i in rng.permutation(self.sketches_of[pos]):
            if self.users[i] not in seen:
                chosen.append(int(i))
                seen.add(self.users[i])
            if len(chosen) == self.styles:
                break
        neg = int(rng.integers(0, s.num_photos - 1))
        neg += neg >= pos
        flip = bool(rng.random() < self.aug.flip_prob)
        sketches = [self._prepare(augment.sketch_image(s.sketches[i], self.image), rng, flip)
                    for i in chosen]
        return {"sketches": np.stack(sketches),
                "photo": self._prepare(augment.photo_image(s.photos[pos], self.image), rng, flip),
                "negative": self._prepare(augment.photo_image(s.photos[neg], self.image), rng, flip)}


BUILDERS = {"triplet": TripletExamples, "meta_task": MetaTaskExamples}


def make(kind: str, split, image_config, augment_config):
    if kind not in BUILDERS:
        raise KeyError(f"no example builder {kind!r}; known: {sorted(BUILDERS)}")
    return BUILDERS[kind](split, image_config, augment_config)
