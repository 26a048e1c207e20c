"""grain pipelines over TFDS data sources.

The global example stream is: sketch indices shuffled per epoch (seeded), repeated forever, turned
into examples by a seeded random map, grouped into local batches. Global batch b is made of local
batches b*P .. b*P+P-1 (P processes); process p reads only local batch b*P+p. Resuming at step s
slices the stream at batch s: nothing is replayed and nothing is skipped.
"""
from __future__ import annotations

import grain
import numpy as np


def train_stream(num_items: int, example_fn, *, local_batch: int, seed: int, start_step: int = 0,
                 process_index: int = 0, process_count: int = 1):
    """The random-access stream of this process's local batches, starting at `start_step`."""
    if num_items == 0:
        raise ValueError("the training split is empty")
    ds = (grain.MapDataset.range(num_items).shuffle(seed=seed).repeat(None)
          .random_map(example_fn, seed=seed + 1)
          .batch(local_batch, drop_remainder=True, batch_fn=_stack))
    return ds[process_index::process_count][start_step:]


def iterate(stream, *, num_threads: int = 2, prefetch: int = 4):
    """Prefetching iterator over a stream (threads, no extra processes)."""
    options = grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch)
    return iter(stream.to_iter_dataset(options))


def _stack(examples):
    return {k: np.stack([e[k] for e in examples]) for k in examples[0]}
