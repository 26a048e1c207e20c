"""Imports only go down: every module of sbirjax/ and tfds_builders/ belongs to one layer of LAYERS
(docs/design.md, "Layers") and imports only its own unit and the layers below it. Imports inside
functions count as much as those at the top of a module, and so do modules named in strings for
importlib ("tfds_builders.qmul_fg:Shoev2"). No import cycle, between modules or between units."""
import ast
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("sbirjax", "tfds_builders")

# Lowest first: {unit: the module prefixes it owns}. A module belongs to the unit of its longest
# matching prefix. It may import modules of its own unit and of any unit in a lower layer. The units
# of one layer are independent (none imports another), except in the run core, whose modules may
# import each other as long as there is no cycle.
LAYERS = (
    ("base", {
        "errors": ("sbirjax.errors",),     # the boundary for user errors
        "allocator": ("sbirjax.allocator",),  # glibc's malloc settings, before jax starts
        "hub": ("sbirjax.hub",),           # a snapshot directory or Hugging Face Hub id
        "paths": ("sbirjax.paths",),       # local or object-store paths
    }),
    ("generators", {  # the synthetic world: pure numpy, the TFDS builder's input
        "generators": ("sbirjax.data.synthetic", "sbirjax.data.synthetic_shapes",
                       "sbirjax.data.synthetic_styles"),
    }),
    ("dataset builders", {
        "tfds_builders": ("tfds_builders",),
    }),
    ("parts", {
        "data": ("sbirjax.data",),
        "nets": ("sbirjax.nets",),
        "rundir": ("sbirjax.rundir",),     # a run directory's files
        "sharding": ("sbirjax.sharding",),  # the device mesh
    }),
    ("methods", {
        "methods": ("sbirjax.methods",),
    }),
    ("evaluation", {
        "evaluation": ("sbirjax.evaluation",),
    }),
    ("run core", {name: (f"sbirjax.{name}",) for name in (
        "state", "steps", "optim", "compiled", "checkpoint", "reporting", "distributed",
        "defaults", "defaults_masbir", "config_check", "run_state", "train")}),
    ("commands", {
        "main": ("sbirjax.main",),
        "search": ("sbirjax.search",),
        "tools": ("sbirjax.tools",),
        "data.build": ("sbirjax.data.build",),
    }),
)
SIDEWAYS = {"run core"}  # layers whose units may import each other (without a cycle)
# The training loop is imported by the entry point alone: the tools, the finished-run restorer,
# the search and the benchmarks share its parts through compiled.py.
TRAIN_LOOP, TRAIN_LOOP_IMPORTERS = "sbirjax.train", {"sbirjax.main"}

LAYER_OF = {unit: (i, name) for i, (name, units) in enumerate(LAYERS) for unit in units}
PREFIXES = sorted(((p, unit) for _, units in LAYERS for unit, ps in units.items() for p in ps),
                  key=lambda pu: -len(pu[0]))
DYNAMIC = re.compile(r"^((?:sbirjax|tfds_builders)(?:\.\w+)+):\w+$")  # "module:attribute"


def modules(directory=ROOT, packages=PACKAGES) -> dict[str, str]:
    """{dotted name: file} of every module; a package is named by its __init__.py."""
    found = {}
    for package in packages:
        for folder, _, files in os.walk(os.path.join(directory, package)):
            for f in files:
                if f.endswith(".py"):
                    path = os.path.join(folder, f)
                    name = os.path.relpath(path, directory)[:-3].replace(os.sep, ".")
                    found[name.removesuffix(".__init__")] = path
    return found


def imports(source: str, name: str, is_package: bool, known) -> set[str]:
    """The project modules a module's source imports, anywhere in it: `import a.b`, `from a import
    b` (b a module, else a), relative imports and "module:attribute" strings."""
    found = set()
    here = name if is_package else name.rpartition(".")[0]

    def add(target):
        while target and target not in known:  # an attribute or a name of the package itself
            target = target.rpartition(".")[0]
        if target and target.split(".")[0] in PACKAGES:
            found.add(target)

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = here.rsplit(".", node.level - 1)[0] if node.level > 1 else here
                base = f"{parent}.{base}" if base else parent
            for alias in node.names:
                add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = DYNAMIC.match(node.value)
            if match:
                add(match.group(1))
    found.discard(name)
    return found


def graph(directory=ROOT, packages=PACKAGES) -> dict[str, set[str]]:
    """{module of `packages`: the modules of sbirjax/ and tfds_builders/ it imports}."""
    mods = modules(directory, dict.fromkeys((*PACKAGES, *packages)))
    return {name: imports(open(path, encoding="utf-8").read(), name,
                          path.endswith("__init__.py"), mods)
            for name, path in mods.items() if name.split(".")[0] in packages}


def unit_of(module: str) -> str | None:
    for prefix, unit in PREFIXES:
        if module == prefix or module.startswith(prefix + "."):
            return unit
    return None


def spanning_packages(mods) -> set[str]:
    """Packages holding modules of more than one layer (sbirjax, sbirjax.data): their __init__
    runs whenever any of their modules is imported, so it must import nothing."""
    layers = {}
    for m in mods:
        unit = unit_of(m)
        if unit is None:
            continue
        parts = m.split(".")
        for i in range(1, len(parts)):
            layers.setdefault(".".join(parts[:i]), set()).add(LAYER_OF[unit][0])
    return {p for p, ls in layers.items() if len(ls) > 1}


def upward(edges) -> list[str]:
    """Every import a layer does not allow, as 'importer -> imported (why)'."""
    bad = []
    for src, targets in sorted(edges.items()):
        su = unit_of(src)
        for dst in sorted(targets):
            du = unit_of(dst)
            if su is None or du is None or su == du:
                continue
            (si, sname), (di, dname) = LAYER_OF[su], LAYER_OF[du]
            if di > si:
                bad.append(f"{src} -> {dst} (layer {sname!r} imports the higher {dname!r})")
            elif di == si and sname not in SIDEWAYS:
                bad.append(f"{src} -> {dst} (units {su!r} and {du!r} of layer {sname!r} are "
                           "independent)")
    return bad


def cycle(edges) -> list[str] | None:
    """One cycle of a directed graph {node: successors}, or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def collapse(edges, key) -> dict[str, set[str]]:
    out = {}
    for src, targets in edges.items():
        for dst in targets:
            a, b = key(src), key(dst)
            if a is not None and b is not None and a != b:
                out.setdefault(a, set()).add(b)
    return out


@pytest.fixture(scope="module")
def edges():
    return graph()


def test_every_module_has_a_layer(edges):
    spanning = spanning_packages(edges)
    assert sorted(m for m in edges if unit_of(m) is None and m not in spanning) == []


def test_imports_only_go_down(edges):
    assert upward(edges) == []


def test_packages_that_span_layers_import_nothing(edges):
    spanning = spanning_packages(edges)
    assert spanning == {"sbirjax", "sbirjax.data"}
    assert {p: sorted(edges[p]) for p in spanning if edges[p]} == {}


def test_only_the_entry_point_imports_the_train_loop(edges):
    benchmarks = graph(packages=("benchmarks",))
    assert len(benchmarks) > 5
    importers = {m for m, targets in {**edges, **benchmarks}.items() if TRAIN_LOOP in targets}
    assert importers == TRAIN_LOOP_IMPORTERS


def subpackage(module: str) -> str | None:
    """sbirjax.<name>: the subpackage (or top-level module) of sbirjax a module is in. A command is
    a node of its own: sbirjax.data.build lives in sbirjax/data for its `python -m` name, and
    nothing imports a command (the top layer's units are independent), so it closes no cycle."""
    unit = unit_of(module)
    if unit is not None and LAYER_OF[unit][1] == "commands":
        return unit
    return ".".join(module.split(".")[:2]) if module.startswith("sbirjax.") else None


def test_no_import_cycle(edges):
    assert cycle(edges) is None, "modules"
    assert cycle(collapse(edges, unit_of)) is None, "units of LAYERS"
    assert cycle(collapse(edges, subpackage)) is None, "subpackages of sbirjax"


def test_checker_catches_upward_imports(tmp_path):
    """The checker itself: upward imports at the top and inside a function, a sideways import
    between independent units, a string for importlib and a cycle are all reported."""
    for package in ("sbirjax", "sbirjax/data", "sbirjax/nets", "tfds_builders"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "sbirjax" / "errors.py").write_text("from sbirjax.nets import clip\n")
    (tmp_path / "sbirjax" / "nets" / "clip.py").write_text(
        "def f():\n    from sbirjax import train\n")
    (tmp_path / "sbirjax" / "data" / "captions.py").write_text(
        "from sbirjax.nets import clip\nfrom . import augment\n")
    (tmp_path / "sbirjax" / "data" / "augment.py").write_text("import numpy\n")
    (tmp_path / "sbirjax" / "train.py").write_text("import sbirjax.errors\n")
    (tmp_path / "tfds_builders" / "common.py").write_text(
        "BUILDERS = {'x': 'sbirjax.data.captions:Examples'}\n")
    found = graph(str(tmp_path))
    assert found["sbirjax.data.captions"] == {"sbirjax.nets.clip", "sbirjax.data.augment"}
    assert upward(found) == [
        "sbirjax.data.captions -> sbirjax.nets.clip (units 'data' and 'nets' of layer 'parts' are "
        "independent)",
        "sbirjax.errors -> sbirjax.nets.clip (layer 'base' imports the higher 'parts')",
        "sbirjax.nets.clip -> sbirjax.train (layer 'parts' imports the higher 'run core')",
        "tfds_builders.common -> sbirjax.data.captions (layer 'dataset builders' imports the "
        "higher 'parts')",
    ]
    assert cycle(found) == ["sbirjax.nets.clip", "sbirjax.train", "sbirjax.errors",
                            "sbirjax.nets.clip"]
