"""Unpaired image-caption examples for MA-SBIR: every sketch and every photo, each with a caption of
its class.

Items are the split's sketches (0 .. S-1) then its photos (S .. S+P-1), so an epoch sees each image
once; sketch-photo pairing is never used. The caption is the class name (underscores as spaces)
through the template of the image's modality, e.g. 'a sketch of a {}.' for sketches;
`config.data.text` (a `text_config`) holds:

  templates   {'photo': ..., 'sketch': ...}: one '{}' template per image modality
  modality    {'photo': k, 'sketch': k}: the row of the 4-row modality table (methods/masbir.py:
              0 photo, 1 sketch, 2 sketch-caption text, 3 photo-caption text) of each caption kind
  max_length  tokens per caption, start and end tokens included (MA-SBIR: 30)
  tokenizer   a CLIP snapshot (directory or Hub id) whose tokenizer to use, or '' for a
              vocabulary generated from the captions themselves (data/bpe_vocab.py)
  vocab_size  size of the generated vocabulary (= the text tower's); unused with a snapshot

Every example is a dict of numpy arrays: 'image' uint8 (H, W, 3), 'modality' int32 (0 photo,
1 sketch), 'text_modality' int32 (the caption's row), 'label' int32 (class), 'input_ids' and
'attention_mask' int32 (max_length,). Captions are tokenised once per (class, modality) when the
builder is made. Augmentation follows `config.data.augment` (independent flip and crop per image).
"""
from __future__ import annotations

import numpy as np

from sbirjax.data import augment, bpe_vocab, clip_tokenizer

PHOTO, SKETCH = 0, 1
MODALITY_NAMES = ("photo", "sketch")  # index = image modality id


def class_caption_names(category_names) -> list[str]:
    return [str(n).replace("_", " ") for n in category_names]


def captions(category_names, templates) -> dict[str, list[str]]:
    """{'photo': [caption of class c], 'sketch': [...]} for every class."""
    names = class_caption_names(category_names)
    return {m: [templates[m].format(n) for n in names] for m in MODALITY_NAMES}


def load_tokenizer(text_config, texts):
    """The snapshot's tokenizer, or one generated to cover `texts`."""
    if text_config.tokenizer:
        return clip_tokenizer.load_tokenizer(text_config.tokenizer)
    return bpe_vocab.tokenizer_for(texts, text_config.vocab_size)


def tokenized_captions(category_names, text_config):
    """int32 (ids, mask), each (2, C, max_length): [image modality, class] -> tokens."""
    caps = captions(category_names, text_config.templates)
    texts = [t for m in MODALITY_NAMES for t in caps[m]]
    ids, mask = clip_tokenizer.tokenize(load_tokenizer(text_config, texts), texts,
                                        text_config.max_length)
    shape = (len(MODALITY_NAMES), len(category_names), text_config.max_length)
    return ids.reshape(shape), mask.reshape(shape)


class ImageTextExamples:
    def __init__(self, split, image_config, augment_config, text_config):
        self.split, self.image, self.aug = split, image_config, augment_config
        self.ids, self.mask = tokenized_captions(split.category_names, text_config)
        self.text_modality = np.array([text_config.modality[m] for m in MODALITY_NAMES], np.int32)
        if not np.all((self.text_modality >= 0) & (self.text_modality < 4)):
            raise ValueError(f"config.data.text.modality {dict(text_config.modality)}: rows of the "
                             "4-row modality table are 0..3")
        if split.num_sketches + split.num_photos == 0:
            raise ValueError(f"split {split.name} has no images")

    def __len__(self):
        return self.split.num_sketches + self.split.num_photos

    def __call__(self, index, rng: np.random.Generator):
        s, index = self.split, int(index)
        if index < s.num_sketches:
            modality, label = SKETCH, int(s.sketch_category[index])
            image = augment.sketch_image(s.sketches[index], self.image)
        else:
            j = index - s.num_sketches
            modality, label = PHOTO, int(s.photo_category[j])
            image = augment.photo_image(s.photos[j], self.image)
        if self.aug.crop_scale_min < 1.0:
            image = augment.random_resized_crop(image, rng, (self.aug.crop_scale_min, 1.0))
        image = augment.maybe_flip(image, bool(rng.random() < self.aug.flip_prob))
        return {"image": image, "modality": np.int32(modality),
                "text_modality": self.text_modality[modality], "label": np.int32(label),
                "input_ids": self.ids[modality, label],
                "attention_mask": self.mask[modality, label]}
