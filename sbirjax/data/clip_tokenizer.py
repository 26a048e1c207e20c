"""CLIP tokenizers: read from a snapshot directory (or a Hugging Face Hub id), applied to texts."""
from __future__ import annotations

import numpy as np

from sbirjax.hub import resolve

# Guards transformers 5's silent fallback to a 3-token vocabulary when the vocabulary files are not
# read.
MIN_VOCAB_SIZE = 100


def load_tokenizer(path_or_hub_id: str):
    """`transformers.CLIPTokenizer` from a directory with vocab.json + merges.txt (or
    tokenizer.json)."""
    from transformers import CLIPTokenizer  # imported here: transformers is slow to import

    directory = resolve(path_or_hub_id)
    tokenizer = CLIPTokenizer.from_pretrained(directory)
    if len(tokenizer) <= MIN_VOCAB_SIZE:
        raise ValueError(f"the CLIP tokenizer loaded from {directory} has only {len(tokenizer)} "
                         "tokens: its vocabulary files were not read (expected vocab.json + "
                         "merges.txt or tokenizer.json)")
    return tokenizer


def tokenize(tokenizer, texts, max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """int32 (ids, attention mask), both (len(texts), max_length): start token, text, end token,
    then padding; texts that are too long are cut, keeping the end token."""
    enc = tokenizer(list(texts), padding="max_length", truncation=True, max_length=max_length,
                    return_tensors="np")
    return enc["input_ids"].astype(np.int32), enc["attention_mask"].astype(np.int32)
