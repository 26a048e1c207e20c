"""Shared test set-up: a tiny synthetic world, miniature real downloads, and a shrink function
for any config."""
import os

TINY_WORLD = dict(instances_per_category=3, test_instances_per_category=1, num_users=7,
                  num_test_users=3, train_sketches_per_instance=3, test_sketches_per_instance=3,
                  seen_user_sketches_per_test_instance=3, photo_size=32)
# A committed tiny CLIP snapshot (32 px images, 16 text positions):
# tests/fixtures/make_clip_fixture.py
CLIP_FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "clip_tiny")


def manual_dir(name: str, root: str) -> str:
    """A miniature download of real dataset `name` in its official layout, written once under
    `root`. Category datasets get enough sketches per class for the DSH hold-out (50 / 10 queries
    per class) to leave training sketches."""
    from tests import fixtures_category, fixtures_qmul
    path = os.path.join(root, name)
    if os.path.exists(path):
        return path
    if name in ("shoev2", "chairv2"):
        fixtures_qmul.write(path, {"shoev2": "ShoeV2", "chairv2": "ChairV2"}[name])
    elif name == "sketchy":
        fixtures_category.write_sketchy(path, spec=fixtures_category.scaled_spec(name, 6, 55))
    elif name == "tuberlin":
        fixtures_category.write_tuberlin(path, spec=fixtures_category.scaled_spec(name, 6, 14))
    elif name == "quickdraw":
        fixtures_category.write_quickdraw(path)
    else:
        raise KeyError(f"no miniature download for dataset {name!r}")
    return path


def load_config(path: str, arg=None):
    """`get_config(arg)` of a config file (a path relative to the repository root, or absolute)."""
    import importlib.util
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    spec = importlib.util.spec_from_file_location("cfg", os.path.join(root, path))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.get_config() if arg is None else mod.get_config(arg)


def shrink(config, data_dir: str, *, steps: int = 4, manual_root: str | None = None):
    """Same code path, tiny sizes: a few-unit model, 32 px images, a world of 60 photos (or, for
    a real dataset, its miniature download written under `manual_root`)."""
    with config.unlocked():
        config.data.data_dir = data_dir
        if config.data.name == "synthetic":
            config.data.synthetic.update(TINY_WORLD)
        elif manual_root is not None:
            config.data.manual_dir = manual_dir(config.data.name, manual_root)
        config.data.image.size = 32
        config.data.num_threads = 1
        config.model.widths = (4, 8, 8)
        config.model.hidden = 16
        config.model.embed_dim = 8
        config.batch_size = 8
        config.total_steps = steps
        config.log_every = 1
        config.eval_every = steps
        config.checkpoint_every = 2
        config.eval.batch_size = 16
        config.eval.grid.num_queries = 2
        config.eval.grid.top_k = 3
        if config.method == "masbir":
            shrink_masbir(config)
    return config


def shrink_masbir(config):
    """MA-SBIR: a pretrained config loads the tiny committed snapshot (and its tokenizer, which
    follows model.pretrained); a from-scratch config gets a CLIP a few units wide."""
    config.data.text.max_length = 16
    if config.model.pretrained:
        config.model.pretrained = CLIP_FIXTURE
        return
    config.data.text.vocab_size = 600  # the generated vocabulary; the text tower follows
    config.model.projection_dim = 8
    for tower, heads in ((config.model.vision, 2), (config.model.text, 2)):
        tower.width, tower.layers, tower.heads, tower.mlp_dim = 16, 1, heads, 32
    config.model.vision.patch_size = 8
    config.model.text.max_positions = 16


def all_config_files():
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
    return sorted(os.path.join(root, f) for f in os.listdir(root)
                  if f.endswith(".py") and f not in ("__init__.py", "common.py"))


def untrained_run(root: str, *, image_size: int = 16) -> str:
    """An untrained tiny Triplet-SN run: its config.json only (no dataset, no checkpoint; a
    Searcher initialises it from its seed). Returns the workdir."""
    import pathlib
    config = shrink(load_config("configs/synthetic_triplet.py"), os.path.join(root, "tfds"),
                    steps=0)
    with config.unlocked():
        config.data.image.size = image_size
    run = pathlib.Path(root) / "run"
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(config.to_json_best_effort(indent=2, sort_keys=True))
    return str(run)


def random_photos(folder: str, n: int, *, seed: int = 0) -> str:
    """`n` random PNG photos of 24 x 20 pixels in `folder`."""
    import numpy as np
    import PIL.Image
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        PIL.Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(
            os.path.join(folder, f"p{i:02d}.png"))
    return folder


def stylemeup_config(meta: dict, loss: dict):
    """StyleMeUp's declared config (sbirjax/defaults.py `stylemeup`) with the `meta` and `loss`
    values a test sets; every other key keeps its declared default."""
    from sbirjax import defaults
    config = defaults.stylemeup()
    config.meta.update(meta)
    config.loss.update(loss)
    return config
