"""sbirjax's training steps side by side with the official PyTorch code's, in one run, as JSON.

  python -m benchmarks.compare_official --torch_python=/path/to/torchenv/bin/python \
      --stylemeup_code=/path/to/StyleMeUp/Code --masbir_code=/path/to/MA-ZS-SBIR \
      [--rows=stylemeup_first,stylemeup_first_unrolled,stylemeup_second,masbir] \
      [--iters=2] [--warmup=1]

The paths may also come from the environment: SBIRJAX_TORCH_PYTHON, SBIRJAX_STYLEMEUP_CODE,
SBIRJAX_MASBIR_CODE. Neither torch nor the official code is part of sbirjax: the official steps run
in that interpreter through benchmarks/official_steps.py. Without them this prints sbirjax's side
and says what is missing.

Rows (each side in its own process, one after the other, so each has the machine to itself and
its own peak RSS):
  stylemeup_first / stylemeup_second: one meta-step of 12 tasks at 256 px, latent 128, one inner
      step, first / second order. sbirjax: `benchmarks.train_step` on configs/synthetic_stylemeup.py
      at those sizes, the official episode, the tasks one at a time (task_chunk=1: each task's
      gradient taken in the loop, as the official code calls backward() per task), the fastest
      setting measured on a 2-core CPU (docs/benchmarks.md).
      sbirjax's model has the paper's FT layers, the official code none (a small share of the
      work); both have the regulariser.
  stylemeup_first_unrolled: first order with the tasks as straight-line code and lax
      convolutions (meta.unroll_chunks, model.conv_impl='xla'): faster on CPU, more memory.
  masbir: one float32 training step, batch 32, CLIP ViT-B/32 shapes (random weights), 224 px,
      30 tokens, AdamW. sbirjax: `benchmarks.masbir_step` (its train figure).
Reported per row: median seconds of each side, sbirjax / official, peak RSS of each process (whole
process, and while the timed steps ran: sbirjax's whole-process peak includes compiling), each
side's matmul rate (4096^2 float32) and sbirjax's fraction of jax's rate; the load average
before and after.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from absl import app, flags

from benchmarks import common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROWS = ("stylemeup_first", "stylemeup_first_unrolled", "stylemeup_second", "masbir")
_TORCH = flags.DEFINE_string("torch_python", os.environ.get("SBIRJAX_TORCH_PYTHON", ""),
                             "a Python with torch (env SBIRJAX_TORCH_PYTHON)")
_SMU = flags.DEFINE_string("stylemeup_code", os.environ.get("SBIRJAX_STYLEMEUP_CODE", ""),
                           "the official StyleMeUp Code folder (env SBIRJAX_STYLEMEUP_CODE)")
_MAS = flags.DEFINE_string("masbir_code", os.environ.get("SBIRJAX_MASBIR_CODE", ""),
                           "a checkout of the official MA-ZS-SBIR (env SBIRJAX_MASBIR_CODE)")
_ROWS = flags.DEFINE_list("rows", list(ROWS), f"rows to run, of {ROWS}")
_ITERS = flags.DEFINE_integer("iters", 2, "timed steps per side")
_WARMUP = flags.DEFINE_integer("warmup", 1, "untimed steps per side (sbirjax's first compiles)")

STYLEMEUP_256 = ["--config=configs/synthetic_stylemeup.py", "--config.data.image.size=256",
                 "--config.model.embed_dim=128"]
# The fastest settings measured at 256 px on a 2-core CPU (docs/benchmarks.md).
FIRST_ORDER = ["--config.meta.first_order=True", "--config.meta.task_chunk=1"]
SECOND_ORDER = ["--config.meta.task_chunk=1"]
SETTINGS = {"stylemeup_first": FIRST_ORDER, "stylemeup_second": SECOND_ORDER,
            "stylemeup_first_unrolled": FIRST_ORDER + ["--config.meta.unroll_chunks=True",
                                                       "--config.model.conv_impl=xla"]}


def last_json(text: str) -> dict:
    """The last JSON object a benchmark printed (indented or on one line)."""
    start = text.rfind("\n{")
    start = 0 if text.startswith("{") and start < 0 else start + 1
    return json.loads(text[start:])


def run(cmd: list[str]) -> dict:
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if out.returncode:
        return {"error": f"exit {out.returncode}: {out.stderr.strip().splitlines()[-1:]}",
                "command": " ".join(cmd)}
    try:
        return last_json(out.stdout.strip())
    except ValueError:
        return {"error": "printed no JSON: " + (out.stderr.strip().splitlines() or [""])[-1],
                "command": " ".join(cmd)}


def sbirjax_side(row: str) -> dict:
    timing = [f"--iters={_ITERS.value}", f"--warmup={_WARMUP.value}"]
    if row == "masbir":
        r = run([sys.executable, "-m", "benchmarks.masbir_step", *timing])
        if "error" in r:
            return r
        t = r["train"]
        return {"step_s": t["step_time_s"]["median_s"], "peak_rss_mb": r["peak_host_rss_mb"],
                "steps_peak_rss_mb": t["step_time_s"].get("steps_peak_rss_mb"),
                "matmul_gflops": r["matmul_peak_gflops"],
                "fraction_of_matmul": t.get("fraction_of_matmul_peak"), "flops": t.get("flops"),
                "keep_freed_memory": r["machine"].get("keep_freed_memory")}
    r = run([sys.executable, "-m", "benchmarks.train_step", *STYLEMEUP_256, *SETTINGS[row],
             *timing])
    if "error" in r:
        return r
    u = r["utilisation"]
    return {"step_s": r["step_time_s"]["median_s"], "peak_rss_mb": r["peak_host_rss_mb"],
            "steps_peak_rss_mb": r["step_time_s"].get("steps_peak_rss_mb"),
            "matmul_gflops": u["matmul_peak_gflops"],
            "fraction_of_matmul": u.get("fraction_of_matmul_peak"), "flops": u.get("flops"),
            "xla_temp_mb": r.get("xla_memory_mb", {}).get("temp"),
            "keep_freed_memory": r["machine"].get("keep_freed_memory")}


def official_side(row: str) -> dict:
    code = _MAS.value if row == "masbir" else _SMU.value
    missing = [name for name, v in (("--torch_python", _TORCH.value),
                                    ("--masbir_code" if row == "masbir" else "--stylemeup_code",
                                     code)) if not v or not os.path.exists(v)]
    if missing:
        return {"missing": f"give {' and '.join(missing)} (or the SBIRJAX_* environment "
                           "variables) to time the official code"}
    which = ["--which=masbir"] if row == "masbir" else ["--which=stylemeup"]
    order = ["--first_order"] if row.startswith("stylemeup_first") else []
    r = run([_TORCH.value, os.path.join("benchmarks", "official_steps.py"), *which, *order,
             f"--code={code}", f"--iters={_ITERS.value}", f"--warmup={_WARMUP.value}",
             f"--threads={os.cpu_count()}"])
    if "error" in r:
        return r
    return {"step_s": r["median_s"], "peak_rss_mb": r["peak_rss_mb"],
            "steps_peak_rss_mb": r.get("steps_peak_rss_mb"), "matmul_gflops": r["matmul_gflops"],
            "torch": r["torch"], "setting": r["setting"]}


def main(argv):
    del argv
    unknown = sorted(set(_ROWS.value) - set(ROWS))
    if unknown:
        raise app.UsageError(f"unknown rows {unknown}; choose from {ROWS}")
    load_before, t0 = os.getloadavg(), time.perf_counter()
    rows = []
    for row in _ROWS.value:
        ours, theirs = sbirjax_side(row), official_side(row)
        entry = {"row": row, "sbirjax": ours, "official": theirs}
        if "step_s" in ours and "step_s" in theirs:
            entry["time_ratio"] = ours["step_s"] / theirs["step_s"]
            entry["memory_ratio"] = ours["peak_rss_mb"] / theirs["peak_rss_mb"]
            if ours.get("steps_peak_rss_mb") and theirs.get("steps_peak_rss_mb"):
                # without compilation: the peak while the timed steps ran
                entry["steps_memory_ratio"] = (ours["steps_peak_rss_mb"]
                                               / theirs["steps_peak_rss_mb"])
        rows.append(entry)
        print(f"{row}: done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    common.emit({"benchmark": "compare_official", "rows": rows, "machine": common.machine(),
                 "load_average": {"before": load_before, "after": os.getloadavg()},
                 "wall_s": round(time.perf_counter() - t0, 1),
                 "note": "time_ratio = sbirjax / official: below 1 is faster than the official"})


if __name__ == "__main__":
    app.run(main)
