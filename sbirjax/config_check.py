"""Every config value checked when the config loads, before any dataset build or compile.

`check(config, num_devices)` raises one ConfigError that lists every problem found, each naming the
key, the value and what would work. It checks ranges, names against their choices, the batch
against the devices it is split over and the image size against the network's depth.
"""
from __future__ import annotations

from sbirjax.errors import ConfigError


def _get(config, key: str):
    """The value of a dotted key (every key is declared in sbirjax/defaults.py)."""
    node = config
    for part in key.split("."):
        node = node[part]
    return node


def check(config, num_devices: int | None = None) -> None:
    """Raise ConfigError listing what `config` gets wrong; `num_devices` is the number of devices
    the run will see (None: not checked)."""
    problems: list[str] = []

    def need(ok: bool, key: str, value, want: str):
        if not ok:
            problems.append(f"config.{key}={value!r}: {want}")

    def integer(key: str, low: int):
        value = _get(config, key)
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
        need(ok, key, value, f"use an integer >= {low}")
        return value if ok else None

    from sbirjax import methods
    need(config.method in methods.names(), "method", config.method,
         f"use one of {methods.names()}")
    total = integer("total_steps", 0)  # 0: evaluate the initial (e.g. frozen CLIP) model only
    batch = integer("batch_size", 1)
    for key in ("log_every", "eval_every", "checkpoint_every"):
        integer(key, 0)
    integer("keep_checkpoints", 1)
    integer("seed", 0)
    integer("eval.batch_size", 1)
    del total

    from sbirjax.data import tfds_io
    need(config.data.name in tfds_io.DATASETS, "data.name", config.data.name,
         f"use one of {list(tfds_io.DATASETS)}")
    need(config.data.pairing in ("instance", "category"), "data.pairing", config.data.pairing,
         "use 'instance' or 'category'")
    size = integer("data.image.size", 1)
    integer("data.num_threads", 1)
    integer("data.prefetch", 1)
    flip = config.data.augment.flip_prob
    need(0.0 <= flip <= 1.0, "data.augment.flip_prob", flip, "use a probability in [0, 1]")
    crop = config.data.augment.crop_scale_min
    need(0.0 < crop <= 1.0, "data.augment.crop_scale_min", crop, "use a value in (0, 1]")
    fraction = config.data.holdout_fraction
    need(0.0 <= fraction < 1.0, "data.holdout_fraction", fraction, "use a value in [0, 1)")

    if config.method in ("triplet_sn", "stylemeup"):
        # Triplet-SN may drop its head: the encoder's (or trunk's) feature is the embedding.
        integer("model.embed_dim", 0 if config.method == "triplet_sn" else 1)
    # The conv encoder halves the image once per width; StyleMeUp's decoder doubles it as often,
    # also behind a pretrained trunk.
    if size and (config.method == "stylemeup" or
                 (config.method == "triplet_sn" and config.model.backbone == "scratch")):
        depth = len(config.model.widths)
        part = "decoder doubles" if config.model.backbone != "scratch" else "conv encoder halves"
        need(size % 2 ** depth == 0, "data.image.size", size,
             f"the {part} the image {depth} times (model.widths): use a multiple "
             f"of {2 ** depth}, e.g. {max(2 ** depth, size // 2 ** depth * 2 ** depth)}")
    if size and config.method == "masbir":
        patch = config.model.vision.patch_size
        need(size % patch == 0, "data.image.size", size,
             f"CLIP cuts the image into {patch}-pixel patches (model.vision.patch_size): use a "
             f"multiple of {patch}")

    from sbirjax import optim
    need(config.optim.name in optim.NAMES, "optim.name", config.optim.name,
         f"use one of {optim.NAMES}")
    need(config.optim.schedule in optim.SCHEDULES, "optim.schedule", config.optim.schedule,
         f"use one of {optim.SCHEDULES}")
    need(config.optim.lr > 0, "optim.lr", config.optim.lr, "use a learning rate > 0")
    integer("optim.warmup_steps", 0)
    if "margin" in config.loss:  # the triplet methods' (MA-SBIR has none)
        need(config.loss.margin >= 0, "loss.margin", config.loss.margin, "use a margin >= 0")

    from sbirjax.evaluation import evaluate, metrics
    protocol = config.eval.protocol
    need(protocol in evaluate.protocols(), "eval.protocol", protocol,
         f"use one of {evaluate.protocols()}")
    for name, value in dict(config.eval.split_protocols).items():
        need(name in config.eval.splits or name == "val", f"eval.split_protocols.{name}", value,
             f"name an eval split ({sorted(config.eval.splits)})")
        need(value in evaluate.protocols(), f"eval.split_protocols.{name}", value,
             f"use one of {evaluate.protocols()}")
    outputs = tuple(config.eval.outputs)
    need(all(o in evaluate.outputs() for o in outputs), "eval.outputs", outputs,
         f"use names of {evaluate.outputs()}")
    similarity = config.eval.similarity
    need(similarity in metrics.SIMILARITIES, "eval.similarity", similarity,
         f"use one of {metrics.SIMILARITIES}")
    ks = tuple(config.eval.ks)
    need(all(isinstance(k, int) and k >= 1 for k in ks), "eval.ks", ks, "use integers >= 1")
    splits = dict(config.eval.splits)
    need(bool(splits), "eval.splits", splits, "name at least one split: {name: (sketch split, "
         "photo split)}")
    for name, pair in splits.items():
        need(isinstance(pair, (tuple, list)) and len(pair) == 2
             and all(isinstance(p, str) for p in pair), f"eval.splits.{name}", pair,
             "use a (sketch split, photo split) pair of names")
    select = config.eval.select
    if select:
        split, _, metric = select.partition("/")
        names = set(splits) | ({"val"} if fraction else set())
        need(split in names and bool(metric), "eval.select", select,
             f"use '<split>/<metric>' with a split of {sorted(names)}")

    if "meta" in config:
        from sbirjax.methods import meta
        from sbirjax.data import episodes
        integer("meta.inner_steps", 0)
        chunk = integer("meta.task_chunk", 0)
        if chunk and batch:
            need(batch % chunk == 0, "meta.task_chunk", chunk,
                 f"use 0 or a divisor of batch_size={batch}")
        need(chunk > 0 or not config.meta.unroll_chunks, "meta.unroll_chunks",
             config.meta.unroll_chunks, "it unrolls the chunks of meta.task_chunk: set that > 0")
        need(config.meta.update_rule in meta.UPDATES, "meta.update_rule",
             config.meta.update_rule, f"use one of {meta.UPDATES}")
        need(config.meta.hessian in meta.HESSIANS, "meta.hessian", config.meta.hessian,
             f"use one of {meta.HESSIANS}")
        try:
            episodes.check(config.meta.episode, pairing=config.data.pairing,
                           num_users=episodes.training_users(config.data))
        except ValueError as e:
            problems.append(str(e))

    mesh_devices = config.mesh.num_devices
    fsdp = config.mesh.fsdp
    if num_devices is not None:
        used = num_devices if mesh_devices in (-1, None) else mesh_devices
        need(mesh_devices in (-1, None) or 1 <= mesh_devices <= num_devices, "mesh.num_devices",
             mesh_devices, f"use -1 (all) or 1..{num_devices}: {num_devices} devices are visible")
        need(isinstance(fsdp, int) and fsdp >= 1 and used % fsdp == 0, "mesh.fsdp", fsdp,
             f"use a positive divisor of the {used} devices of the mesh")
        if batch and used >= 1:
            need(batch % used == 0, "batch_size", batch,
                 f"the batch is split over {used} devices: use a multiple of {used}")
    if problems:
        raise ConfigError("the config cannot run:\n  " + "\n  ".join(problems))
