"""Values shared by the experiment configs (configs/*.py). Only assembles values: no logic.

It lives in the package so a config file loads from any working directory. Every key the library
reads is declared here once, with its default: in `base()` for every method, in `stylemeup()`
and sbirjax/defaults_masbir.py for a method's own keys. The library reads `config.key`, never
`config.get(key, default)` (tests/test_config_schema.py).
"""
import dataclasses

import ml_collections

from sbirjax.data import synthetic


# The second synthetic world (sbirjax/data/synthetic.py WorldSpec fields): 48 users with persistent
# person-specific styles, 24 of them unseen in training. Frozen by Triplet-SN alone before any
# StyleMeUp run on it (docs/stylemeup_styles.md).
STYLES_WORLD = {"num_users": 48, "num_test_users": 24, "style_model": "rich"}


def base() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.method = "triplet_sn"
    c.seed = 0
    c.total_steps = 1000
    c.batch_size = 32
    c.log_every = 50
    c.eval_every = 500
    c.checkpoint_every = 250
    c.keep_checkpoints = 3

    # num_devices -1: every visible device. fsdp: devices per group that splits the parameters and
    # optimiser state (1: pure data parallelism); the mesh is (num_devices / fsdp, fsdp).
    c.mesh = ml_collections.ConfigDict({"num_devices": -1, "fsdp": 1})

    c.data = ml_collections.ConfigDict()
    c.data.name = "synthetic"
    c.data.data_dir = ""      # '' -> $TFDS_DATA_DIR or ~/tensorflow_datasets
    c.data.manual_dir = ""    # real datasets: the folder holding what was downloaded by hand
    c.data.skip_bad = False   # real datasets: skip (and list) unreadable records
    c.data.train_sketches = "train"
    c.data.train_photos = "train"
    # 'instance': a sketch's positive is its own photo (fine-grained); 'category': any photo of
    # its class (category-level datasets; TU-Berlin has no sketch-photo pairs).
    c.data.pairing = "instance"
    # > 0: that fraction of each training class's sketches and photos (seeded) is held out as the
    # eval split 'val', for model selection without test data (config.eval.select).
    c.data.holdout_fraction = 0.0
    # The generated world (data.name 'synthetic'): sbirjax/data/synthetic.py WorldSpec, whose
    # field defaults are the defaults here.
    c.data.synthetic = dataclasses.asdict(synthetic.WorldSpec())
    c.data.num_threads = 2    # grain read threads
    c.data.prefetch = 4
    image_size = ml_collections.FieldReference(256)  # model.image_size follows data.image.size
    c.data.image = ml_collections.ConfigDict({
        "size": image_size,
        "raster": {"canvas": 256, "line_width": 3, "polarity": "black_on_white"},
        # True: a photo's centre square is resized (CLIP's preprocessing); False: stretched.
        "center_crop": False,
    })
    c.data.augment = ml_collections.ConfigDict({"flip_prob": 0.5, "crop_scale_min": 0.85})

    c.model = ml_collections.ConfigDict({
        "widths": (32, 64, 128, 256, 256), "hidden": 512, "embed_dim": 64, "dropout": 0.5,
        "image_size": image_size,
        # 'scratch': the conv encoder above; 'efficientnet_lite0' (or lite1, lite2): an ImageNet
        # trunk in its place (Triplet-SN; docs/pretrained.md), its weights loaded at the start,
        # its BatchNorm statistics frozen, trained at lr * backbone_lr_mult (0 freezes it).
        "backbone": "scratch", "backbone_lr_mult": 0.1,
        # Learned InstanceNorm scale and bias (PyTorch's InstanceNorm2d has none: StyleMeUp sets
        # False); convolutions as 'xla' (lax.conv) or 'matmul' (patches @ kernel).
        "norm_affine": True, "conv_impl": "xla"})
    # triplet_eps: the triplet distance is ||a - p + eps||; torch's TripletMarginLoss uses 1e-6
    # (F.pairwise_distance). 0 is the exact distance: Triplet-SN is sbirjax's own baseline here
    # (the official StyleMeUp repository has none).
    c.loss = ml_collections.ConfigDict({"margin": 0.2, "triplet_eps": 0.0})
    c.optim = ml_collections.ConfigDict({
        "name": "adam", "lr": 1e-4, "b1": 0.9, "b2": 0.999, "eps": 1e-8, "weight_decay": 0.0,
        # warmup: warmup_steps, or when 0 the floor of warmup_fraction x total_steps
        "warmup_steps": 0, "warmup_fraction": 0.0, "schedule": "constant", "grad_clip": 0.0,
        "groups": ()})

    c.eval = ml_collections.ConfigDict()
    # name -> (sketch split, photo split)
    c.eval.splits = {"test": ("test", "test")}
    c.eval.batch_size = 64
    c.eval.ks = (1, 5, 10)
    # 'fine_grained' (the true photo's rank), 'category' (any photo of the class is relevant) or
    # 'fine_grained_within_class' (sbirjax/evaluation/evaluate.py protocols()).
    c.eval.protocol = "fine_grained"
    c.eval.split_protocols = {}  # split name -> protocol, where a split differs from eval.protocol
    # Files each evaluation writes (sbirjax/evaluation/evaluate.py OUTPUTS): 'grid'
    # (retrieval_<split>.png), 'ranks' (eval/<split>_ranks.npz) and 'style_consistency'
    # (style_consistency_<split>.png); the last two for fine-grained protocols only.
    c.eval.outputs = ("grid", "ranks", "style_consistency")
    # category protocol: the metric names (sbirjax/evaluation/metrics.py); () -> ('map@all',
    # 'p@200')
    c.eval.category_metrics = ()
    c.eval.similarity = "neg_euclidean"  # or 'cosine': how queries score gallery items
    c.eval.select = ""  # '<split>/<metric>' (higher is better) picks the checkpoint; '' none
    c.eval.grid = {"num_queries": 8, "top_k": 5}
    return c


STYLEMEUP_ABLATIONS = ("full", "no_ft", "no_reg", "fixed_ft", "first_order", "model_first_order",
                       "mldg", "inner0", "inner1", "inner2", "inner3", "inner4")


def stylemeup(ablation: str = "full") -> ml_collections.ConfigDict:
    """StyleMeUp values shared by its configs; `ablation` is one of STYLEMEUP_ABLATIONS.

    Defaults follow the PAPER where it and the official code disagree: FT layers in the encoder
    (missing from the code), a second-order meta-gradient so the regulariser and the FT layers
    learn (the code is first order: 'first_order'), latent d = 64 (the paper's best on ShoeV2;
    the code uses 128: --config.model.embed_dim=128). Follow the code: 1 inner SGD step at 5e-3,
    tasks of one photo + three styles, all loss weights 1, self-reconstruction weight 0 (the
    code computes it and adds it times 0; sbirjax skips it), outer Adam 1e-4 for the model and
    the regulariser, InstanceNorm without affine, torch's triplet distance, no random crop.
    docs/parity.md lists every remaining difference."""
    ablation = ablation or "full"
    if ablation not in STYLEMEUP_ABLATIONS:
        raise ValueError(f"unknown StyleMeUp ablation {ablation!r}; "
                         f"use one of {STYLEMEUP_ABLATIONS}")
    c = base()
    c.method = "stylemeup"
    c.batch_size = 12          # tasks per meta-batch (the official code's 12)
    c.model.embed_dim = 64     # d
    c.model.ft = ablation != "no_ft"
    # Scales the FT layers' initial noise (Tseng et al.'s thetas 0.3 and 0.5). 1 is theirs; on the
    # ImageNet trunk, whose 16 blocks compound it, 1 diverges and 0.1 diverges later
    # (docs/stylemeup_styles.md).
    c.model.ft_init_scale = 1.0
    # The regulariser's weights P start U(0, reg_init_scale); 1 is the official code's. At 1 the
    # regulariser's gradient dominates the inner step (docs/stylemeup_styles.md).
    c.model.reg_init_scale = 1.0
    c.model.norm_affine = False
    # Convolutions as patches @ kernel: with the tasks vmapped, per-task weights make batched
    # matmuls instead of grouped convolutions (sbirjax/nets/patchconv.py).
    c.model.conv_impl = "matmul"
    c.loss.triplet_eps = 1e-6  # the official code's: torch's TripletMarginLoss default
    c.loss.weights = {"kl": 1.0, "cross_style": 1.0, "cross_domain": 1.0, "self_recon": 0.0,
                      "triplet_inv": 1.0, "triplet_f": 1.0}
    c.meta = ml_collections.ConfigDict({
        "inner_lr": 5e-3, "inner_steps": 1, "first_order": ablation == "first_order",
        # First order for the model, second order for the regulariser and FT layers (meta.py).
        "model_first_order": ablation == "model_first_order",
        "regulariser": ablation != "no_reg",
        # > 0 adds that weight times the outer loss of the un-adapted model (MLDG-style; meta.py).
        # 0 follows the paper and the code.
        "unadapted_weight": 1.0 if ablation == "mldg" else 0.0,
        # Tasks run together: 0 = vmap all of them; k = chunks of k in sequence, each chunk's
        # gradient taken inside the loop, so only one chunk's activations are live (at 256 px
        # all 12 tasks at once need ~31 GB). remat: recompute each task's forward pass in the
        # backward pass; it saves memory only with all tasks vmapped (methods/meta.py).
        # unroll_chunks: the chunks as straight-line code, not a loop: with lax convolutions
        # (model.conv_impl='xla') the fastest 256-px first-order step on CPU, at about 3x the
        # loop's memory (docs/benchmarks.md). Needs task_chunk > 0.
        "task_chunk": 0, "remat": False, "unroll_chunks": False,
        # What the inner and outer losses see (sbirjax/data/episodes.py): 'official' (the
        # released code's episode), 'disjoint' or 'user_split'. The paper configs keep
        # 'official': on the styles world no design beats another, or the no-inner-step
        # ablation, by more than the seed spread (docs/stylemeup_styles.md).
        "episode": "official",
        # 'maml': every parameter takes the meta-gradient (the paper). 'tseng': the model takes
        # the gradient of its plain inner (meta-train) loss and only the FT layers and the
        # regulariser take the meta-gradient (Tseng et al., ICLR 2020); combine with
        # unadapted_weight > 0 for MLDG's extra outer loss of the un-adapted model. (Not named
        # 'update': that is a ConfigDict method.)
        "update_rule": "maml",
        # How second order differentiates the inner step: 'forward' (Hessian-vector products
        # forward-over-reverse, in each inner step's VJP) or 'reverse' (back through the inner
        # backward pass): the same gradient; 'forward' took 0.68x the time of 'reverse' at 256
        # px and 0.90x at 64 px on CPU, with less memory (methods/meta.py, docs/benchmarks.md).
        "hessian": "forward"})
    if ablation.startswith("inner"):
        c.meta.inner_steps = int(ablation[len("inner"):])
    c.optim.lr = 1e-4
    c.data.augment.crop_scale_min = 1.0  # no random-resized crop: the official pipeline has none
    # Fixed FT: the FT parameters keep their initial values (learning-rate multiplier 0).
    # Every FT layer: 'encoder/ft<i>/...', or 'backbone/blocks_<i>/ft/...' on a pretrained trunk.
    c.optim.groups = ((r"(^|/)ft\d*/", 0.0),) if ablation == "fixed_ft" else ()
    return c


def stylemeup_fine_grained(dataset: str, arg: str) -> ml_collections.ConfigDict:
    """QMUL fine-grained values (shoev2, chairv2). arg: 'ablation[,3sketch]' or
    'triplet_sn[,3sketch]' (the baseline keeps base()'s batch of 32 triplets); '3sketch' is the
    official code's filter."""
    tokens = [t for t in (arg or "full").split(",") if t]
    method = tokens[0] if tokens else "full"
    split = "_3sketch" if "3sketch" in tokens[1:] else ""
    c = base() if method == "triplet_sn" else stylemeup(method)
    c.data.name = dataset
    c.data.image.size = 256
    c.data.train_sketches = c.data.train_photos = "train" + split
    c.eval.splits = {"test": ("test" + split, "test" + split)}
    c.eval.protocol = "fine_grained"
    c.eval.ks = (1, 5, 10)
    return c


def stylemeup_category_dsh(dataset: str, arg: str) -> ml_collections.ConfigDict:
    """Category-level DSH values (sketchy, tuberlin): mAP@all and P@200, Euclidean distance."""
    method = arg or "full"
    c = base() if method == "triplet_sn" else stylemeup(method)
    c.data.name = dataset
    c.data.image.size = 256
    c.data.pairing = "category"
    c.data.train_sketches, c.data.train_photos = "dsh_train", "dsh_gallery"
    c.eval.splits = {"test": ("dsh_test", "dsh_gallery")}
    c.eval.protocol = "category"
    c.eval.category_metrics = ("map@all", "p@200")
    c.eval.similarity = "neg_euclidean"
    c.eval.batch_size = 256
    return c
