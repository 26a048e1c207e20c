"""A run directory: its file names, its lock, its config record and the resume check.

  <workdir>/config.json      the config of the run (written atomically, after the resume check)
  <workdir>/metrics.jsonl    one JSON record per log line and evaluation
  <workdir>/results.json     the last evaluation
  <workdir>/selection.json   the selected step (config.eval.select)
  <workdir>/run.lock         held by the process that trains in it (local workdirs)
  <workdir>/checkpoints/     orbax checkpoints, one folder per step

A workdir may be local or an object store path (gs://bucket/run); paths go through etils.epath.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time

from etils import epath

from sbirjax.errors import ResumeError, RunDirError
from sbirjax.paths import is_remote

CONFIG = "config.json"
METRICS = "metrics.jsonl"
RESULTS = "results.json"
SELECTION = "selection.json"
LOCK = "run.lock"
CHECKPOINTS = "checkpoints"

# Values that fix the data stream, the randomness or the parameter shapes: a resumed run must
# not change them (a change of any `model` key is refused too).
RESUME_KEYS = ("method", "seed", "batch_size", "data.name", "data.pairing", "data.train_sketches",
               "data.train_photos", "data.holdout_fraction", "data.image.size")


def write_text_atomic(path, text: str) -> None:
    """Write-then-rename locally, so a crash leaves the old file or the new one, never half of
    one (an object store writes an object whole anyway)."""
    path = epath.Path(path)
    if is_remote(path):
        path.write_text(text)
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def saved_config(workdir) -> dict | None:
    path = epath.Path(workdir) / CONFIG
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ResumeError(f"{path} is not valid JSON ({e}); restore it or use a new --workdir") \
            from None


def _lookup(tree, key: str):
    for part in key.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree


def _flatten(tree, prefix: str = "") -> dict:
    if not isinstance(tree, dict):
        return {prefix: tree}
    out = {}
    for k, v in tree.items():
        out.update(_flatten(v, f"{prefix}.{k}" if prefix else k))
    return out


def check_resume(config, workdir) -> None:
    """Refuse to resume a run whose data stream, randomness or model the config now changes."""
    saved = saved_config(workdir)
    if saved is None:
        return
    new = json.loads(config.to_json_best_effort())
    changed = [(k, _lookup(saved, k), _lookup(new, k)) for k in RESUME_KEYS
               if _lookup(saved, k) is not None and _lookup(saved, k) != _lookup(new, k)]
    old_model, new_model = (_flatten(saved.get("model", {}), "model"),
                            _flatten(new.get("model", {}), "model"))
    # A key the saved config lacks was declared later, with the value the older code used.
    changed += [(k, old_model[k], new_model.get(k)) for k in sorted(old_model)
                if old_model[k] != new_model.get(k)]
    if changed:
        listed = "; ".join(f"{k}={old!r} in the run, {now!r} now" for k, old, now in changed)
        fix = " ".join(f"--config.{k}={old!r}" for k, old, _ in changed if old is not None)
        raise ResumeError(
            f"{workdir} holds a run that the config now changes ({listed}). Resuming would "
            f"change its data stream or its parameters; use a new --workdir, or continue the "
            f"old run with {fix}")


def checkpoint_steps(workdir) -> list[int]:
    """The steps of the checkpoint folders in <workdir>/checkpoints (readable or not)."""
    path = epath.Path(workdir) / CHECKPOINTS
    if not path.exists():
        return []
    return sorted(int(p.name) for p in path.iterdir() if p.name.isdigit())


def save_config(config, workdir) -> None:
    write_text_atomic(epath.Path(workdir) / CONFIG, config.to_json_best_effort(indent=2,
                                                                               sort_keys=True))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


@contextlib.contextmanager
def lock(workdir, log=print):
    """Hold <workdir>/run.lock while training, so a second run on the same workdir is refused.

    A lock left by a crashed process (same host, process gone) is taken over with a warning. An
    object-store workdir is not locked (it has no exclusive create)."""
    if is_remote(workdir):
        yield
        return
    path = os.path.join(os.fspath(workdir), LOCK)
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%F %T"),
          "argv": " ".join(sys.argv)}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                with open(path) as f:
                    other = json.load(f)
            except (OSError, json.JSONDecodeError):
                other = {}
            pid, host = other.get("pid"), other.get("host")
            if host == me["host"] and isinstance(pid, int) and not _alive(pid):
                log(f"warning: {path} was left by process {pid}, which is gone (a crash?); "
                    "taking it over")
                os.remove(path)
                continue
            raise RunDirError(
                f"{workdir} is in use by process {pid} on {host} (started {other.get('started')}: "
                f"{other.get('argv', '?')}). Wait for it to finish or stop it, or use another "
                f"--workdir; if that process is gone, delete {path}") from None
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        break
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


def require_run(workdir, what: str = "a finished run's directory") -> epath.Path:
    """The workdir of a run (it holds config.json), or RunDirError saying what it is instead."""
    path = epath.Path(workdir)
    if not path.exists():
        raise RunDirError(f"{workdir}: no such directory; give {what} (the --workdir of "
                          "python -m sbirjax.main)")
    if not (path / CONFIG).exists():
        raise RunDirError(f"{workdir} is not a sbirjax run: it has no {CONFIG}; give {what} "
                          "(the --workdir of python -m sbirjax.main)")
    return path
