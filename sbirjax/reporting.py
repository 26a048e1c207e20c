"""Progress and metrics: a line a person can follow on stdout, JSONL, and TensorBoard events.

Only process 0 writes. TensorBoard files come from tensorboardX (no TensorFlow). The workdir may be
local or on GCS (`gs://...`, which needs gcsfs for etils.epath and google-cloud-storage for
tensorboardX).
"""
from __future__ import annotations

import json
import sys
import time

import jax
import numpy as np
from etils import epath

from sbirjax import rundir
from sbirjax.paths import is_remote


class JsonlLog:
    """Lines appended to a JSONL file.

    A local file is opened for appending and line-buffered, so a crash loses nothing written. GCS
    objects cannot be appended to: there the object is rewritten whole (the lines it held when the
    run started plus this run's) at most every `flush_every_s` seconds and at close, so a run killed
    without warning loses at most that much of its log (its checkpoints are unaffected).
    """

    def __init__(self, path, *, flush_every_s: float = 60.0, rewrite: bool | None = None):
        self.path = epath.Path(path)
        self.remote = is_remote(path) if rewrite is None else rewrite  # rewrite: tests, locally
        self.flush_every_s, self.last_flush = flush_every_s, time.time()
        if self.remote:
            self._lines = [self.path.read_text()] if self.path.exists() else []
        else:
            self._file = open(self.path, "a", buffering=1)

    def write(self, line: str) -> None:
        if not self.remote:
            self._file.write(line + "\n")
            return
        self._lines.append(line + "\n")
        if time.time() - self.last_flush >= self.flush_every_s:
            self.flush()

    def flush(self) -> None:
        if self.remote:
            self.path.write_text("".join(self._lines))
            self.last_flush = time.time()
        else:
            self._file.flush()

    def close(self) -> None:
        self.flush()
        if not self.remote:
            self._file.close()


def drop_records_after(path, step: int) -> int:
    """Remove the records of steps after `step` from a JSONL metrics file (a resumed run writes
    them again), and a last line cut short by a crash; returns how many lines were dropped."""
    path = epath.Path(path)
    if not path.exists():
        return 0
    lines = path.read_text().splitlines()
    keep = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if int(record.get("step", 0)) <= step:
            keep.append(line)
    if len(keep) != len(lines):
        text = "".join(line + "\n" for line in keep)
        if is_remote(path):
            path.write_text(text)
        else:  # write-then-rename: a crash now cannot leave a half-written log
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(text)
            tmp.replace(path)
    return len(lines) - len(keep)


class Reporter:
    def __init__(self, workdir: str, total_steps: int, *, start_step: int = 0):
        self.main = jax.process_index() == 0
        self.total, self.start_step = total_steps, start_step
        self.t0, self.last_t, self.last_step = time.time(), time.time(), start_step
        self._jsonl = self._tb = None
        if self.main:
            workdir = epath.Path(workdir)
            workdir.mkdir(parents=True, exist_ok=True)
            # The steps after the checkpoint (all of them when there is none) run again: their
            # old records go.
            drop_records_after(workdir / rundir.METRICS, start_step)
            self._jsonl = JsonlLog(workdir / rundir.METRICS)
            from tensorboardX import SummaryWriter
            self._tb = SummaryWriter(str(workdir / "tensorboard"))

    def log(self, msg: str) -> None:
        if self.main:
            print(msg, flush=True)

    def write(self, step: int, kind: str, values: dict) -> None:
        """Record scalars of `kind` ('train' or an eval split name) at `step`."""
        if not self.main:
            return
        scalars = {k: _py(v) for k, v in values.items()}
        self._jsonl.write(json.dumps({"step": step, "kind": kind, **scalars}))
        for k, v in scalars.items():
            if isinstance(v, (int, float)) and np.isfinite(v):
                self._tb.add_scalar(f"{kind}/{k}", v, step)

    def progress(self, step: int, values: dict) -> None:
        """Step, losses, steps/s and ETA on one line."""
        now = time.time()
        rate = (step - self.last_step) / max(now - self.last_t, 1e-9)
        self.last_t, self.last_step = now, step
        eta = (self.total - step) / rate if rate > 0 else float("nan")
        shown = " ".join(f"{k}={_py(v):.4g}" for k, v in sorted(values.items()))
        self.log(f"[{step:>6d}/{self.total}] {shown} | {rate:.2f} steps/s | "
                 f"ETA {_hms(eta)} | elapsed {_hms(now - self.t0)}")
        self.write(step, "train", dict(values, steps_per_s=rate))

    def close(self) -> None:
        if self.main:
            self._jsonl.close()
            self._tb.close()
        sys.stdout.flush()


def _py(v):
    v = np.asarray(v)
    return v.item() if v.ndim == 0 else v.tolist()


def _hms(seconds: float) -> str:
    if not np.isfinite(seconds):
        return "?"
    s = int(seconds)
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"
