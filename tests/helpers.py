"""Shared test set-up: a tiny synthetic world and a shrink function for any config."""
import os

TINY_WORLD = dict(instances_per_category=3, test_instances_per_category=1, num_users=7,
                  num_test_users=3, train_sketches_per_instance=3, test_sketches_per_instance=3,
                  seen_user_sketches_per_test_instance=3, photo_size=32)


def shrink(config, data_dir: str, *, steps: int = 4):
    """Same code path, tiny sizes: a few-unit model, 32 px images, a world of 60 photos."""
    with config.unlocked():
        config.data.data_dir = data_dir
        if config.data.name == "synthetic":
            config.data.synthetic = dict(TINY_WORLD)
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
    return config


def all_config_files():
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
    return sorted(os.path.join(root, f) for f in os.listdir(root)
                  if f.endswith(".py") and f not in ("__init__.py", "common.py"))
