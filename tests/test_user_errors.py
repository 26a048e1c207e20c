"""Every user error ends in one clear message, exit status 2, no traceback, and nothing lost.

One case per line: what is run (a command, or a call through the same boundary the command line
uses), the expected exit status, words the message must hold, and the files that must not change.

  CONFIG_CASES  bad config values, through main.run (the entry point's own check, before any data
                build or compile); fast.
  COMMAND_CASES the command lines: flags, config files, tools on something that is not a run,
                a run directory in use; fast (they stop before training).
  RUN_CASES     a finished tiny run is resumed, damaged, locked: slow (each trains a few steps).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys

import pytest

from tests import helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = "--config=tests/fixtures/configs/tiny_triplet.py"
MAIN = [sys.executable, "-m", "sbirjax.main"]


def snapshot(folder) -> dict:
    """{relative path: sha1} of every file under `folder` (missing folder: {})."""
    out = {}
    for base, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(base, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = hashlib.sha1(f.read()).hexdigest()
    return out


def assert_clear(rc, text, want_rc, words):
    assert rc == want_rc, text
    assert "Traceback" not in text, text
    if want_rc == 2:
        assert "error:" in text, text
    for w in words:
        assert w in text, (w, text)


# ---------------------------------------------------------------------------------------------
# config values: main.run through the error boundary, on the tiny config

@dataclasses.dataclass(frozen=True)
class ConfigCase:
    overrides: dict
    words: tuple
    config: str = "configs/synthetic_triplet.py"
    arg: str | None = None


CONFIG_CASES = {
    "negative_steps": ConfigCase({"total_steps": -5}, ("total_steps=-5", ">= 0")),
    "keep_zero": ConfigCase({"keep_checkpoints": 0}, ("keep_checkpoints=0", ">= 1")),
    "keep_negative": ConfigCase({"keep_checkpoints": -1}, ("keep_checkpoints=-1",)),
    "eval_batch_zero": ConfigCase({"eval.batch_size": 0}, ("eval.batch_size=0",)),
    "batch_zero": ConfigCase({"batch_size": 0}, ("batch_size=0",)),
    "image_zero": ConfigCase({"data.image.size": 0}, ("data.image.size=0",)),
    "image_vs_depth": ConfigCase({"data.image.size": 30}, ("data.image.size=30", "multiple of 8")),
    "several_at_once": ConfigCase({"eval.batch_size": 0, "log_every": -1},
                                  ("eval.batch_size=0", "log_every=-1")),
    "method": ConfigCase({"method": "tripletsn"}, ("method='tripletsn'", "triplet_sn")),
    "dataset": ConfigCase({"data.name": "shoes"}, ("data.name='shoes'", "shoev2")),
    "pairing": ConfigCase({"data.pairing": "pairs"}, ("data.pairing", "instance")),
    "optimiser": ConfigCase({"optim.name": "adamx"}, ("optim.name='adamx'", "adamw_hf")),
    "schedule": ConfigCase({"optim.schedule": "linear"}, ("optim.schedule", "cosine")),
    "lr": ConfigCase({"optim.lr": 0.0}, ("optim.lr=0.0",)),
    "flip": ConfigCase({"data.augment.flip_prob": 1.5}, ("flip_prob=1.5", "[0, 1]")),
    "crop": ConfigCase({"data.augment.crop_scale_min": 0.0}, ("crop_scale_min=0.0",)),
    "protocol": ConfigCase({"eval.protocol": "fg"}, ("eval.protocol='fg'", "fine_grained")),
    "similarity": ConfigCase({"eval.similarity": "dot"}, ("eval.similarity='dot'", "cosine")),
    "ks": ConfigCase({"eval.ks": (0, 10)}, ("eval.ks",)),
    "select": ConfigCase({"eval.select": "tset/acc@1"}, ("eval.select='tset/acc@1'", "test")),
    "devices": ConfigCase({"mesh.num_devices": 64}, ("mesh.num_devices=64", "devices are visible")),
    "fsdp": ConfigCase({"mesh.fsdp": 0}, ("mesh.fsdp=0",)),
    "episode": ConfigCase({"meta.episode": "shuffled"}, ("meta.episode='shuffled'", "user_split"),
                          config="configs/synthetic_stylemeup.py"),
    "update_rule": ConfigCase({"meta.update_rule": "reptile"}, ("update_rule='reptile'", "tseng"),
                              config="configs/synthetic_stylemeup.py"),
    "hessian": ConfigCase({"meta.hessian": "both"}, ("meta.hessian='both'", "forward"),
                          config="configs/synthetic_stylemeup.py"),
    "task_chunk": ConfigCase({"meta.task_chunk": 5}, ("meta.task_chunk=5", "divisor"),
                             config="configs/synthetic_stylemeup.py"),
    "unroll_chunks": ConfigCase({"meta.unroll_chunks": True}, ("meta.unroll_chunks=True",
                                                                "meta.task_chunk"),
                                config="configs/synthetic_stylemeup.py"),
    "embed_dim": ConfigCase({"model.embed_dim": -1}, ("model.embed_dim=-1", ">= 0")),
    "stylemeup_embed_dim": ConfigCase({"model.embed_dim": 0}, ("model.embed_dim=0", ">= 1"),
                                      config="configs/synthetic_stylemeup.py"),
    "stylemeup_trunk_size": ConfigCase({"model.backbone": "efficientnet_lite0",
                                        "data.image.size": 36},
                                       ("data.image.size=36", "decoder doubles"),
                                       config="configs/synthetic_stylemeup.py"),
    "clip_patch": ConfigCase({"data.image.size": 36}, ("data.image.size=36", "patch"),
                             config="configs/synthetic_masbir.py"),
}


def _set(config, key, value):
    *parents, last = key.split(".")
    node = config
    for p in parents:
        node = node[p]
    node[last] = value


@pytest.mark.parametrize("name", sorted(CONFIG_CASES))
def test_bad_config_value(name, tmp_path):
    from sbirjax import errors, main
    case = CONFIG_CASES[name]
    config = helpers.shrink(helpers.load_config(case.config, case.arg), str(tmp_path / "tfds"))
    with config.unlocked():
        for key, value in case.overrides.items():
            _set(config, key, value)
    workdir = tmp_path / "run"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = errors.guarded(lambda argv: main.run(config, str(workdir)))([])
    assert_clear(rc, err.getvalue(), 2, case.words)
    # Checked before anything is built or written.
    assert not workdir.exists() and not (tmp_path / "tfds").exists()


# ---------------------------------------------------------------------------------------------
# command lines that stop before training

def _run(argv, cwd=ROOT, env=None):
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})
    return done.returncode, done.stdout + done.stderr


@pytest.fixture
def not_a_run(tmp_path):
    d = tmp_path / "photos"
    d.mkdir()
    (d / "a.txt").write_text("not a run")
    return d


@pytest.fixture
def fake_run(tmp_path):
    """A run directory with metrics of one evaluated split, as compare reads it."""
    d = tmp_path / "run_s0"
    d.mkdir()
    (d / "config.json").write_text("{}")
    (d / "metrics.jsonl").write_text(
        json.dumps({"step": 4, "kind": "test", "acc@1": 0.1, "rank_avg": 9.0}) + "\n")
    (d / "results.json").write_text(json.dumps({"step": 4, "test": {"acc@1": 0.1}}))
    return d


# (argv, fixture that gives the folder to put in {dir} and to keep unchanged, exit status, words)
COMMAND_CASES = {
    "typo_key": (MAIN + [TINY, "--config.total_stepz=5"], None, 2,
                 ("unknown config key", "total_steps")),
    "typo_nested_key": (MAIN + [TINY, "--config.optim.lrr=1"], None, 2, ("lrr", "lr")),
    "wrong_type": (MAIN + [TINY, "--config.total_steps=abc"], None, 2, ("total_steps", "abc")),
    "unknown_flag": (MAIN + [TINY, "--workdirr=x"], None, 2, ("workdirr",)),
    "no_config_file": (MAIN + ["--config=configs/nope.py"], None, 2,
                       ("configs/nope.py", "no such file")),
    "bad_config_arg": (MAIN + ["--config=configs/synthetic_stylemeup.py:bogus"], None, 2,
                       ("bogus", "inner0")),
    "stray_argument": (MAIN + [TINY, "extra"], None, 2, ("extra",)),
    "bad_value_cli": (MAIN + [TINY, "--config.keep_checkpoints=0", "--workdir={dir}/run"],
                      "not_a_run", 2, ("keep_checkpoints=0",)),
    "check_only_ok": (MAIN + [TINY, "--check_only"], None, 0, ("config ok",)),
    "compare_not_a_run": ([sys.executable, "-m", "sbirjax.tools.compare", "{dir}"], "not_a_run", 2,
                          ("metrics.jsonl", "not found")),
    "compare_bad_split": ([sys.executable, "-m", "sbirjax.tools.compare", "{dir}", "--split=tset"],
                          "fake_run", 2, ("--split=tset", "['test']")),
    "compare_bad_metric": ([sys.executable, "-m", "sbirjax.tools.compare", "{dir}",
                            "--metrics=acc@1,rank_avgg"], "fake_run", 2,
                           ("rank_avgg", "rank_avg")),
    "compare_no_runs": ([sys.executable, "-m", "sbirjax.tools.compare"], None, 2,
                        ("run director",)),
    "compare_gap_curves_without_gap_split": (
        [sys.executable, "-m", "sbirjax.tools.compare", "{dir}", "--gap_curves={dir}/../g.png"],
        "fake_run", 2, ("--gap_curves needs --gap_split",)),
    "param_drift_not_a_run": ([sys.executable, "-m", "sbirjax.tools.param_drift", TINY,
                               "--workdir={dir}"], "not_a_run", 2, ("not a sbirjax run",)),
    "param_drift_missing": ([sys.executable, "-m", "sbirjax.tools.param_drift", TINY,
                             "--workdir={dir}/nope"], "not_a_run", 2, ("no such directory",)),
    "probe_not_a_run": ([sys.executable, "-m", "sbirjax.tools.adaptation_probe",
                         "--config=configs/synthetic_stylemeup.py", "--workdir={dir}"],
                        "not_a_run", 2, ("not a sbirjax run",)),
    "search_no_command": ([sys.executable, "-m", "sbirjax.search"], None, 2, ("index",)),
    "search_index_not_a_run": ([sys.executable, "-m", "sbirjax.search", "index",
                                "--workdir={dir}", "--photos={dir}", "--out={dir}/../idx"],
                               "not_a_run", 2, ("config.json",)),
    "build_unknown_dataset": ([sys.executable, "-m", "sbirjax.data.build", "shoes"], None, 2,
                              ("shoes", "shoev2")),
    "build_missing_download": ([sys.executable, "-m", "sbirjax.data.build", "shoev2",
                                "--manual_dir={dir}/nope", "--data_dir={dir}/../tfds"],
                               "not_a_run", 2, ("shoev2",)),
}


@pytest.mark.parametrize("name", sorted(COMMAND_CASES))
def test_command_line(name, request):
    argv, fixture, want_rc, words = COMMAND_CASES[name]
    folder = request.getfixturevalue(fixture) if fixture else None
    argv = [a.replace("{dir}", str(folder)) for a in argv]
    before = snapshot(folder) if folder else None
    rc, text = _run(argv)
    assert_clear(rc, text, want_rc, words)
    if folder:
        assert snapshot(folder) == before  # the tool wrote nothing into what it was pointed at


def test_second_run_on_a_workdir_in_use(tmp_path):
    """A live process holds the lock (here: this test's own process): refused, naming it."""
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "run.lock").write_text(json.dumps(
        {"pid": os.getpid(), "host": __import__("socket").gethostname(), "started": "now",
         "argv": "python -m sbirjax.main (the other run)"}))
    before = snapshot(workdir)
    rc, text = _run(MAIN + [TINY, f"--workdir={workdir}"],
                    env={"TFDS_DATA_DIR": str(tmp_path / "tfds")})
    assert_clear(rc, text, 2, ("in use by process", str(os.getpid()), "the other run"))
    assert snapshot(workdir) == before


def test_debug_shows_the_traceback():
    rc, text = _run(MAIN + [TINY, "--config.keep_checkpoints=0", "--check_only", "--debug"])
    assert rc != 0 and "Traceback" in text and "keep_checkpoints" in text


# ---------------------------------------------------------------------------------------------
# a finished tiny run, resumed, damaged, locked

@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 4-step tiny run (checkpoints at steps 2 and 4) and its data dir."""
    root = tmp_path_factory.mktemp("finished")
    env = {"TFDS_DATA_DIR": str(root / "tfds")}
    rc, text = _run(MAIN + [TINY, f"--workdir={root / 'run'}"], env=env)
    assert rc == 0, text
    return root / "run", env


@pytest.fixture
def run_copy(finished, tmp_path):
    run, env = finished
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    return copy, env


def _train_records(workdir):
    with open(workdir / "metrics.jsonl") as f:
        return [json.loads(line) for line in f if '"kind": "train"' in line]


@pytest.mark.slow
@pytest.mark.parametrize("override,words", [
    ("--config.model.embed_dim=16", ("model.embed_dim=8 in the run, 16 now",
                                     "--config.model.embed_dim=8")),
    ("--config.seed=1", ("seed=0 in the run, 1 now",)),
    ("--config.batch_size=16", ("batch_size=8 in the run, 16 now",)),
])
def test_refused_resume_changes_nothing(run_copy, override, words):
    workdir, env = run_copy
    before = snapshot(workdir)
    rc, text = _run(MAIN + [TINY, f"--workdir={workdir}", override], env=env)
    assert_clear(rc, text, 2, words)
    assert snapshot(workdir) == before  # config.json, metrics.jsonl and checkpoints as they were


def _damage(workdir, how):
    step = workdir / "checkpoints" / "4"
    if how == "truncated_array":
        files = sorted((p for p in step.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
        with open(files[-1], "r+b") as f:
            f.truncate(100)
    elif how == "no_default_folder":
        shutil.rmtree(step / "default")
    elif how == "no_metadata":
        (step / "default" / "_METADATA").unlink()
        (step / "default" / "_sharding").unlink()


@pytest.mark.slow
@pytest.mark.parametrize("how", ["truncated_array", "no_default_folder", "no_metadata"])
def test_damaged_latest_checkpoint_falls_back(run_copy, how):
    workdir, env = run_copy
    _damage(workdir, how)
    rc, text = _run(MAIN + [TINY, f"--workdir={workdir}", "--config.total_steps=6"], env=env)
    assert_clear(rc, text, 0, ())
    if how != "no_metadata" or "cannot be restored" in text:  # orbax may still read the last
        assert "checkpoint of step 4" in text and "step 2 instead" in text, text
        assert (workdir / "checkpoints" / "unreadable_4").is_dir()  # kept for inspection
    steps = [r["step"] for r in _train_records(workdir)]
    assert steps == sorted(set(steps)) and steps[-1] == 6  # each step recorded once


@pytest.mark.slow
def test_no_readable_checkpoint_is_a_clear_error(run_copy):
    workdir, env = run_copy
    for step in ("2", "4"):
        shutil.rmtree(workdir / "checkpoints" / step / "default")
    before = snapshot(workdir)
    rc, text = _run(MAIN + [TINY, f"--workdir={workdir}"], env=env)
    assert_clear(rc, text, 2, ("no checkpoint in", "can be restored"))
    assert snapshot(workdir) == before


@pytest.mark.slow
def test_rerun_without_a_checkpoint_drops_the_old_records(finished, tmp_path):
    """A run killed before its first checkpoint left records; the rerun starts over."""
    run, env = finished
    workdir = tmp_path / "run"
    workdir.mkdir()
    shutil.copy(run / "metrics.jsonl", workdir / "metrics.jsonl")
    shutil.copy(run / "config.json", workdir / "config.json")
    # A stale lock: a process that is gone (pid 2**22 + 1 is above Linux's pid_max default).
    (workdir / "run.lock").write_text(json.dumps(
        {"pid": 4194305, "host": __import__("socket").gethostname()}))
    rc, text = _run(MAIN + [TINY, f"--workdir={workdir}"], env=env)
    assert_clear(rc, text, 0, ("taking it over",))
    steps = [r["step"] for r in _train_records(workdir)]
    assert steps == [1, 2, 3, 4]
    assert not (workdir / "run.lock").exists()


def test_tokenizer_override_leaves_the_pretrained_snapshot():
    """data.text.tokenizer follows model.pretrained until set itself, never the other way."""
    config = helpers.load_config("configs/masbir_sketchy.py")
    assert config.data.text.tokenizer == config.model.pretrained
    config.data.text.tokenizer = "/my/tokenizer"
    assert config.model.pretrained == "openai/clip-vit-base-patch32"
    config = helpers.load_config("configs/masbir_sketchy.py")
    config.model.pretrained = "/my/clip"
    assert config.data.text.tokenizer == "/my/clip"
