"""A CLIP-format byte-level BPE tokenizer for a closed set of texts (the synthetic world's
captions).

Without a pretrained snapshot there is no CLIP vocabulary, so sbirjax writes one in CLIP's own file
format and loads it through the same `CLIPTokenizer.from_pretrained` path as a real snapshot:

  vocab.json    token -> id: the 256 byte symbols, the same with the end-of-word mark '</w>', one
                token per merge, unused filler tokens up to `vocab_size`, then '<|startoftext|>'
                and '<|endoftext|>' (the end token is the last id, vocab_size - 1, as CLIP's 49407)
  merges.txt    the merges by rank
  tokenizer_config.json   the tokenizer class and its special tokens

Every distinct word of the texts (CLIP's own normalisation and word split, taken from the tokenizer
itself) gets the merges that make it ONE token: words are visited in sorted order, each is
tokenised with the merges so far, and while it is still in pieces the two leftmost pieces are
joined by a new merge. New merges rank below all earlier ones, so they never change how an earlier
word is split. Any other text still tokenises (byte fallback): a byte-level BPE has no unknown
token. The files are a pure function of (texts, vocab_size).
"""
from __future__ import annotations

import json
import os
import tempfile

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
END_OF_WORD = "</w>"


def _alphabet() -> list[str]:
    from tokenizers import pre_tokenizers
    return sorted(pre_tokenizers.ByteLevel.alphabet())


def _base_vocab() -> dict[str, int]:
    alphabet = _alphabet()
    return {t: i for i, t in enumerate(alphabet + [c + END_OF_WORD for c in alphabet])}


def words(texts) -> list[str]:
    """The distinct words of `texts` as CLIP splits them (normalised, byte-level symbols),
    sorted."""
    from transformers import CLIPTokenizer  # imported here: transformers is slow to import

    splitter = CLIPTokenizer(vocab={**_base_vocab(), BOS: 512, EOS: 513},
                             merges=[]).backend_tokenizer
    found = set()
    for text in texts:
        normalised = splitter.normalizer.normalize_str(text)
        found.update(w for w, _ in splitter.pre_tokenizer.pre_tokenize_str(normalised))
    return sorted(found)


def build(texts, vocab_size: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """(vocab, merges) with one token per word of `texts`; len(vocab) == vocab_size."""
    from tokenizers.models import BPE

    vocab, merges = _base_vocab(), []
    for word in words(texts):
        model = BPE(vocab=dict(vocab), merges=list(merges), end_of_word_suffix=END_OF_WORD,
                    continuing_subword_prefix="", unk_token=None)
        pieces = [t.value for t in model.tokenize(word)]
        while len(pieces) > 1:
            joined = pieces[0] + pieces[1]
            merges.append((pieces[0], pieces[1]))
            vocab.setdefault(joined, len(vocab))
            pieces = [joined] + pieces[2:]
    free = vocab_size - 2 - len(vocab)
    if free < 0:
        raise ValueError(f"the texts need {len(vocab) + 2} tokens but vocab_size is {vocab_size}: "
                         "raise the text tower's vocab_size")
    for i in range(free):  # fillers: never produced, they only place the specials at the end
        vocab[f"<|unused{i}|>"] = len(vocab)
    vocab[BOS], vocab[EOS] = vocab_size - 2, vocab_size - 1
    return vocab, merges


def write(directory: str, texts, vocab_size: int) -> None:
    """Write vocab.json, merges.txt and tokenizer_config.json into `directory`."""
    vocab, merges = build(texts, vocab_size)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(directory, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    with open(os.path.join(directory, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"tokenizer_class": "CLIPTokenizer", "bos_token": BOS, "eos_token": EOS,
                   "unk_token": EOS, "pad_token": EOS}, f, indent=2)


def tokenizer_for(texts, vocab_size: int):
    """A `CLIPTokenizer` covering `texts`, loaded from files written to a private temporary folder:
    every process makes its own identical copy, so concurrent processes never share a file."""
    from sbirjax.data import clip_tokenizer

    with tempfile.TemporaryDirectory(prefix="sbirjax-bpe-") as directory:
        write(directory, texts, vocab_size)
        tokenizer = clip_tokenizer.load_tokenizer(directory)
    if len(tokenizer) != vocab_size:
        raise ValueError(f"the generated tokenizer has {len(tokenizer)} tokens, "
                         f"expected {vocab_size}")
    return tokenizer
