"""The same step under XLA:CPU settings, each in its own process, as JSON ratios to the default.

  python -m benchmarks.xla_flags [--which=stylemeup64,masbir] [--iters=3]
      [--which=stylemeup256_second,stylemeup256_first]

For each benchmark (the StyleMeUp meta-step at 64 px, or at 256 px at compare_official's
settings, second and first order; the MA-SBIR step at ViT-B/32 shapes) and
each setting of XLA_FLAGS below, a fresh process runs the benchmark and reports its median step
time; every setting is then given as a ratio to the default run of the same sitting (< 1:
faster). Settings a jaxlib build does not know fail that process, which is reported and skipped.
Run it on an otherwise idle machine: the ratios are only as good as the machine is quiet (the
load average at the start and the end is printed).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

from absl import app, flags

_WHICH = flags.DEFINE_list("which", ["stylemeup64", "masbir"], "benchmarks to run")
_ITERS = flags.DEFINE_integer("iters", 3, "timed steps per process")

# The 256-px meta-step at benchmarks/compare_official.py's settings (STYLEMEUP_256, task_chunk=1;
# not imported: both modules define an --iters flag).
_STYLEMEUP_256 = ["-m", "benchmarks.train_step", "--config=configs/synthetic_stylemeup.py",
                  "--config.data.image.size=256", "--config.model.embed_dim=128",
                  "--config.meta.task_chunk=1", "--warmup=1"]
BENCHMARKS = {
    "stylemeup64": ["-m", "benchmarks.train_step",
                    "--config=configs/synthetic_stylemeup.py:full,styles", "--warmup=1"],
    "stylemeup256_second": _STYLEMEUP_256,
    "stylemeup256_first": _STYLEMEUP_256 + ["--config.meta.first_order=True"],
    "masbir": ["-m", "benchmarks.masbir_step", "--warmup=1"],
}
# XLA:CPU settings to compare (flags as jaxlib 0.10 names them).
SETTINGS = {
    "default": "",
    "onednn": "--xla_cpu_use_onednn=true",
    "no_xnnpack": "--xla_cpu_use_xnnpack=false",
    "fast_math": "--xla_cpu_enable_fast_math=true",
    "concurrency_scheduler": "--xla_cpu_enable_concurrency_optimized_scheduler=true",
    "no_thunk_runtime": "--xla_cpu_use_thunk_runtime=false",
}


def _median_s(out: str, which: str) -> float:
    result = json.loads(out[out.index("{"):])
    if which == "masbir":
        return float(result["train"]["step_time_s"]["median_s"])
    return float(result["step_time_s"]["median_s"])


def main(argv):
    del argv
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    report = {"load_before": os.getloadavg(), "iters": _ITERS.value, "results": {}}
    for which in _WHICH.value:
        if which not in BENCHMARKS:
            raise app.UsageError(f"--which={which}: use names of {sorted(BENCHMARKS)}")
        rows = {}
        for name, xla_flags in SETTINGS.items():
            env = dict(os.environ)
            joined = f"{os.environ.get('XLA_FLAGS', '')} {xla_flags}".strip()
            if joined:
                env["XLA_FLAGS"] = joined
            else:
                env.pop("XLA_FLAGS", None)  # an empty value is read as a file name
            done = subprocess.run([sys.executable, *BENCHMARKS[which], f"--iters={_ITERS.value}"],
                                  cwd=root, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                rows[name] = {"flags": xla_flags, "error": done.stderr.strip().splitlines()[-1:]}
                continue
            rows[name] = {"flags": xla_flags, "median_s": _median_s(done.stdout, which)}
            print(f"{which} {name}: {rows[name]['median_s']:.3f} s", file=sys.stderr, flush=True)
        base = rows.get("default", {}).get("median_s")
        for row in rows.values():
            if base and "median_s" in row:
                row["ratio_to_default"] = row["median_s"] / base
        report["results"][which] = rows
    report["load_after"] = os.getloadavg()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    app.run(main)
