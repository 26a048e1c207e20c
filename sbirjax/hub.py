"""Where pretrained files come from: a local directory, or a Hugging Face Hub id fetched into the HF
cache. Used by the CLIP weights (sbirjax/nets/clip_weights.py) and the CLIP tokenizer
(sbirjax/data/clip_tokenizer.py)."""
from __future__ import annotations

import os

HUB_FILES = ["config.json", "model.safetensors", "vocab.json", "merges.txt", "tokenizer.json",
             "tokenizer_config.json", "special_tokens_map.json"]


def resolve(path_or_hub_id: str) -> str:
    """A local directory as is; anything else is taken as a Hub id and fetched into the HF cache."""
    if os.path.isdir(path_or_hub_id):
        return path_or_hub_id
    looks_local = os.path.isabs(path_or_hub_id) or path_or_hub_id.startswith((".", "~"))
    how = (f"Download config.json, model.safetensors and the tokenizer files (vocab.json, "
           f"merges.txt, tokenizer_config.json, ...) from https://huggingface.co/{path_or_hub_id} "
           "into one directory and pass that directory instead.")
    if looks_local:
        raise FileNotFoundError(f"CLIP checkpoint directory {path_or_hub_id!r} does not exist.")
    try:
        from huggingface_hub import snapshot_download
        return snapshot_download(path_or_hub_id, allow_patterns=HUB_FILES)
    except Exception as e:  # offline, unknown repo, invalid id: one clear message
        raise FileNotFoundError(f"{path_or_hub_id!r} is not a local directory and could not be "
                                f"fetched from the Hugging Face Hub ({type(e).__name__}: {e}). "
                                f"{how}") from e
