"""Training-example builders, one per method family, chosen by `Method.train_inputs`.

Each builder is a callable `(item_index, rng) -> dict of numpy arrays` used by grain's
`random_map`, and `len(builder)` is the number of items an epoch runs over (sketches for
triplets, photos for meta-learning tasks). An example depends only on its position in the stream
and the seed: resumed and multi-process runs see exactly the examples an uninterrupted
single-process run sees.
"""
from __future__ import annotations

import numpy as np

from sbirjax.data import augment, captions, episodes
from sbirjax.errors import DataError


PAIRINGS = ("instance", "category")


class TripletExamples:
    """Anchor sketch, a positive photo and a negative photo.

    pairing 'instance' (fine-grained): the positive is the sketch's own photo, the negative any
    other photo of the split. pairing 'category' (category-level, e.g. TU-Berlin, which has no
    sketch-photo pairs): the positive is a random photo of the sketch's class, the negative a
    random photo of another class. Horizontal flip is applied jointly to the sketch and its
    positive; crops are independent.
    """

    def __init__(self, split, image_config, augment_config, pairing: str = "instance"):
        self.split, self.image, self.aug, self.pairing = (split, image_config, augment_config,
                                                          pairing)
        if pairing not in PAIRINGS:
            raise ValueError(f"config.data.pairing={pairing!r}: use one of {PAIRINGS}")
        if split.num_photos < 2:
            raise ValueError(f"split {split.name} needs at least 2 photos for triplets")
        if pairing == "instance" and np.any(split.sketch_photo < 0):
            bad = int(np.sum(split.sketch_photo < 0))
            raise DataError(f"{bad} sketches of split {split.name} have no photo in the photo "
                            "split; for category-level training set "
                            "config.data.pairing='category'")
        if pairing == "category":
            self.photos_of = {int(c): np.flatnonzero(split.photo_category == c)
                              for c in np.unique(split.photo_category)}
            missing = sorted(set(np.unique(split.sketch_category).tolist()) - set(self.photos_of))
            if missing:
                names = [split.category_names[c] if c < len(split.category_names) else c
                         for c in missing]
                raise DataError(f"split {split.name}: {len(missing)} class(es) have sketches but "
                                f"no photos, so category-level positives cannot be drawn: "
                                f"{names[:10]}. Add their photos and rebuild the dataset, or "
                                "remove their sketch folders too")
            if len(self.photos_of) < 2:
                raise ValueError(f"split {split.name} needs photos of at least 2 classes")

    def __len__(self):
        return self.split.num_sketches

    def _positive_negative(self, rng, category: int, pos: int | None):
        """(positive photo, negative photo) indices for a sketch of `category` / of photo `pos`."""
        s = self.split
        if self.pairing == "category":
            pos = int(rng.choice(self.photos_of[category]))
            neg = int(rng.integers(0, s.num_photos))
            while int(s.photo_category[neg]) == category:  # classes are many: this ends quickly
                neg = int(rng.integers(0, s.num_photos))
            return pos, neg
        neg = int(rng.integers(0, s.num_photos - 1))
        return pos, neg + (neg >= pos)  # uniform over the other photos

    def _prepare(self, image, rng, flip):
        if self.aug.crop_scale_min < 1.0:
            image = augment.random_resized_crop(image, rng, (self.aug.crop_scale_min, 1.0))
        return augment.maybe_flip(image, flip)

    def __call__(self, index, rng: np.random.Generator):
        s = self.split
        index = int(index)
        pos, neg = self._positive_negative(rng, int(s.sketch_category[index]),
                                           int(s.sketch_photo[index]))
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
    style. With pairing 'category' a task is a photo, a photo of another class and `styles`
    sketches of the photo's class (datasets without user ids: every sketch its own style).

    `episode` (sbirjax/data/episodes.py) decides what the outer (meta-test) part holds:
    'official' the layout above; 'disjoint' and 'user_split' add 'outer_sketches' (2 sketches),
    'outer_photo' and 'outer_negative' of another photo, and keep two inner sketches.
    """

    styles = 3

    def __init__(self, split, image_config, augment_config, pairing: str = "instance",
                 episode: str = "official"):
        super().__init__(split, image_config, augment_config, pairing)
        episodes.check(episode, pairing=pairing)
        self.episode = episode
        by_photo: dict[int, list[int]] = {}
        if pairing == "category":  # every photo of a class shares the sketches of the class
            by_class: dict[int, list[int]] = {}
            for i, c in enumerate(split.sketch_category):
                by_class.setdefault(int(c), []).append(i)
            for j, c in enumerate(split.photo_category):
                if int(c) in by_class:
                    by_photo[j] = by_class[int(c)]
        else:
            for i, j in enumerate(split.sketch_photo):
                by_photo.setdefault(int(j), []).append(i)
        own = -1 - np.arange(split.num_sketches)  # every sketch its own style
        # Across photos a sketch index k (Sketchy's user proxy) names no person: own styles.
        users = own if pairing == "category" else np.where(split.sketch_user >= 0,
                                                           split.sketch_user, own)
        self.sketches_of = {j: np.asarray(ix) for j, ix in by_photo.items()
                            if len(set(users[ix])) >= self.styles}
        self.task_photos = np.array(sorted(self.sketches_of), np.int64)
        self.users = users
        if len(self.task_photos) == 0:
            raise ValueError(f"no photo of split {split.name} has sketches by {self.styles} "
                             "distinct users: meta-learning tasks cannot be formed")
        self.picker = episodes.Picker(self.sketches_of, users)
        if episode == "user_split":
            episodes.check(episode, num_users=len(self.picker.photos_by_user))

    def __len__(self):
        return len(self.task_photos)

    def _part(self, rng, photo: int, sketches: list, flip: bool) -> tuple:
        """(sketches (k, H, W, 3), photo, negative) of one part of an episode."""
        s = self.split
        _, neg = self._positive_negative(rng, int(s.photo_category[photo]), photo)
        images = [self._prepare(augment.sketch_image(s.sketches[i], self.image), rng, flip)
                  for i in sketches]
        return (np.stack(images),
                self._prepare(augment.photo_image(s.photos[photo], self.image), rng, flip),
                self._prepare(augment.photo_image(s.photos[neg], self.image), rng, flip))

    def _episode(self, pos: int, rng: np.random.Generator) -> dict:
        if self.episode == "user_split":
            inner, other, outer = self.picker.user_split_parts(pos, rng)
        else:
            inner = self.picker.two_by(pos, lambda u: True, rng)
            held_out = self.picker.two_by(  # a third style, held out of the inner part
                pos, lambda u: u not in {int(self.users[i]) for i in inner}, rng)[0]
            other, outer = self.picker.disjoint_outer(pos, held_out, rng)
        flip = bool(rng.random() < self.aug.flip_prob)
        sk, ph, ng = self._part(rng, pos, inner, flip)
        flip = bool(rng.random() < self.aug.flip_prob)  # the outer photo is another example
        osk, oph, ong = self._part(rng, other, outer, flip)
        return {"sketches": sk, "photo": ph, "negative": ng,
                "outer_sketches": osk, "outer_photo": oph, "outer_negative": ong}

    def __call__(self, index, rng: np.random.Generator):
        s = self.split
        pos = int(self.task_photos[int(index)])
        if self.episode != "official":
            return self._episode(pos, rng)
        chosen, seen = [], set()
        for i in rng.permutation(self.sketches_of[pos]):
            if self.users[i] not in seen:
                chosen.append(int(i))
                seen.add(self.users[i])
            if len(chosen) == self.styles:
                break
        _, neg = self._positive_negative(rng, int(s.photo_category[pos]), pos)
        flip = bool(rng.random() < self.aug.flip_prob)
        sketches = [self._prepare(augment.sketch_image(s.sketches[i], self.image), rng, flip)
                    for i in chosen]
        return {"sketches": np.stack(sketches),
                "photo": self._prepare(augment.photo_image(s.photos[pos], self.image), rng, flip),
                "negative": self._prepare(augment.photo_image(s.photos[neg], self.image), rng,
                                          flip)}


BUILDERS = {"triplet": TripletExamples, "meta_task": MetaTaskExamples,
            "image_text": captions.ImageTextExamples}


def make(kind: str, split, data_config, episode: str = "official"):
    """The example builder `kind` over `split`, configured by `config.data`: image-text builders
    take config.data.text, the sketch-photo ones config.data.pairing; meta-learning tasks also
    `episode` (config.meta.episode)."""
    if kind not in BUILDERS:
        raise KeyError(f"no example builder {kind!r}; known: {sorted(BUILDERS)}")
    last = (data_config.text if kind == "image_text"
            else data_config.pairing)
    if kind == "meta_task":
        return BUILDERS[kind](split, data_config.image, data_config.augment, last, episode)
    return BUILDERS[kind](split, data_config.image, data_config.augment, last)
