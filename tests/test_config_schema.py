"""One config schema: every key is declared once with its default (sbirjax/defaults.py,
sbirjax/defaults_masbir.py), every declared key can be overridden from the command line on every
config file, and the library reads `config.key`, never `config.get(key, default)`."""
import glob
import os
import re

import ml_collections
import pytest
from absl import flags
from ml_collections import config_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "configs", "*.py")))


def leaves(config, prefix=""):
    """(dotted key, value) of every leaf of a ConfigDict."""
    for key in sorted(config.keys()):
        value = config[key]
        name = f"{prefix}{key}"
        if isinstance(value, ml_collections.ConfigDict):
            yield from leaves(value, name + ".")
        else:
            yield name, value


def as_flag(value) -> str:
    if isinstance(value, str):
        return value
    return repr(value)


@pytest.mark.parametrize("path", CONFIGS)
def test_every_declared_key_overrides_from_the_command_line(path):
    """Each leaf is set on the command line to its own value: the flag parser must accept the key
    and its type, and the config must come back equal."""
    full = os.path.join(ROOT, path)
    fv = flags.FlagValues()
    config_flags.DEFINE_config_file("config", full, "", flag_values=fv, lock_config=True)
    fv(["prog"])
    base = fv.config
    pairs = [(k, v) for k, v in leaves(base) if v is not None]
    assert len(pairs) > 40, pairs  # the schema is all there
    # Override flags are made from the argv given when the flag is defined, as in a real run.
    argv = ["prog", f"--config={full}", *[f"--config.{k}={as_flag(v)}" for k, v in pairs]]
    fv2 = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, "", flag_values=fv2, lock_config=True,
                                    sys_argv=argv)
    fv2(argv)
    assert fv2.config.to_dict() == base.to_dict()


def test_base_declares_the_keys_every_method_reads():
    from sbirjax import defaults, defaults_masbir
    for config in (defaults.base(), defaults.stylemeup(), defaults_masbir.base()):
        for key in ("eval.protocol", "eval.similarity", "eval.select", "eval.category_metrics",
                    "data.holdout_fraction", "data.image.center_crop", "data.synthetic.num_users",
                    "optim.warmup_fraction", "model.backbone", "mesh.fsdp", "loss"):
            node = config
            for part in key.split("."):
                assert part in node, (key, config.method)
                node = node[part]


# Reads of a config with a default in the reading code: `<something config-like>.get(`.
_GET = re.compile(r"(?<!`)\b(\w*config\w*|optim|model|eval|data|image|augment|m)\.get\(")


def test_library_reads_config_keys_without_get_defaults():
    found = []
    for path in glob.glob(os.path.join(ROOT, "sbirjax", "**", "*.py"), recursive=True):
        with open(path) as f:
            for i, line in enumerate(f, 1):
                if _GET.search(line) and "# not a config" not in line:
                    found.append(f"{os.path.relpath(path, ROOT)}:{i}: {line.strip()}")
    assert not found, "\n".join(found)


def test_get_config_takes_one_argument_format():
    """`file.py:arg`: the argument is a string (or absent), parsed by the config file itself."""
    from tests import helpers
    for path in CONFIGS:
        c = helpers.load_config(path)
        assert isinstance(c, ml_collections.ConfigDict)
