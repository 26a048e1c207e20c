"""Values shared by the experiment configs (configs/*.py). Only assembles values: no logic.

It lives in the package so a config file loads from any working directory."""
import ml_collections


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

    c.mesh = ml_collections.ConfigDict({"num_devices": -1})  # -1: every visible device

    c.data = ml_collections.ConfigDict()
    c.data.name = "synthetic"
    c.data.data_dir = ""      # '' -> $TFDS_DATA_DIR or ~/tensorflow_datasets
    c.data.manual_dir = ""    # real datasets: the folder holding what was downloaded by hand
    c.data.skip_bad = False   # real datasets: skip (and list) unreadable records
    c.data.train_sketches = "train"
    c.data.train_photos = "train"
    c.data.num_threads = 2    # grain read threads
    c.data.prefetch = 4
    image_size = ml_collections.FieldReference(256)  # model.image_size follows data.image.size
    c.data.image = ml_collections.ConfigDict({
        "size": image_size,
        "raster": {"canvas": 256, "line_width": 3, "polarity": "black_on_white"},
    })
    c.data.augment = ml_collections.ConfigDict({"flip_prob": 0.5, "crop_scale_min": 0.85})

    c.model = ml_collections.ConfigDict({
        "widths": (32, 64, 128, 256, 256), "hidden": 512, "embed_dim": 64, "dropout": 0.5,
        "image_size": image_size})
    c.loss = ml_collections.ConfigDict({"margin": 0.2})
    c.optim = ml_collections.ConfigDict({
        "name": "adam", "lr": 1e-4, "b1": 0.9, "b2": 0.999, "weight_decay": 0.0,
        "warmup_steps": 0, "schedule": "constant", "grad_clip": 0.0, "groups": ()})

    c.eval = ml_collections.ConfigDict()
    # name -> (sketch split, photo split)
    c.eval.splits = {"test": ("test", "test")}
    c.eval.batch_size = 64
    c.eval.ks = (1, 5, 10)
    c.eval.category_metrics = ()
    c.eval.grid = {"num_queries": 8, "top_k": 5}
    return c
